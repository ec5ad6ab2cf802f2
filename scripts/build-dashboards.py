"""Build the Grafana dashboards of charts/grafana/dashboards/ from the compact definitions below.

Panels are declared once here (SQL for TimescaleDB, PromQL for Prometheus) and written as the JSON
Grafana provisions. Alarm threshold lines carry the contracts' defaults and are listed in
charts/grafana/threshold-lines.json (dashboard -> panel and step index -> alert type): the grafana
chart sets them from its `thresholds` value, the same document the jobs load (the operator passes
both releases the environment's thresholds with the FleetMonitor's over them). `--check` exits 1
when the committed JSON differs (the dashboard tests run it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from contracts import prometheus_names as m  # noqa: E402
from contracts.metrics import TIRE_FAMILY, TIRE_POSITIONS, TIRE_PRESSURE, TIRE_TEMPERATURE  # noqa: E402
from contracts.records import AlertType  # noqa: E402
from contracts.thresholds import Thresholds  # noqa: E402

OUT = ROOT / "charts" / "grafana" / "dashboards"
LINES = ROOT / "charts" / "grafana" / "threshold-lines.json"
PG = {"type": "grafana-postgresql-datasource", "uid": "fleet-timescaledb"}
PROM = {"type": "prometheus", "uid": "fleet-prometheus"}
RULES = Thresholds()


class Line(float):
    """A threshold step value that is an alarm rule's threshold (the chart replaces it)."""

    alert_type: str


def rule(alert_type: AlertType) -> float:
    line = Line(RULES.rule_for(alert_type).threshold)
    line.alert_type = AlertType(alert_type).value
    return line


def sql(query: str, fmt: str = "table") -> dict:
    return {
        "refId": "A",
        "datasource": PG,
        "editorMode": "code",
        "rawQuery": True,
        "format": fmt,
        "rawSql": " ".join(query.split()),
    }


def promql(expr: str, legend: str) -> dict:
    return {"refId": "A", "datasource": PROM, "editorMode": "code", "expr": expr, "legendFormat": legend, "range": True}


def steps(*pairs: tuple[str, float | None]) -> dict:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for color, value in pairs]}


def panel(
    kind: str, title: str, target: dict, *, w: int = 6, h: int = 6, unit: str = "short", thresholds=None, **options
) -> dict:
    defaults: dict = {"unit": unit}
    if thresholds:
        defaults["thresholds"] = thresholds
        if kind == "timeseries":
            defaults["custom"] = {"thresholdsStyle": {"mode": "line"}}
    return {
        "type": kind,
        "title": title,
        "datasource": target["datasource"],
        "targets": [target],
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
    }


def stat(title: str, query: str, **kw) -> dict:
    return panel("stat", title, sql(query), w=kw.pop("w", 6), h=4, reduceOptions={"calcs": ["lastNotNull"]}, **kw)


def series(title: str, query: str, **kw) -> dict:
    return panel("timeseries", title, sql(query, "time_series"), w=kw.pop("w", 12), h=kw.pop("h", 8), **kw)


def table(title: str, query: str, **kw) -> dict:
    return panel("table", title, sql(query), w=kw.pop("w", 24), h=kw.pop("h", 8), **kw)


def variable(name: str, query: str, label: str) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": PG,
        "query": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }


FLEET = variable("fleet", "SELECT DISTINCT fleet_id FROM source_state ORDER BY 1", "Fleet")
# The positions come from the contract, not from scanning readings: every tire a vehicle may have.
TIRE = variable(
    "tire",
    f"SELECT tire FROM unnest(ARRAY[{', '.join(repr(p) for p in TIRE_POSITIONS)}]) WITH ORDINALITY AS t(tire, n) ORDER BY n",
    "Tire",
)
TIRES = f"schema_name = '{TIRE_FAMILY}' AND tire IN ($tire)"
"""Tire readings of the chosen tires: tire metrics are `pressure_kpa`/`temperature_c` plus a tire column."""
RECENT = "interval '5 minutes'"

