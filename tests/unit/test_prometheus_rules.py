"""The pipeline's Prometheus rules through the real promtool: `check rules` on every rules file and
on what the charts render into PrometheusRule objects, and `test rules` feeding synthetic series
so each alert is shown to fire (and to stay quiet) when it should. The synthetic series carry the
names contracts.prometheus_names defines, every metric the rules and dashboards select is defined there,
and our processes export exactly the names defined for them: a renamed metric fails here. The
end-to-end test (tests/e2e) runs the same rules and queries on a real run's Prometheus."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from contracts import prometheus_names as m
from tests.support.charts import ROOT, find, render
from tests.support.promql import RULE_FILES, Selector, dashboard_queries, resolve, rule_queries, selectors

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: `make setup` installs Debian prometheus")


def promtool(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run([PROMTOOL, *args], check=False, capture_output=True, text=True, cwd=cwd, timeout=60)
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_rule_files_cover_the_pipeline() -> None:
    alerts = {
        rule["alert"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert {
        "FlinkJobDown",
        "FlinkCheckpointFailures",
        "FlinkKafkaConsumerLag",
        "VectorConsumerLag",
        "ApiHighErrorRate",
        "LoaderDown",
        "LoaderStalled",
    } <= alerts


@pytest.mark.parametrize("path", RULE_FILES, ids=[p.name for p in RULE_FILES])
def test_promtool_check_rules(path: Path) -> None:
    assert "SUCCESS" in promtool("check", "rules", str(path))


@pytest.mark.parametrize("chart", ["flink-job", "loader", "vector", "api"])
def test_rendered_prometheus_rule_passes_promtool(chart: str, tmp_path: Path) -> None:
    rule = find(render(chart, "prod", "metrics.prometheusRule.enabled=true"), "PrometheusRule")[0]
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    assert "SUCCESS" in promtool("check", "rules", str(path))
    assert rule["spec"] == yaml.safe_load((ROOT / "charts" / chart / "rules" / f"{chart}.rules.yaml").read_text())


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("groups: [{name: g, rules: [{alert: A, expr: 'rate(x[5m]'}]}]")
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], check=False, capture_output=True, text=True)
    assert result.returncode != 0


STALLED = "A restart would replay from an old checkpoint; check checkpoint storage and backpressure."
LOADER_STALLED = (
    "Either the jobs commit nothing (check FlinkJobDown and FlinkCheckpointsStalled first) or the loader"
    " cannot write to the database."
)
DOWN = "The JobManager reports no running job for 2 minutes; alarms and aggregates are not being produced."


def summary(labels: dict, text: str, description: str | None = None) -> dict:
    annotations = {"summary": text} | ({"description": description} if description else {})
    return {"exp_labels": labels, "exp_annotations": annotations}


# Synthetic series (promtool's expanding notation: 'a+bxN' = N steps adding b) and expected alerts.
UNIT_TESTS = {
    "rule_files": [str(p) for p in RULE_FILES],
    "evaluation_interval": "1m",
    "tests": [
        {
            "interval": "1m",
            "input_series": [
                # job "alarms" checkpoints every minute; job "kpis" fails checkpoints and stops completing them
                {"series": f'{m.FLINK_COMPLETED_CHECKPOINTS}{{job_name="alarms"}}', "values": "0+1x40"},
                {"series": f'{m.FLINK_COMPLETED_CHECKPOINTS}{{job_name="kpis"}}', "values": "5x40"},
                {"series": f'{m.FLINK_FAILED_CHECKPOINTS}{{job_name="kpis"}}', "values": "0+1x40"},
                {"series": f'{m.FLINK_FAILED_CHECKPOINTS}{{job_name="alarms"}}', "values": "0x40"},
                {"series": f'{m.FLINK_JOB_UPTIME}{{job_name="alarms"}}', "values": "1000000+60000x40"},
                {"series": f'{m.FLINK_JOB_UPTIME}{{job_name="kpis"}}', "values": "1000000+60000x40"},
                {"series": f'{m.FLINK_RUNNING_JOBS}{{pod="jm-alarms"}}', "values": "1x40"},
                {"series": f'{m.FLINK_RUNNING_JOBS}{{pod="jm-kpis"}}', "values": "1x10 0x30"},
                {"series": f'{m.FLINK_KAFKA_LAG_MAX}{{job_name="kpis"}}', "values": "50000x40"},
                {"series": f'{m.VECTOR_CONSUMER_LAG}{{topic_id="fleet.alerts"}}', "values": "10x40"},
                {"series": f'{m.API_REQUESTS}{{method="GET",route="/fleet",status="200"}}', "values": "0+90x40"},
                {"series": f'{m.API_REQUESTS}{{method="GET",route="/fleet",status="500"}}', "values": "0+10x40"},
                # loader a committed its last batch at 5m; loader b loads every minute and rejects a record a minute
                {"series": f'{m.LOADER_LAST_LOAD}{{pod="loader-a"}}', "values": "0 60 120 180 240 300x35"},
                {"series": f'{m.LOADER_LAST_LOAD}{{pod="loader-b"}}', "values": "0+60x40"},
                {"series": f'{m.LOADER_REJECTED}{{pod="loader-b",table="alarms"}}', "values": "0+1x40"},
                {"series": f'{m.LOADER_REJECTED}{{pod="loader-a",table="alarms"}}', "values": "0x40"},
                # As Kubernetes pod discovery labels targets: the annotation-based job, the pod label mapped
                {
                    "series": f'{m.UP}{{job="kubernetes-pods",app_kubernetes_io_name="loader",pod="loader-a",instance="10.0.0.5:9102"}}',
                    "values": "1x5 0x35",
                },
                {
                    "series": f'{m.UP}{{job="kubernetes-pods",app_kubernetes_io_name="api",pod="api-a"}}',
                    "values": "1x40",
                },
            ],
            "promql_expr_test": [
                {
                    "expr": f'{m.LAST_CHECKPOINT_COMPLETED}{{job_name="alarms"}}',
                    "eval_time": "20m",
                    "exp_samples": [
                        {
                            "labels": f'{m.LAST_CHECKPOINT_COMPLETED}{{job_name="alarms"}}',
                            "value": 1200,
                        }
                    ],
                },
                {
                    "expr": f'{m.LAST_CHECKPOINT_COMPLETED}{{job_name="kpis"}}',
                    "eval_time": "20m",
                    "exp_samples": [],
                },
            ],
            "alert_rule_test": [
                {
                    "eval_time": "20m",
                    "alertname": "FlinkCheckpointFailures",
                    "exp_alerts": [
                        summary(
                            {"severity": "warning", "job_name": "kpis"},
                            "Flink job kpis failed 10 checkpoints in 10 minutes",
                        )
                    ],
                },
                {
                    "eval_time": "25m",
                    "alertname": "FlinkCheckpointsStalled",
                    "exp_alerts": [
                        summary(
                            {"severity": "critical", "job_name": "kpis"},
                            "Flink job kpis completed no checkpoint for 15 minutes",
                            STALLED,
                        )
                    ],
                },
                {
                    "eval_time": "20m",
                    "alertname": "FlinkJobDown",
                    "exp_alerts": [
                        summary({"severity": "critical", "pod": "jm-kpis"}, "Flink job jm-kpis is not running", DOWN)
                    ],
                },
                {
                    "eval_time": "20m",
                    "alertname": "FlinkKafkaConsumerLag",
                    "exp_alerts": [
                        summary(
                            {"severity": "warning", "job_name": "kpis"}, "Flink job kpis lags 50k records behind Kafka"
                        )
                    ],
                },
                {"eval_time": "20m", "alertname": "VectorConsumerLag", "exp_alerts": []},
                {
                    "eval_time": "30m",
                    "alertname": "LoaderStalled",
                    "exp_alerts": [
                        summary(
                            {"severity": "warning", "pod": "loader-a"},
                            "Loader loader-a committed no batch for 15 minutes",
                            LOADER_STALLED,
                        )
                    ],
                },
                {"eval_time": "15m", "alertname": "LoaderStalled", "exp_alerts": []},
                {
                    "eval_time": "30m",
                    "alertname": "LoaderRejectingRecords",
                    "exp_alerts": [
                        summary(
                            {"severity": "warning", "pod": "loader-b", "table": "alarms"},
                            "Loader sent 10 alarms records to dead_letters in 10 minutes",
                        )
                    ],
                },
                {
                    "eval_time": "20m",
                    "alertname": "LoaderDown",
                    "exp_alerts": [
                        summary(
                            {
                                "severity": "critical",
                                "job": "kubernetes-pods",
                                "app_kubernetes_io_name": "loader",
                                "pod": "loader-a",
                                "instance": "10.0.0.5:9102",
                            },
                            "Loader target 10.0.0.5:9102 is down",
                            "Nothing the jobs commit reaches the database (it waits in Kafka until the loader is back).",
                        )
                    ],
                },
                {"eval_time": "20m", "alertname": "ApiDown", "exp_alerts": []},
                {
                    "eval_time": "20m",
                    "alertname": "ApiHighErrorRate",
                    "exp_alerts": [summary({"severity": "critical"}, "API answers 10% of requests with 5xx")],
                },
            ],
        }
    ],
}


def test_alerts_fire_on_synthetic_series(tmp_path: Path) -> None:
    path = tmp_path / "rules.test.yaml"
    path.write_text(yaml.safe_dump(UNIT_TESTS, sort_keys=False))
    assert "SUCCESS" in promtool("test", "rules", str(path))


def test_synthetic_series_carry_defined_names() -> None:
    """The series fed to promtool are named as contracts.prometheus_names names them, the names our processes
    export (below), not the names the rules happen to expect."""
    series = [item["series"] for test in UNIT_TESTS["tests"] for item in test["input_series"]]
    assert series and {name.split("{")[0] for name in series} <= m.ALL


def test_every_selected_metric_is_defined() -> None:
    """Each metric an alert/recording rule or a dashboard query selects is one contracts.prometheus_names
    defines (ours, Flink's, Vector's or Prometheus's own)."""
    queries = [*rule_queries(), *dashboard_queries()]
    assert len(queries) >= 20
    undefined = {
        query.source: selector.metric
        for query in queries
        for selector in selectors(query.expr)
        if selector.metric not in m.ALL
    }
    assert undefined == {}


def _exported(collectors) -> set[str]:
    """Sample names as scraped: a counter family `x` is served as `x_total`."""
    families = [family for collector in collectors for family in collector.collect()]
    return {family.name + "_total" if family.type == "counter" else family.name for family in families}


def _module_metrics(module) -> list:
    from prometheus_client.metrics import MetricWrapperBase

    return [value for value in vars(module).values() if isinstance(value, MetricWrapperBase)]


def _exporters() -> dict:
    from collections import Counter
    from types import SimpleNamespace

    import fleet_operator.metrics

    import api.observability
    import devstack.alert_shipper
    import generator.runner
    import storage.loader

    source = SimpleNamespace(per_topic=Counter({"fleet.trips": 1}))
    generator_metrics = generator.runner.Metrics(generator.runner.RunStats(), source, SimpleNamespace(errors=0))
    return {
        "api": lambda: [api.observability.Metrics().registry],
        "generator": lambda: [generator_metrics],
        "loader": lambda: _module_metrics(storage.loader),
        "alert-shipper": lambda: _module_metrics(devstack.alert_shipper),
        "operator": lambda: _module_metrics(fleet_operator.metrics),
    }


@pytest.mark.parametrize("producer", sorted(m.OURS))
def test_our_processes_export_the_defined_names(producer: str) -> None:
    assert _exported(_exporters()[producer]()) == set(m.OURS[producer])


def test_selector_scanner() -> None:
    expr = (
        'sum by (namespace) (rate(a_total{status=~"5..", route!="/x"}[5m] offset 1m)) / ignoring(pod) '
        "max without (x) (b) > bool 0.5 and on (job) up unless absent(c) or vector(1) * 2e3"
    )
    assert selectors(expr) == [
        Selector("a_total", (("status", "=~", "5.."), ("route", "!=", "/x"))),
        Selector("b"),
        Selector("up"),
        Selector("c"),
    ]
    assert selectors('label_replace(sum(v), "job_name", "vector", "", "")') == [Selector("v")]
    assert resolve("rate(x[$__rate_interval])") == "rate(x[1m])"
    with pytest.raises(ValueError, match="unknown Grafana variable"):
        resolve("rate(x[$__interval])")


def test_target_down_alerts_select_the_pod_label_their_chart_renders() -> None:
    """`up` is selected by the chart label (devstack.prometheus.CHART_LABEL), which Kubernetes pod
    discovery derives from the pod label app.kubernetes.io/name, never by `job`: each Prometheus
    set-up names its jobs its own way (the annotation-based job is `kubernetes-pods`), and a
    job-name matcher never fired there. The value must be what the chart's pods really carry."""
    from devstack.prometheus import CHART_LABEL

    checked = 0
    for query in rule_queries():
        for selector in selectors(query.expr):
            if selector.metric != "up":
                continue
            matchers = {label: (op, value) for label, op, value in selector.matchers}
            assert "job" not in matchers, query.source
            op, chart = matchers[CHART_LABEL]
            assert op == "=", query.source
            pods = [d for d in render(chart, "dev") if d["kind"] in ("Deployment", "StatefulSet")]
            assert pods and all(
                d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == chart for d in pods
            ), query.source
            checked += 1
    assert checked >= 2  # ApiDown, LoaderDown
