"""The Grafana dashboards: valid against the JSON schema generated from @grafana/schema (there is
no Grafana server here), provisioned by the chart, and every panel query executed for real: SQL
on the database the real jobs and loader wrote from the simulator's output (tests.support.
simulated_run; Grafana macros and template variables expanded the way Grafana does, `now()` as of
the end of the simulated run), PromQL through promtool. Needs Flink: run under
`flock /tmp/fleet-flink.lock`."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import jsonschema
import psycopg
import pytest
import yaml

from contracts.metrics import TIRE_POSITIONS
from tests.support.charts import ROOT, find, render
from tests.support.db_roles import role_url
from tests.support.simulated_run import SimulatedRun

pytestmark = pytest.mark.integration
DASHBOARDS = sorted((ROOT / "charts" / "grafana" / "dashboards").glob("*.json"))
SCHEMA = ROOT / ".tools" / "grafana-schema" / "dashboard.schema.json"
INTERVALS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
INT8, NUMERIC = 20, 1700  # PostgreSQL type oids Grafana shows badly in stat panels


def panels(path: Path) -> list[dict]:
    return json.loads(path.read_text())["panels"]


def sql_targets() -> list[tuple[str, dict, dict]]:
    return [
        (f"{p.stem}:{panel['title']}", panel, t)
        for p in DASHBOARDS
        for panel in panels(p)
        for t in panel["targets"]
        if "rawSql" in t
    ]


@dataclass(frozen=True)
class View:
    """A dashboard as looked at when the simulated run ended: the last hour, every variable at
    All (the dashboards' default) with the values the variable queries give on the run."""

    now: datetime
    variables: dict[str, str]

    @property
    def range(self) -> tuple[datetime, datetime]:
        return self.now - timedelta(hours=1), self.now + timedelta(minutes=1)


def _quoted(values) -> str:
    return ",".join("'" + str(value).replace("'", "''") + "'" for value in values)


def expand(query: str, view: View) -> str:
    """Grafana's PostgreSQL macros and template variables, as Grafana expands them; `now()` is the
    moment of the view (Grafana leaves it to the database, whose clock is past the run's end)."""
    start, end = view.range

    def group(match: re.Match) -> str:
        column, interval = match.group(1).strip(), match.group(2).strip().strip("'")
        seconds = int(interval[:-1]) * INTERVALS[interval[-1]]
        return f'floor(extract(epoch from {column})/{seconds})*{seconds} AS "time"'

    query = re.sub(r"\$__timeGroupAlias\(([^,]+),([^)]+)\)", group, query)
    query = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'", query)
    query = query.replace("$__timeFrom()", f"'{start.isoformat()}'").replace("$__timeTo()", f"'{end.isoformat()}'")
    query = query.replace("now()", f"'{view.now.isoformat()}'::timestamptz")
    for name, value in view.variables.items():
        query = query.replace(f"${name}", value)
    assert "$" not in query, f"unexpanded Grafana syntax in: {query}"
    return query


def test_dashboards_are_current_with_their_builder() -> None:
    spec = importlib.util.spec_from_file_location("build_dashboards", ROOT / "scripts" / "build-dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    if not SCHEMA.is_file():
        pytest.fail(f"{SCHEMA} missing: run `make setup` (scripts/setup.d/grafana-schema.sh)")
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_matches_grafana_schema(path: Path, validator: jsonschema.Draft7Validator) -> None:
    document = json.loads(path.read_text())
    assert [e.message for e in validator.iter_errors(document)] == []
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    for panel in document["panels"]:
        assert panel["datasource"]["uid"] in {"fleet-timescaledb", "fleet-prometheus"}


def test_schema_rejects_a_malformed_dashboard(validator: jsonschema.Draft7Validator) -> None:
    document = json.loads(DASHBOARDS[0].read_text())
    document["panels"][0]["gridPos"] = {"x": "left"}
    document["refresh"] = 30
    assert len(list(validator.iter_errors(document))) >= 2


def test_required_dashboards_and_panels_exist() -> None:
    titles = {p.stem: {panel["title"] for panel in panels(p)} for p in DASHBOARDS}
    assert set(titles) == {
        "fleet-overview",
        "tire-health",
        "alarms",
        "device-inactivity",
        "self-driving-kpis",
        "building-climate",
        "pipeline-health",
    }
    assert {
        "Alarms in range",
        "Unique sources",
        "Alarms over time by severity",
        "Top 10 sources",
        "Recent alarms",
        "Alarms by hour of day",
        "Distribution by type",
    } <= titles["alarms"]
    assert {"Flink throughput (records in/s)", "Kafka consumer lag (records)", "Checkpoint age (s)"} <= titles[
        "pipeline-health"
    ]


def test_chart_provisions_every_dashboard_and_the_datasources() -> None:
    docs = render("grafana", "prod")
    dashboards = find(docs, "ConfigMap", "fleet-monitor-grafana-dashboards")[0]["data"]
    assert {name: json.loads(text) for name, text in dashboards.items()} == {
        p.name: json.loads(p.read_text()) for p in DASHBOARDS
    }
    provisioning = find(docs, "ConfigMap", "fleet-monitor-grafana-provisioning")[0]["data"]
    datasources = {d["uid"]: d for d in yaml.safe_load(provisioning["datasources.yaml"])["datasources"]}
    assert datasources["fleet-timescaledb"]["jsonData"]["sslmode"] == "${DB_SSLMODE}"  # the database Secret's
    assert (
        datasources["fleet-timescaledb"]["secureJsonData"]["password"] == "${DB_PASSWORD}"
    )  # from the Secret, not values
    assert set(datasources) == {"fleet-timescaledb", "fleet-prometheus"}


@pytest.fixture(scope="module")
def view(simulated_run: SimulatedRun) -> View:
    def values(query: str) -> str:
        return _quoted(row[0] for row in simulated_run.query(query))

    return View(
        now=simulated_run.end,
        variables={
            "fleet": values("SELECT DISTINCT fleet_id FROM source_state"),
            "vehicle": values("SELECT source_id FROM source_state WHERE kind = 'vehicle'"),
            "site": values("SELECT DISTINCT site_id FROM source_state WHERE site_id IS NOT NULL"),
            "zone": values("SELECT DISTINCT zone_id FROM source_state WHERE zone_id IS NOT NULL"),
            "tire": _quoted(TIRE_POSITIONS),
        },
    )


NOTHING_ON_A_SIMULATED_RUN = {
    # A person acknowledges alarms (through the API); the simulator and the jobs never do.
    "alarms:Acknowledged, not cleared",
    # The inactivity job judges silence on arrival (processing) time: a bounded replay has every
    # heartbeat arrive at once and ends before any timeout passes on the clock, so no device is
    # inactive and no device_inactive alarm is raised. tests/integration/test_jobs_inactivity.py
    # covers these on a live job.
    "fleet-overview:Inactive devices",
    "device-inactivity:Inactive now",
    "device-inactivity:Longest silence (s)",
    "device-inactivity:Back online in range",
    "device-inactivity:Inactivity alarms raised",
    "device-inactivity:Inactive devices",
}
"""Panels whose SQL runs but finds nothing in what the simulator makes happen, and why: their
queries still execute on the real schema below, only their values are not checked."""


def _has_data(rows: list[tuple], columns: list[str]) -> bool:
    """Some row has a value that is neither NULL nor zero outside the time column."""
    values = [value for row in rows for name, value in zip(columns, row, strict=True) if name != "time"]
    return any(value not in (None, 0) for value in values)


@pytest.fixture(scope="module")
def grafana_url(simulated_run: SimulatedRun) -> str:
    """The datasource's login (charts/grafana: the read-only fleet_grafana role), on the run's database."""
    return role_url(simulated_run.url, "grafana")


@pytest.mark.parametrize(("where", "panel", "target"), sql_targets(), ids=[case[0] for case in sql_targets()])
def test_panel_sql_shows_the_simulated_run(where: str, panel: dict, target: dict, grafana_url: str, view: View) -> None:
    with psycopg.connect(grafana_url) as conn, conn.cursor() as cursor:
        cursor.execute(expand(target["rawSql"], view))
        rows = cursor.fetchall()
        columns = [(c.name, c.type_code) for c in cursor.description]
    if panel["type"] == "stat":
        # Grafana renders bigint/numeric counts as strings in stat panels: cast to int/float8.
        assert len(rows) == 1 and all(oid not in (INT8, NUMERIC) for _, oid in columns), columns
    if target["format"] == "time_series":
        assert columns[0][0] == "time", f"{where}: time series must start with a time column"
    if where not in NOTHING_ON_A_SIMULATED_RUN:
        assert _has_data(rows, [name for name, _ in columns]), f"{where}: nothing on the simulated run: {rows[:3]}"


def test_tire_panels_show_a_series_per_vehicle_and_tire(simulated_run: SimulatedRun, view: View) -> None:
    (pressure,) = [t for where, _, t in sql_targets() if where == "tire-health:Tire pressure (kPa)"]
    series = {name for _, name, _ in simulated_run.query(expand(pressure["rawSql"], view))}
    ((vehicles,),) = simulated_run.query("SELECT count(*) FROM source_state WHERE kind = 'vehicle'")
    assert (
        vehicles == simulated_run.config.vehicles
        and len(series) >= 4 * vehicles
        and all(name.rsplit(" ", 1)[1] in TIRE_POSITIONS for name in series)
    )


def test_variable_queries_run(simulated_run: SimulatedRun, view: View) -> None:
    for path in DASHBOARDS:
        for variable in json.loads(path.read_text())["templating"]["list"]:
            rows = simulated_run.query(expand(variable["query"], view))
            assert rows, f"{path.stem}: variable {variable['name']} has no values"


def test_macro_expansion_catches_unknown_syntax() -> None:
    with pytest.raises(AssertionError, match="unexpanded"):
        expand("SELECT 1 WHERE $__unixEpochFilter(t)", View(datetime(2026, 1, 1), {}))


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool missing: `make setup` installs Debian prometheus"
)
def test_prometheus_panel_queries_parse_with_promtool(tmp_path: Path) -> None:
    rules = []
    for path in DASHBOARDS:
        for panel in panels(path):
            for target in panel["targets"]:
                if "expr" in target:
                    expr = target["expr"].replace("$__rate_interval", "5m").replace("$__interval", "1m")
                    rules.append({"record": f"panel:{path.stem.replace('-', '_')}:{len(rules)}", "expr": expr})
    assert len(rules) >= 4
    rule_file = tmp_path / "panels.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(rule_file)], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
