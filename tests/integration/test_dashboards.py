"""The Grafana dashboards: valid against the JSON schema generated from @grafana/schema (there is
no Grafana server here), provisioned by the chart, and every panel query executed for real: SQL
against a PostgreSQL database migrated with the project's schema (Grafana macros and template
variables expanded the way Grafana does), PromQL through promtool."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import psycopg
import pytest
import yaml

from storage.migrate import migrate_up
from tests.support.charts import ROOT, find, render

pytestmark = pytest.mark.integration
DASHBOARDS = sorted((ROOT / "charts" / "grafana" / "dashboards").glob("*.json"))
SCHEMA = ROOT / ".tools" / "grafana-schema" / "dashboard.schema.json"
NOW = datetime.now(UTC)
FROM, TO = NOW - timedelta(hours=6), NOW + timedelta(minutes=1)
VARIABLES = {"fleet": "'fleet-a'", "vehicle": "'veh-1','veh-2'", "site": "'site-1'", "zone": "'zone-a'"}
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


def expand(query: str) -> str:
    """Grafana's PostgreSQL macros and template variables, as Grafana expands them."""

    def group(match: re.Match) -> str:
        column, interval = match.group(1).strip(), match.group(2).strip().strip("'")
        seconds = int(interval[:-1]) * INTERVALS[interval[-1]]
        return f'floor(extract(epoch from {column})/{seconds})*{seconds} AS "time"'

    query = re.sub(r"\$__timeGroupAlias\(([^,]+),([^)]+)\)", group, query)
    query = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN '{FROM.isoformat()}' AND '{TO.isoformat()}'", query)
    query = query.replace("$__timeFrom()", f"'{FROM.isoformat()}'").replace("$__timeTo()", f"'{TO.isoformat()}'")
    for name, value in VARIABLES.items():
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
    assert datasources["fleet-timescaledb"]["jsonData"]["sslmode"] == "require"
    assert (
        datasources["fleet-timescaledb"]["secureJsonData"]["password"] == "${DB_PASSWORD}"
    )  # from the Secret, not values
    assert set(datasources) == {"fleet-timescaledb", "fleet-prometheus"}


def seed(conn: psycopg.Connection) -> None:
    """A little of everything, inside the dashboards' time range and variable values."""
    recent = NOW - timedelta(minutes=2)
    states = [
        (
            "veh-1",
            "vehicle",
            "fleet-a",
            None,
            None,
            '{"speed_kmh": 80, "battery_pct": 55, "autopilot_state": "engaged"}',
        ),
        ("veh-2", "vehicle", "fleet-a", None, None, "{}"),
        ("bld-1", "building_device", "fleet-a", "site-1", "zone-a", "{}"),
    ]
    for state in states:
        conn.execute(
            "INSERT INTO source_state VALUES (%s, %s, %s, %s, %s, %s, 'x', %s)", (*state[:5], recent, state[5])
        )
    readings = [
        ("veh-1", "tire.reading", "pressure_kpa", 190),
        ("veh-1", "tire.reading", "temperature_c", 95),
        ("veh-2", "tire.reading", "pressure_kpa", 230),
        ("bld-1", "building.reading", "co2_ppm", 1100),
        ("bld-1", "building.reading", "temperature_c", 24),
        ("bld-1", "building.reading", "humidity_pct", 50),
        ("bld-1", "building.reading", "occupancy", 12),
    ]
    for number, (source, schema_name, metric, value) in enumerate(readings):
        conn.execute(
            "INSERT INTO readings VALUES (%s, %s, 'fleet-a', %s, %s, %s, %s)",
            (recent, source, schema_name, metric, value, f"e{number}"),
        )
    conn.execute(
        "INSERT INTO aggregates VALUES (%s, %s, 60, 'veh-1', 'fleet-a', 'tire.reading', 'pressure_kpa', 195, 190, 200, 6)",
        (recent - timedelta(minutes=1), recent),
    )
    alarms = [
        ("a1", "tire_pressure_low", "critical", "active", "veh-1", None),
        ("a2", "co2_high", "warning", "acknowledged", "bld-1", None),
        ("a3", "device_inactive", "warning", "cleared", "dev-9", recent),
    ]
    for alert_id, alert_type, severity, status, source, cleared in alarms:
        conn.execute(
            "INSERT INTO alarms (alert_id, alert_type, severity, status, source_id, fleet_id, first_seen, last_seen, cleared_at, count, value, threshold)"
            " VALUES (%s, %s, %s, %s, %s, 'fleet-a', %s, %s, %s, 2, 190, 200)",
            (alert_id, alert_type, severity, status, source, recent - timedelta(minutes=30), recent, cleared),
        )
    conn.execute(
        "INSERT INTO alarm_events SELECT alert_id, alert_type, severity, status, source_id, fleet_id, first_seen, last_seen,"
        " cleared_at, count, value, threshold, message FROM alarms"
    )
    conn.execute(
        "INSERT INTO device_inactivity VALUES ('dev-7', %s, 60, true, %s, %s)",
        (recent - timedelta(minutes=5), recent, recent),
    )
    conn.execute(
        "INSERT INTO driving_kpis VALUES (%s, %s, 3600, 'veh-1', 'fleet-a', 2, 1, 120.5, 60.25)",
        (recent - timedelta(hours=1), recent),
    )
    conn.execute(
        "INSERT INTO dead_letters VALUES ('d1', 'malformed', 'fleet.trips', '{', 'bad json', NULL, %s)", (recent,)
    )


@pytest.fixture(scope="module")
def database(postgres_server: str) -> psycopg.Connection:
    # One migrated, seeded database for every panel (module scope keeps this suite fast).
    name = f"dashboards_{datetime.now(UTC).strftime('%H%M%S%f')}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    migrate_up(url)
    with psycopg.connect(url, autocommit=True) as conn:
        seed(conn)
        yield conn
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize(("where", "panel", "target"), sql_targets(), ids=[case[0] for case in sql_targets()])
def test_panel_sql_runs_on_the_real_schema(where: str, panel: dict, target: dict, database: psycopg.Connection) -> None:
    with database.cursor() as cursor:
        cursor.execute(expand(target["rawSql"]))
        rows = cursor.fetchall()
        columns = [(c.name, c.type_code) for c in cursor.description]
    assert rows, f"{where}: no rows from the seeded database"
    if panel["type"] == "stat":
        # Grafana renders bigint/numeric counts as strings in stat panels: cast to int/float8.
        assert len(rows) == 1 and all(oid not in (INT8, NUMERIC) for _, oid in columns), columns
    if target["format"] == "time_series":
        assert columns[0][0] == "time", f"{where}: time series must start with a time column"


def test_variable_queries_run(database: psycopg.Connection) -> None:
    for path in DASHBOARDS:
        for variable in json.loads(path.read_text())["templating"]["list"]:
            rows = database.execute(expand(variable["query"])).fetchall()
            assert rows, f"{path.stem}: variable {variable['name']} has no values"


def test_macro_expansion_catches_unknown_syntax() -> None:
    with pytest.raises(AssertionError, match="unexpanded"):
        expand("SELECT 1 WHERE $__unixEpochFilter(t)")


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
