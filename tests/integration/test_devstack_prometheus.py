"""The local Prometheus (devstack.prometheus) without Flink: it scrapes the services it is given on
their actual ports, loads every rule file the charts ship (all groups evaluate without error),
and the API's rules and its dashboard panel hold on the API's real metrics. The end-to-end test
does the same for every rule and query on a full run."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest
import yaml

from contracts.topics import ALERTS_TOPIC
from devstack.ports import wait_until
from devstack.prometheus import RULE_FILES, PrometheusService
from devstack.services import AlertShipperService, ApiService, RunDir
from storage.migrate import migrate_up
from tests.support.db_roles import role_urls
from tests.support.promql import check, dashboard_queries, rule_queries

pytestmark = pytest.mark.integration
BOUND_S = 120


@pytest.fixture
def prometheus(pg_url, broker, tmp_path):
    migrate_up(pg_url)
    broker.create_topics([ALERTS_TOPIC])  # the shipper's
    run = RunDir.create(tmp_path)
    postgres = SimpleNamespace(url=pg_url, url_for=role_urls(pg_url).__getitem__)  # as MigrationsService leaves it
    api, shipper = ApiService(run, postgres), AlertShipperService(lambda: broker.bootstrap, postgres)
    prometheus = PrometheusService(run.prometheus, run.logs, [api, shipper])
    started = []
    try:
        for service in (api, shipper, prometheus):
            service.start()
            started.append(service)
        yield prometheus
    finally:
        for service in reversed(started):
            service.stop()


def test_scrapes_the_services_on_their_ports_and_evaluates_the_charts_rules(prometheus):
    def health() -> dict[str, str]:
        targets = prometheus.api("targets", state="active")["activeTargets"]
        return {target["labels"]["job"]: target["health"] for target in targets}

    expected = {"fleet-monitor-api": "up", "fleet-monitor-alert-shipper": "up"}
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: health() == expected, BOUND_S, "both targets up", interval_s=1)
    assert health() == expected
    shipped = prometheus.query("fleet_alert_shipper_records_total")
    assert [series["metric"]["job"] for series in shipped] == ["fleet-monitor-alert-shipper"]

    def groups() -> list[dict]:
        return prometheus.api("rules")["groups"]

    wait_until(lambda: all(group["lastEvaluation"] > "2" for group in groups()), BOUND_S, "rules evaluated")
    shipped_groups = {group["name"] for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]}
    assert {group["name"] for group in groups()} == shipped_groups
    assert [
        (rule["name"], rule["lastError"]) for group in groups() for rule in group["rules"] if rule["health"] == "err"
    ] == []


def test_the_api_rules_and_panel_hold_on_the_apis_real_metrics(prometheus):
    """What the API exports (fleet_api_requests_total) is what its alerts and the 5xx panel select:
    the panel shows a ratio (0) as soon as two scrapes counted requests; the alerts' conditions
    (5xx answers, the API down) are absent and their metrics and labels are there."""
    queries = [
        q for q in [*rule_queries(), *dashboard_queries()] if q.source.startswith(("api.", "pipeline-health.json: API"))
    ]
    assert len(queries) == 3
    ratio = next(q.expr for q in queries if q.name == "API 5xx ratio")
    verdicts = {}

    def hold() -> bool:
        verdicts.update({q.source: check(prometheus, q) for q in queries})
        # 0/0 (NaN) until two scrapes of the API counted requests (the scrapes themselves)
        return all(not problems for _, problems in verdicts.values()) and _value(prometheus, ratio) == "0"

    with contextlib.suppress(TimeoutError):
        wait_until(hold, BOUND_S, "the API's rules and panel", interval_s=2)
    assert {source: problems for source, (_, problems) in verdicts.items() if problems} == {}
    assert verdicts["pipeline-health.json: API 5xx ratio"][0] == "returns a series"
    assert _value(prometheus, ratio) == "0"  # requests counted, none failed


def _value(prometheus, expr: str) -> str | None:
    result = prometheus.query(expr)
    return result[0]["value"][1] if result else None
