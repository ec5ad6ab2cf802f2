"""Hand-made rows for the API tests: the states a simulated run cannot produce (acknowledged and
cleared alarms, stale sources, KPI windows at fixed times), and the key the tests call with.
Shared by tests/integration/test_api.py and test_api_fuzz.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg

TOKEN = "fm_test-operator-token"
BASE = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)  # a Monday; fixed times for the time-series checks
FLEETS = {"veh-1": "fleet-a", "veh-2": "fleet-a", "bld-1": "fleet-b", "bld-2": "fleet-b", "hb-1": "fleet-b"}


def alarm(alert_id, source, alert_type="co2_high", severity="warning", status="active", first=BASE, last=None, **kw):  # noqa: PLR0917
    return {
        "alert_id": alert_id,
        "alert_type": alert_type,
        "severity": severity,
        "status": status,
        "source_id": source,
        "fleet_id": kw.get("fleet_id", FLEETS.get(source, "fleet-a")),  # the source's, as the jobs write it
        "first_seen": first,
        "last_seen": last or first,
        "count": kw.get("count", 1),
        "value": 1200.0,
        "threshold": 1000.0,
        "message": "m",
        "cleared_at": kw.get("cleared_at"),
    }


def seed(url: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # per test: "silent for" is measured from the seeding
    with psycopg.connect(url) as conn:
        sources = [
            ("veh-1", "vehicle", FLEETS["veh-1"], None, None, now - timedelta(seconds=5)),
            ("veh-2", "vehicle", FLEETS["veh-2"], None, None, now - timedelta(hours=2)),  # stale: inactive
            ("bld-1", "building_device", FLEETS["bld-1"], "site-1", "zone-a", now - timedelta(seconds=10)),
            ("bld-2", "building_device", FLEETS["bld-2"], "site-1", "zone-b", now - timedelta(seconds=10)),
            ("hb-1", "device", FLEETS["hb-1"], None, None, now - timedelta(seconds=20)),
        ]
        conn.cursor().executemany(
            "INSERT INTO source_state (source_id, kind, fleet_id, site_id, zone_id, last_seen, last_schema, latest)"
            " VALUES (%s, %s, %s, %s, %s, %s, 'x', %s)",
            [(*row, json.dumps({"speed_kmh": 50})) for row in sources],
        )
        conn.execute(  # hb-1 silent 20 s with a 10 s timeout: inactive even before the job flags it
            "INSERT INTO device_inactivity VALUES ('hb-1', %s, 10, false, NULL, %s)", (now - timedelta(seconds=20), now)
        )
        alarms = [
            alarm("a1", "bld-1", first=BASE + timedelta(hours=1), last=BASE + timedelta(hours=5)),
            alarm(
                "a2",
                "bld-1",
                "temperature_high",
                "critical",
                first=BASE + timedelta(hours=1, minutes=30),
                last=BASE + timedelta(hours=4),
            ),
            alarm(
                "a3",
                "bld-2",
                "humidity_high",
                "info",
                "cleared",
                first=BASE + timedelta(days=1, hours=13),
                last=BASE + timedelta(days=1, hours=14),
                cleared_at=BASE + timedelta(days=1, hours=14),
            ),
            alarm(
                "a4",
                "veh-1",
                "speeding",
                "warning",
                "acknowledged",
                first=BASE + timedelta(hours=1),
                last=BASE + timedelta(hours=3),
            ),
        ]
        columns = ", ".join(alarms[0])
        conn.execute(
            f"INSERT INTO alarms ({columns}) SELECT {columns} FROM jsonb_populate_recordset(NULL::alarms, %s::jsonb)",
            (json.dumps(alarms, default=str),),
        )
        conn.cursor().executemany(
            "INSERT INTO driving_kpis VALUES (%s, %s, 300, %s, 'fleet-a', %s, %s, %s, NULL)",
            [
                (BASE, BASE + timedelta(minutes=5), "veh-1", 2, 1, 50.0),
                (BASE + timedelta(minutes=5), BASE + timedelta(minutes=10), "veh-1", 0, 0, 30.0),
                (BASE, BASE + timedelta(minutes=5), "veh-2", 0, 1, 20.0),
            ],
        )


def seed_both_fleets(url: str) -> None:
    """After seed(): rows that give each fleet something on every data route (a trend, a KPI
    window, a silent device, an audit record), so hiding the other fleet's is observable."""
    now = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO source_state (source_id, kind, fleet_id, last_seen, last_schema)"
            " VALUES ('hb-2', 'device', 'fleet-a', %s, 'device.heartbeat')",
            (now - timedelta(seconds=30),),
        )
        conn.execute(  # a zone of fleet-a's, with an alarm
            "INSERT INTO source_state (source_id, kind, fleet_id, site_id, zone_id, last_seen, last_schema)"
            " VALUES ('bld-a', 'building_device', 'fleet-a', 'site-2', 'zone-c', %s, 'building.reading')",
            (now - timedelta(seconds=10),),
        )
        zone_alarm = alarm("a5", "bld-a", first=BASE + timedelta(hours=2), fleet_id="fleet-a")
        conn.execute(
            "INSERT INTO alarms SELECT * FROM jsonb_populate_record(NULL::alarms, %s::jsonb)",
            (json.dumps(zone_alarm | {"updated_at": now}, default=str),),
        )
        conn.execute(
            "INSERT INTO device_inactivity VALUES ('hb-2', %s, 10, true, %s, %s)",
            (now - timedelta(seconds=30), now - timedelta(seconds=20), now),
        )
        conn.cursor().executemany(
            "INSERT INTO readings (time, source_id, fleet_id, schema_name, metric, value, event_id)"
            " VALUES (%s, %s, %s, 'x', 'latitude', %s, %s)",
            [
                (BASE + timedelta(hours=1, minutes=minute), source, FLEETS[source], value, f"e-{source}-{minute}")
                for source, value in (("veh-1", 52.5), ("bld-1", 48.1))
                for minute in range(3)
            ],
        )
        conn.execute(
            "INSERT INTO driving_kpis VALUES (%s, %s, 300, 'veh-b', 'fleet-b', 1, 1, 10.0, 10.0)",
            (BASE, BASE + timedelta(minutes=5)),
        )
        conn.cursor().executemany(  # region r-1 serves both fleets (and rows from before 0016: '*')
            "INSERT INTO trip_metrics (window_start, window_end, window_s, region_id, fleet_id, trips, revenue,"
            " avg_duration_s, avg_distance_km) VALUES (%s, %s, 300, 'r-1', %s, %s, %s, 600.0, 5.0)",
            [
                (BASE + timedelta(minutes=m), BASE + timedelta(minutes=m + 5), fleet, trips, revenue)
                for m, fleet, trips, revenue in ((0, "fleet-a", 2, 20.0), (0, "fleet-b", 3, 45.0), (5, "*", 4, 40.0))
            ],
        )
        conn.execute(
            "INSERT INTO alarm_audit (alert_id, action, key_name, fleet_id, at)"
            " VALUES ('a4', 'acknowledge', 'seed', 'fleet-a', %s), ('a3', 'clear', 'seed', 'fleet-b', %s)",
            (BASE + timedelta(hours=2), BASE + timedelta(days=1, hours=14)),
        )
