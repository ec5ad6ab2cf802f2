"""Migrations on real PostgreSQL 15 (plain path): idempotent runs, the CLI, Vector's insert
statement into alarm_events, the time_bucket fallback and retention pruning."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from storage.migrate import expected_versions, migrate_up, migration_status
from tests.support.storage_upgrade import CONVERTED, migrate_until, seed_before_tires

pytestmark = pytest.mark.integration

# Exactly what Vector's postgres sink executes per batch ($1: the batch as a JSON array); %s for psycopg.
VECTOR_INSERT = "INSERT INTO alarm_events SELECT * FROM jsonb_populate_recordset(NULL::alarm_events, %s)"
CORE_TABLES = {
    "readings",
    "aggregates",
    "alarms",
    "alarm_events",
    "source_state",
    "device_inactivity",
    "driving_kpis",
    "trip_metrics",
    "dead_letters",
}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "storage.migrate", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_up_is_idempotent_and_status_is_current(pg_url):
    assert migrate_up(pg_url) == expected_versions()
    assert migrate_up(pg_url) == []
    report = migration_status(pg_url)
    assert report["pending"] == [] and report["timescaledb"] is None
    assert {row["state"] for row in report["migrations"]} == {"applied"}
    assert next(r for r in report["migrations"] if r["version"] == "0003_rollups")["variant"] == "plain"
    with psycopg.connect(pg_url) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        views = {row[0] for row in conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'public'")}
    assert tables >= CORE_TABLES and {"readings_1h", "readings_1d"} <= views


def test_cli_up_then_status(pg_url):
    before = cli("status", "--database-url", pg_url, "--check")
    assert before.returncode == 1 and "pending" in before.stdout
    up = cli("up", "--database-url", pg_url, "--retention", "readings=7 days")
    assert up.returncode == 0, up.stderr
    assert all(json.loads(line)["level"] in ("info", "warning") for line in up.stderr.splitlines())
    status = cli("status", "--database-url", pg_url, "--json", "--check")
    assert status.returncode == 0 and json.loads(status.stdout)["pending"] == []
    missing = cli("up")
    assert missing.returncode == 2 and "--database-url" in missing.stderr
    assert cli("--help").returncode == 0


def test_status_flags_a_changed_migration(pg_url):
    migrate_up(pg_url)
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = '0002_api_indexes'")
    rows = {row["version"]: row["state"] for row in migration_status(pg_url)["migrations"]}
    assert rows["0002_api_indexes"] == "changed"
    assert cli("status", "--database-url", pg_url, "--check").returncode == 1


def test_vector_statement_appends_alarm_events_without_defaults(pg_url):
    migrate_up(pg_url)
    records = [
        {
            "alert_id": "a1",
            "alert_type": "co2_high",
            "severity": "warning",
            "status": "active",
            "source_id": "b-1",
            "fleet_id": "f",
            "first_seen": "2025-01-01T00:00:00.000Z",
            "last_seen": "2025-01-01T00:01:00.000Z",
            "count": 2,
            "value": 1300.5,
            "threshold": 1000,
            "message": "CO2 high",
        },
        # Fields absent (fleet_id, cleared_at, value, threshold, message) arrive as NULLs.
        {
            "alert_id": "a1",
            "alert_type": "co2_high",
            "severity": "warning",
            "status": "cleared",
            "source_id": "b-1",
            "first_seen": "2025-01-01T00:00:00.000Z",
            "last_seen": "2025-01-01T00:05:00.000Z",
            "count": 3,
        },
    ]
    with psycopg.connect(pg_url) as conn:
        conn.execute(VECTOR_INSERT, (json.dumps(records),))
        rows = conn.execute("SELECT status, count, value, fleet_id FROM alarm_events ORDER BY last_seen").fetchall()
    assert rows == [("active", 2, 1300.5, "f"), ("cleared", 3, None, None)]


def test_time_bucket_fallback_matches_timescale_semantics(pg_url):
    migrate_up(pg_url)
    with psycopg.connect(pg_url) as conn:
        hour, week = conn.execute(
            "SELECT time_bucket('1 hour', '2025-03-05 13:47:10+00'::timestamptz),"
            " time_bucket('7 days', '2025-03-05 13:47:10+00'::timestamptz)"
        ).fetchone()
    assert hour == datetime(2025, 3, 5, 13, tzinfo=UTC)
    assert week == datetime(2025, 3, 3, tzinfo=UTC)  # weeks start on Monday, as TimescaleDB's origin


def test_prune_deletes_only_rows_past_retention(pg_url):
    migrate_up(pg_url)
    now = datetime.now(UTC)
    with psycopg.connect(pg_url) as conn:
        for age_days, event in ((10, "old"), (1, "new")):
            conn.execute(
                "INSERT INTO readings VALUES (%s, 's', 'f', 'tire.reading', 'pressure_kpa', 1, %s)",
                (now - timedelta(days=age_days), event),
            )
            conn.execute(
                "INSERT INTO dead_letters VALUES (%s, 'malformed', 't', '{}', 'bad', NULL, %s)",
                (event, now - timedelta(days=age_days)),
            )
    result = cli(
        "prune", "--database-url", pg_url, "--retention", "readings=7 days", "--retention", "dead_letters=3 days"
    )
    assert result.returncode == 0, result.stderr
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT event_id FROM readings").fetchall() == [("new",)]
        assert conn.execute("SELECT id FROM dead_letters").fetchall() == [("new",)]


def test_tire_dimension_upgrade_splits_old_tire_metrics(pg_url, monkeypatch):
    migrate_until(pg_url, "0012_loader_offsets", monkeypatch)
    at = datetime(2025, 3, 3, 10, tzinfo=UTC)
    with psycopg.connect(pg_url) as conn:
        seed_before_tires(conn, at)
    assert migrate_up(pg_url)[0] == "0013_tire_dimension"
    with psycopg.connect(pg_url) as conn:
        for table in ("readings", "aggregates", "readings_1h", "readings_1d"):
            rows = conn.execute(f"SELECT source_id, metric, tire FROM {table} ORDER BY 1, 2, 3").fetchall()
            assert rows == CONVERTED, table
        # The key includes the tire: a second tire's window of the same metric is a row of its own.
        conn.execute(
            "INSERT INTO aggregates VALUES (%s, %s, 60, 'veh-1', 'f', 'tire.reading', 'pressure_kpa', 1, 1, 1, 1, 'FR')",
            (at, at + timedelta(minutes=1)),
        )
        key = conn.execute(
            "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index i CROSS JOIN unnest(i.indkey) WITH ORDINALITY"
            " AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
            " WHERE i.indrelid = 'aggregates'::regclass AND i.indisprimary"
        ).fetchone()[0]
    assert key == ["source_id", "metric", "tire", "window_s", "window_start"]
