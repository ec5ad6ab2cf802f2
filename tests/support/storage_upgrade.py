"""The schema an older release left, for the upgrade tests of both engines (plain PostgreSQL:
test_storage_migrations, TimescaleDB: test_storage_timescale)."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
import pytest

import storage.migrate
from storage.migrate import migrate_up


def migrate_until(url: str, last: str, monkeypatch: pytest.MonkeyPatch, **options) -> None:
    """Apply the migrations up to and including `last` only: the schema an older release left."""
    earlier = [migration for migration in storage.migrate.migrations() if migration.version <= last]
    with monkeypatch.context() as patched:
        patched.setattr(storage.migrate, "migrations", lambda: earlier)
        migrate_up(url, **options)


# Rows as the jobs wrote them before 0013: the tire in the metric name.
OLD_READINGS = [
    ("veh-1", "tire.reading", "pressure_kpa.FL", 201.0, "t1"),
    ("veh-1", "tire.reading", "temperature_c.RRI", 61.0, "t1"),
    ("veh-1", "driving.event", "driving.event.odometer_km", 12.0, "d1"),
    ("bld-1", "building.reading", "temperature_c", 22.0, "b1"),
]
CONVERTED = [
    ("bld-1", "temperature_c", ""),
    ("veh-1", "driving.event.odometer_km", ""),
    ("veh-1", "pressure_kpa", "FL"),
    ("veh-1", "temperature_c", "RRI"),
]


def seed_before_tires(conn: psycopg.Connection, at: datetime) -> None:
    for source, schema_name, metric, value, event in OLD_READINGS:
        conn.execute(
            "INSERT INTO readings (time, source_id, fleet_id, schema_name, metric, value, event_id)"
            " VALUES (%s, %s, 'f', %s, %s, %s, %s)",
            (at, source, schema_name, metric, value, event),
        )
        conn.execute(
            "INSERT INTO aggregates (window_start, window_end, window_s, source_id, fleet_id, schema_name, metric,"
            " avg, min, max, count) VALUES (%s, %s, 60, %s, 'f', %s, %s, %s, %s, %s, 1)",
            (at, at + timedelta(minutes=1), source, schema_name, metric, value, value, value),
        )