DASHBOARDS: dict[str, tuple[str, list[dict], list[dict]]] = {
    "fleet-overview": (
        "Fleet overview",
        [FLEET],
        [
            stat(
                "Vehicles reporting (5 min)",
                f"SELECT count(*)::int AS vehicles FROM source_state WHERE kind = 'vehicle' AND fleet_id IN ($fleet) AND last_seen > now() - {RECENT}",
            ),
            stat(
                "Open alarms",
                "SELECT count(*)::int AS open FROM alarms WHERE status <> 'cleared' AND fleet_id IN ($fleet)",
                thresholds=steps(("green", None), ("orange", 1)),
            ),
            stat(
                "Critical open alarms",
                "SELECT count(*)::int AS critical FROM alarms WHERE status <> 'cleared' AND severity = 'critical' AND fleet_id IN ($fleet)",
                thresholds=steps(("green", None), ("red", 1)),
            ),
            stat(
                "Inactive devices",
                "SELECT count(*)::int AS inactive FROM device_inactivity WHERE inactive",
                thresholds=steps(("green", None), ("red", 1)),
            ),
            series(
                "Events per minute by family",
                "SELECT $__timeGroupAlias(time, '1m'), schema_name AS metric, count(DISTINCT event_id)::int AS value FROM readings WHERE $__timeFilter(time) AND fleet_id IN ($fleet) GROUP BY 1, 2 ORDER BY 1",
                w=16,
                unit="events/min",
            ),
            panel(
                "piechart",
                "Sources by kind",
                sql(
                    "SELECT kind, count(*)::int AS sources FROM source_state WHERE fleet_id IN ($fleet) GROUP BY 1 ORDER BY 1"
                ),
                w=8,
                h=8,
                reduceOptions={"calcs": ["lastNotNull"], "values": True},
            ),
            table(
                "Vehicle status",
                f"SELECT source_id AS vehicle, fleet_id, last_seen, last_seen > now() - {RECENT} AS reporting, (latest->>'speed_kmh')::float8 AS speed_kmh, (latest->>'battery_pct')::float8 AS battery_pct, latest->>'autopilot_state' AS autopilot, (SELECT count(*)::int FROM alarms a WHERE a.source_id = s.source_id AND a.status <> 'cleared') AS open_alarms FROM source_state s WHERE kind = 'vehicle' AND fleet_id IN ($fleet) ORDER BY last_seen DESC LIMIT 500",
            ),
        ],
    ),
    "tire-health": (
        "Tire health",
        [
            FLEET,
            variable(
                "vehicle",
                "SELECT DISTINCT source_id FROM source_state WHERE kind = 'vehicle' AND fleet_id IN ($fleet) ORDER BY 1",
                "Vehicle",
            ),
            TIRE,
        ],
        [
            stat(
                "Lowest pressure now (kPa)",
                f"SELECT min(value)::float8 AS kpa FROM readings WHERE {TIRES} AND metric = '{TIRE_PRESSURE}' AND time > now() - {RECENT} AND source_id IN ($vehicle)",
                unit="kPa",
                thresholds=steps(("red", None), ("green", rule(AlertType.TIRE_PRESSURE_LOW))),
            ),
            stat(
                "Hottest tire now (°C)",
                f"SELECT max(value)::float8 AS celsius FROM readings WHERE {TIRES} AND metric = '{TIRE_TEMPERATURE}' AND time > now() - {RECENT} AND source_id IN ($vehicle)",
                unit="celsius",
                thresholds=steps(("green", None), ("red", rule(AlertType.TIRE_TEMPERATURE_HIGH))),
            ),
            stat(
                "Open tire alarms",
                "SELECT count(*)::int AS open FROM alarms WHERE alert_type IN ('tire_pressure_low', 'tire_temperature_high') AND status <> 'cleared' AND source_id IN ($vehicle)",
                thresholds=steps(("green", None), ("red", 1)),
            ),
            stat(
                "Vehicles with tire data",
                f"SELECT count(DISTINCT source_id)::int AS vehicles FROM readings WHERE {TIRES} AND time > now() - {RECENT} AND source_id IN ($vehicle)",
            ),
            series(
                "Tire pressure (kPa)",
                f"SELECT $__timeGroupAlias(time, '10s'), source_id || ' ' || tire AS metric, min(value) AS value FROM readings WHERE {TIRES} AND metric = '{TIRE_PRESSURE}' AND $__timeFilter(time) AND source_id IN ($vehicle) GROUP BY 1, 2 ORDER BY 1",
                unit="kPa",
                thresholds=steps(("red", None), ("green", rule(AlertType.TIRE_PRESSURE_LOW))),
            ),
            series(
                "Tire temperature (°C)",
                f"SELECT $__timeGroupAlias(time, '10s'), source_id || ' ' || tire AS metric, max(value) AS value FROM readings WHERE {TIRES} AND metric = '{TIRE_TEMPERATURE}' AND $__timeFilter(time) AND source_id IN ($vehicle) GROUP BY 1, 2 ORDER BY 1",
                unit="celsius",
                thresholds=steps(("green", None), ("red", rule(AlertType.TIRE_TEMPERATURE_HIGH))),
            ),
            table(
                "1-minute windows per vehicle and tire",
                f"SELECT window_start AS time, source_id AS vehicle, tire, metric, round(avg::numeric, 1)::float8 AS avg, min, max, count::int AS readings FROM aggregates WHERE {TIRES} AND window_s = 60 AND $__timeFilter(window_start) AND source_id IN ($vehicle) ORDER BY window_start DESC, source_id, tire, metric LIMIT 500",
            ),
        ],
    ),
    "alarms": (
        "Alarms",
        [FLEET],
        [
            stat(
                "Alarms in range",
                "SELECT count(*)::int AS alarms FROM alarms WHERE $__timeFilter(first_seen) AND fleet_id IN ($fleet)",
            ),
            stat(
                "Unique sources",
                "SELECT count(DISTINCT source_id)::int AS sources FROM alarms WHERE $__timeFilter(first_seen) AND fleet_id IN ($fleet)",
            ),
            stat(
                "Open now",
                "SELECT count(*)::int AS open FROM alarms WHERE status <> 'cleared' AND fleet_id IN ($fleet)",
                thresholds=steps(("green", None), ("orange", 1)),
            ),
            stat(
                "Acknowledged, not cleared",
                "SELECT count(*)::int AS acknowledged FROM alarms WHERE status = 'acknowledged' AND fleet_id IN ($fleet)",
            ),
            series(
                "Alarms over time by severity",
                "SELECT $__timeGroupAlias(first_seen, '5m'), severity AS metric, count(*)::int AS value FROM alarms WHERE $__timeFilter(first_seen) AND fleet_id IN ($fleet) GROUP BY 1, 2 ORDER BY 1",
                w=16,
            ),
            panel(
                "piechart",
                "Distribution by type",
                sql(
                    "SELECT alert_type, count(*)::int AS alarms FROM alarms WHERE $__timeFilter(first_seen) AND fleet_id IN ($fleet) GROUP BY 1 ORDER BY 2 DESC"
                ),
                w=8,
                h=8,
                reduceOptions={"calcs": ["lastNotNull"], "values": True},
            ),
            panel(
                "barchart",
                "Top 10 sources",
                sql(
                    "SELECT source_id, count(*)::int AS alarms FROM alarms WHERE $__timeFilter(first_seen) AND fleet_id IN ($fleet) GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10"
                ),
                w=12,
                h=8,
                orientation="horizontal",
                xField="source_id",
            ),
            panel(
                "heatmap",
                "Alarms by hour of day",
                sql(
                    "SELECT first_seen AS time, extract(hour FROM first_seen)::int AS hour_of_day FROM alarms WHERE $__timeFilter(first_seen) AND fleet_id IN ($fleet) ORDER BY 1",
                    "time_series",
                ),
                w=12,
                h=8,
                calculate=True,
                calculation={"yBuckets": {"mode": "size", "value": "1"}},
            ),
            series(
                "Alarm updates shipped by Vector (alarm_events)",
                "SELECT $__timeGroupAlias(last_seen, '1m'), status AS metric, count(*)::int AS value FROM alarm_events WHERE $__timeFilter(last_seen) AND fleet_id IN ($fleet) GROUP BY 1, 2 ORDER BY 1",
                w=24,
            ),
            table(
                "Recent alarms",
                "SELECT last_seen AS time, alert_type, severity, status, source_id, fleet_id, count::int AS count, value, threshold, first_seen, cleared_at, message FROM alarms WHERE $__timeFilter(last_seen) AND fleet_id IN ($fleet) ORDER BY last_seen DESC LIMIT 100",
                h=10,
            ),
        ],
    ),
    "device-inactivity": (
        "Device inactivity",
        [],
        [
            stat("Devices tracked", "SELECT count(*)::int AS devices FROM device_inactivity"),
            stat(
                "Inactive now",
                "SELECT count(*)::int AS inactive FROM device_inactivity WHERE inactive",
                thresholds=steps(("green", None), ("red", 1)),
            ),
            stat(
                "Longest silence (s)",
                "SELECT coalesce(max(extract(epoch FROM now() - last_seen)), 0)::float8 AS seconds FROM device_inactivity WHERE inactive",
                unit="s",
            ),
            stat(
                "Back online in range",
                "SELECT count(*)::int AS recovered FROM alarms WHERE alert_type = 'device_inactive' AND status = 'cleared' AND $__timeFilter(cleared_at)",
            ),
            series(
                "Inactivity alarms raised",
                "SELECT $__timeGroupAlias(first_seen, '5m'), count(*)::int AS \"devices gone silent\" FROM alarms WHERE alert_type = 'device_inactive' AND $__timeFilter(first_seen) GROUP BY 1 ORDER BY 1",
                w=24,
            ),
            table(
                "Inactive devices",
                "SELECT device_id, last_seen, inactive_since, timeout_s, extract(epoch FROM now() - last_seen)::float8 AS silent_for_s FROM device_inactivity WHERE inactive ORDER BY last_seen LIMIT 500",
            ),
        ],
    ),
    "self-driving-kpis": (
        "Self-driving KPIs",
        [FLEET],
        [
            stat(
                "Interventions",
                "SELECT coalesce(sum(interventions), 0)::int AS interventions FROM driving_kpis WHERE $__timeFilter(window_start) AND fleet_id IN ($fleet)",
            ),
            stat(
                "Disengagements",
                "SELECT coalesce(sum(disengagements), 0)::int AS disengagements FROM driving_kpis WHERE $__timeFilter(window_start) AND fleet_id IN ($fleet)",
            ),
            stat(
                "Distance (km)",
                "SELECT coalesce(sum(distance_km), 0)::float8 AS km FROM driving_kpis WHERE $__timeFilter(window_start) AND fleet_id IN ($fleet)",
                unit="lengthkm",
            ),
            stat(
                "km per intervention",
                "SELECT (sum(distance_km) / nullif(sum(interventions), 0))::float8 AS km_per_intervention FROM driving_kpis WHERE $__timeFilter(window_start) AND fleet_id IN ($fleet)",
                unit="lengthkm",
            ),
            series(
                "Interventions and disengagements",
                "SELECT $__timeGroupAlias(window_start, '1h'), sum(interventions)::int AS interventions, sum(disengagements)::int AS disengagements FROM driving_kpis WHERE $__timeFilter(window_start) AND fleet_id IN ($fleet) GROUP BY 1 ORDER BY 1",
            ),
            panel(
                "barchart",
                "km per intervention by vehicle",
                sql(
                    "SELECT source_id, (sum(distance_km) / nullif(sum(interventions), 0))::float8 AS km_per_intervention FROM driving_kpis WHERE $__timeFilter(window_start) AND fleet_id IN ($fleet) GROUP BY 1 ORDER BY 2 NULLS LAST LIMIT 20"
                ),
                w=12,
                h=8,
                orientation="horizontal",
                xField="source_id",
            ),
            table(
                "Per vehicle",
                "SELECT source_id AS vehicle, sum(interventions)::int AS interventions, sum(disengagements)::int AS disengagements, sum(distance_km)::float8 AS km, (sum(distance_km) / nullif(sum(interventions), 0))::float8 AS km_per_intervention FROM driving_kpis WHERE $__timeFilter(window_start) AND fleet_id IN ($fleet) GROUP BY 1 ORDER BY 2 DESC LIMIT 500",
            ),
        ],
    ),
    "building-climate": (
        "Building climate",
        [
            variable("site", "SELECT DISTINCT site_id FROM source_state WHERE site_id IS NOT NULL ORDER BY 1", "Site"),
            variable(
                "zone",
                "SELECT DISTINCT zone_id FROM source_state WHERE site_id IN ($site) AND zone_id IS NOT NULL ORDER BY 1",
                "Zone",
            ),
        ],
        [
            *[
                series(
                    title,
                    f"SELECT $__timeGroupAlias(r.time, '5m'), s.site_id || '/' || s.zone_id AS metric, avg(r.value)::float8 AS value FROM readings r JOIN source_state s ON s.source_id = r.source_id WHERE r.schema_name = 'building.reading' AND r.metric = '{metric}' AND $__timeFilter(r.time) AND s.site_id IN ($site) AND s.zone_id IN ($zone) GROUP BY 1, 2 ORDER BY 1",
                    unit=unit,
                    thresholds=steps(("green", None), ("red", rule(alert))) if alert else None,
                )
                for title, metric, unit, alert in (
                    ("CO2 (ppm, 5-min avg)", "co2_ppm", "ppm", AlertType.CO2_HIGH),
                    ("Temperature (°C, 5-min avg)", "temperature_c", "celsius", AlertType.TEMPERATURE_HIGH),
                    ("Humidity (%, 5-min avg)", "humidity_pct", "percent", AlertType.HUMIDITY_HIGH),
                    ("Occupancy (5-min avg)", "occupancy", "short", None),
                )
            ],
            table(
                "Zones over 15 minutes",
                "SELECT s.site_id, s.zone_id, r.metric, avg(r.value)::float8 AS avg, max(r.value)::float8 AS max FROM readings r JOIN source_state s ON s.source_id = r.source_id WHERE r.schema_name = 'building.reading' AND r.time > now() - interval '15 minutes' AND s.site_id IN ($site) AND s.zone_id IN ($zone) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            ),
        ],
    ),
    "pipeline-health": (
        "Pipeline health",
        [],
        [
            panel(
                "timeseries",
                "Flink throughput (records in/s)",
                promql(f"sum by (job_name) ({m.FLINK_RECORDS_IN_PER_SECOND})", "{{job_name}}"),
                w=12,
                h=8,
                unit="rps",
            ),
            panel(
                "timeseries",
                "Kafka consumer lag (records)",
                promql(
                    f"max by (job_name) ({m.FLINK_KAFKA_LAG_MAX})"
                    f' or label_replace(sum({m.VECTOR_CONSUMER_LAG}), "job_name", "vector", "", "")',
                    "{{job_name}}",
                ),
                w=12,
                h=8,
            ),
            panel(
                "timeseries",
                "Checkpoint age (s)",
                promql(
                    f"time() - max by (job_name) (max_over_time({m.LAST_CHECKPOINT_COMPLETED}[6h]))",
                    "{{job_name}}",
                ),
                w=12,
                h=8,
                unit="s",
                thresholds=steps(("green", None), ("orange", 300), ("red", 900)),
            ),
            panel(
                "timeseries",
                "Failed checkpoints",
                promql(
                    f"sum by (job_name) (increase({m.FLINK_FAILED_CHECKPOINTS}[$__rate_interval]))",
                    "{{job_name}}",
                ),
                w=12,
                h=8,
            ),
            panel(
                "stat",
                "Running Flink jobs",
                promql(f"sum({m.FLINK_RUNNING_JOBS})", "running"),
                w=6,
                h=4,
                reduceOptions={"calcs": ["lastNotNull"]},
            ),
            panel(
                "stat",
                "API 5xx ratio",
                promql(
                    # 0 rather than no data while the API answers without errors
                    f'(sum(rate({m.API_REQUESTS}{{status=~"5.."}}[$__rate_interval])) or vector(0))'
                    f" / sum(rate({m.API_REQUESTS}[$__rate_interval]))",
                    "5xx",
                ),
                w=6,
                h=4,
                unit="percentunit",
                reduceOptions={"calcs": ["lastNotNull"]},
            ),
            stat(
                "Data freshness (s since newest reading)",
                "SELECT coalesce(extract(epoch FROM now() - max(time)), 0)::float8 AS seconds FROM readings",
                unit="s",
                thresholds=steps(("green", None), ("orange", 60), ("red", 300)),
            ),
            stat(
                "Dead letters in range",
                "SELECT count(*)::int AS dead_letters FROM dead_letters WHERE $__timeFilter(received_at)",
                thresholds=steps(("green", None), ("orange", 1)),
            ),
            series(
                "Rows written per minute",
                "SELECT $__timeGroupAlias(time, '1m'), count(*)::int AS readings FROM readings WHERE $__timeFilter(time) GROUP BY 1 ORDER BY 1",
            ),
            series(
                "Dead letters per minute by kind",
                "SELECT $__timeGroupAlias(received_at, '1m'), kind AS metric, count(*)::int AS value FROM dead_letters WHERE $__timeFilter(received_at) GROUP BY 1, 2 ORDER BY 1",
            ),
        ],
    ),
}


def layout(panels: list[dict]) -> list[dict]:
    """Ids and grid positions, left to right then down (24 columns)."""
    x = y = row_height = 0
    for number, item in enumerate(panels, start=1):
        w, h = item["gridPos"]["w"], item["gridPos"]["h"]
        if x + w > 24:
            x, y, row_height = 0, y + row_height, 0
        item["id"] = number
        item["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        x, row_height = x + w, max(row_height, h)
    return panels


def dashboard(uid: str, title: str, variables: list[dict], panels: list[dict]) -> dict:
    return {
        "uid": uid,
        "title": title,
        "tags": ["fleet-monitor"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 41,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {
                "title": "Fleet Monitor",
                "type": "dashboards",
                "tags": ["fleet-monitor"],
                "asDropdown": True,
                "icon": "external link",
                "includeVars": False,
                "keepTime": True,
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "panels": layout(panels),
    }


def threshold_lines() -> str:
    """Where each alarm threshold sits: {dashboard file: [{panel, step, alert_type}]} (indexes)."""
    lines: dict[str, list[dict]] = {}
    for uid, (_, _, panels) in DASHBOARDS.items():
        for number, item in enumerate(panels):
            for step, entry in enumerate(item["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])):
                if isinstance(entry["value"], Line):
                    found = {"panel": number, "step": step, "alert_type": entry["value"].alert_type}
                    lines.setdefault(f"{uid}.json", []).append(found)
    return json.dumps(lines, indent=2) + "\n"


def build() -> dict[str, str]:
    return {
        f"{uid}.json": json.dumps(dashboard(uid, title, variables, panels), indent=2, ensure_ascii=False) + "\n"
        for uid, (title, variables, panels) in DASHBOARDS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the committed JSON differs")
    args = parser.parse_args(argv)
    files = build()
    stale = sorted(
        {name for name, text in files.items() if not (OUT / name).is_file() or (OUT / name).read_text() != text}
        | {path.name for path in OUT.glob("*.json") if path.name not in files}
        | ({LINES.name} if not LINES.is_file() or LINES.read_text() != threshold_lines() else set())
    )
    if args.check:
        if stale:
            print("dashboards out of date (run scripts/build-dashboards.py): " + ", ".join(stale), file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for path in OUT.glob("*.json"):
        if path.name not in files:
            path.unlink()
    for name, text in files.items():
        (OUT / name).write_text(text)
    LINES.write_text(threshold_lines())
    return 0


if __name__ == "__main__":
    sys.exit(main())
