"""Hand-made rows for the API tests: the states a simulated run cannot produce (acknowledged and
cleared alarms, stale sources, KPI windows at fixed times), and the key the tests call with.
Shared by tests/integration/test_api.py and test_api_fuzz.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg

TOKEN = "fm_test-operator-token"
BASE = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)  # a Monday; fixed times for the time-series checks


def alarm(alert_id, source, alert_type="co2_high", severity="warning", status="active", first=BASE, last=None, **kw):  # noqa: PLR0917
    return {
        "alert_id": alert_id,
        "alert_type": alert_type,
        "severity": severity,
        "status": status,
        "source_id": source,
        "fleet_id": kw.get("fleet_id", "fleet-a"),
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
            ("veh-1", "vehicle", "fleet-a", None, None, now - timedelta(seconds=5)),
            ("veh-2", "vehicle", "fleet-a", None, None, now - timedelta(hours=2)),  # stale: inactive
            ("bld-1", "building_device", "fleet-b", "site-1", "zone-a", now - timedelta(seconds=10)),
            ("bld-2", "building_device", "fleet-b", "site-1", "zone-b", now - timedelta(seconds=10)),
            ("hb-1", "device", "fleet-b", None, None, now - timedelta(seconds=20)),
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
                fleet_id="fleet-a",
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
