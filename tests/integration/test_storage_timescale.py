"""The TimescaleDB path on the real TimescaleDB engine (PGlite with TimescaleDB 2.23, see
tests/support/timescale_engine.py): hypertables, compression by source, continuous aggregates, the
environment's policies, Vector's insert, and the API's trends over the rollups.

One engine serves the module (it starts in ~10 s and has a single database), so the tests run in
order on one migrated schema and clean up the rows they add."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from api.app import create_app
from api.security import hash_token, new_token, parse_api_keys
from api.settings import Settings
from storage.migrate import migrate_up, migration_status
from storage.policies import PolicySettings
from storage.roles import ensure_login_users
from tests.support.db_roles import PASSWORDS
from tests.support.storage_upgrade import CONVERTED, migrate_until, seed_before_tires
from tests.support.timescale_engine import TimescaleEngine, engine_installed

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not engine_installed(), reason="TimescaleDB engine not installed: run `make setup`"),
]
VECTOR_INSERT = "INSERT INTO alarm_events SELECT * FROM jsonb_populate_recordset(NULL::alarm_events, %s)"
DEV = ["readings=3 days", "aggregates=30 days", "alarm_events=30 days", "dead_letters=7 days"]


@pytest.fixture(scope="module")
def tsdb() -> str:
    with TimescaleEngine() as engine:
        applied = migrate_up(engine.url, timescaledb="require", policies=PolicySettings.build(DEV))
        assert "0003_rollups" in applied
        yield engine.url


def query(url: str, statement: str, params=None) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(statement, params).fetchall()


def test_hypertables_with_compression_segmented_by_source(tsdb):
    hypertables = dict(
        query(tsdb, "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables")
    )
    assert {"readings": True, "aggregates": True, "alarm_events": True}.items() <= hypertables.items()
    segment_by = query(
        tsdb,
        "SELECT hypertable_name, attname FROM timescaledb_information.compression_settings"
        " WHERE segmentby_column_index IS NOT NULL",
    )
    assert {("readings", "source_id"), ("aggregates", "source_id"), ("alarm_events", "source_id")} <= set(segment_by)
    caggs = {row[0] for row in query(tsdb, "SELECT view_name FROM timescaledb_information.continuous_aggregates")}
    assert caggs == {"readings_1h", "readings_1d"}


def test_policies_follow_the_environment_settings(tsdb):
    policies = {(p["policy"], p["table"]): p["config"] for p in migration_status(tsdb)["policies"]}
    assert policies[("retention", "readings")]["drop_after"] == "3 days"
    assert policies[("retention", "aggregates")]["drop_after"] == "30 days"
    assert policies[("compression", "readings")]["compress_after"] == "2 days"
    assert policies[("refresh_continuous_aggregate", "readings_1h")]["start_offset"] == "1 day"
    # Re-running with other settings replaces the policies instead of adding more.
    migrate_up(tsdb, policies=PolicySettings.build(["readings=10 days"], compress_after="4 days"))
    again = migration_status(tsdb)["policies"]
    assert len([p for p in again if p["table"] == "readings"]) == 2
    readings = {p["policy"]: p["config"] for p in again if p["table"] == "readings"}
    assert readings["retention"]["drop_after"] == "10 days" and readings["compression"]["compress_after"] == "4 days"


def test_cli_status_reports_timescaledb(tsdb):
    result = subprocess.run(
        [sys.executable, "-m", "storage.migrate", "status", "--database-url", tsdb, "--json", "--check"],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["timescaledb"].startswith("2.") and report["pending"] == []


def test_vector_statement_into_the_hypertable(tsdb):
    record = {
        "alert_id": "v1",
        "alert_type": "battery_low",
        "severity": "warning",
        "status": "active",
        "source_id": "veh-9",
        "first_seen": "2025-01-01T00:00:00Z",
        "last_seen": "2025-01-01T00:00:00Z",
        "count": 1,
    }
    with psycopg.connect(tsdb, autocommit=True) as conn:
        conn.execute(VECTOR_INSERT, (json.dumps([record]),))
        assert conn.execute("SELECT count, message FROM alarm_events WHERE alert_id = 'v1'").fetchone() == (1, None)
        conn.execute("DELETE FROM alarm_events WHERE alert_id = 'v1'")


def test_rollups_refresh_and_compressed_chunks_stay_queryable(tsdb):
    start = datetime(2025, 6, 2, tzinfo=UTC)
    rows = [(start + timedelta(minutes=15 * i), float(i), f"e{i}") for i in range(8)]  # two hours
    with psycopg.connect(tsdb, autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO readings VALUES (%s, 'veh-1', 'f', 'tire.reading', 'pressure_kpa', %s, %s, 'FL')", rows
        )
        conn.execute("CALL refresh_continuous_aggregate('readings_1h', NULL, NULL)")
        conn.execute("CALL refresh_continuous_aggregate('readings_1d', NULL, NULL)")
        conn.execute("SELECT compress_chunk(c) FROM show_chunks('readings') c")
        hourly = conn.execute(
            "SELECT bucket, sum / count, min, max, count FROM readings_1h WHERE source_id = 'veh-1' ORDER BY bucket"
        ).fetchall()
        daily = conn.execute("SELECT sum / count, count FROM readings_1d WHERE source_id = 'veh-1'").fetchall()
        compressed = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'readings' AND is_compressed"
        ).fetchone()[0]
        raw = conn.execute("SELECT count(*) FROM readings WHERE source_id = 'veh-1'").fetchone()[0]
    assert hourly == [(start, 1.5, 0.0, 3.0, 4), (start + timedelta(hours=1), 5.5, 4.0, 7.0, 4)]
    assert daily == [(3.5, 8)]
    assert compressed >= 1 and raw == 8


async def test_api_trends_over_the_rollups(tsdb):
    start = datetime(2025, 6, 2, tzinfo=UTC)
    with psycopg.connect(tsdb, autocommit=True) as conn:  # a reading after the refresh: real-time aggregation
        conn.execute(
            "INSERT INTO readings VALUES (%s, 'veh-1', 'f', 'tire.reading', 'pressure_kpa', 100, 'late', 'FL')",
            (start + timedelta(hours=2, minutes=5),),
        )
    token = new_token()
    keys = parse_api_keys(f"test:{hash_token(token)}")
    app = create_app(
        Settings(database_url=tsdb, api_keys=keys, pool_min=1, pool_max=1)
    )  # the engine serves one connection
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"}  # reads need a key by default
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers) as http,
    ):
        params = {
            "metric": "pressure_kpa",
            "tire": "FL",
            "resolution": "1h",
            "since": start.isoformat(),
            "until": (start + timedelta(hours=3)).isoformat(),
        }
        points = (await http.get("/sources/veh-1/trends", params=params)).json()["points"]
        ready = await http.get("/ready")
    assert [(p["avg"], p["count"]) for p in points] == [(1.5, 4), (5.5, 4), (100.0, 1)]
    assert ready.status_code == 200


def test_tire_dimension_upgrade_of_compressed_hypertables(monkeypatch):
    """0013 on a TimescaleDB schema holding compressed chunks of old-style tire metrics: rows
    converted, the key and the compression order carry the tire, the rollups group by it."""
    at = datetime(2025, 3, 3, 10, tzinfo=UTC)
    with TimescaleEngine() as engine:
        migrate_until(engine.url, "0012_loader_offsets", monkeypatch, timescaledb="require")
        with psycopg.connect(engine.url, autocommit=True) as conn:
            seed_before_tires(conn, at)
            conn.execute("CALL refresh_continuous_aggregate('readings_1h', NULL, NULL)")
            for table in ("readings", "aggregates"):
                conn.execute(f"SELECT compress_chunk(c) FROM show_chunks('{table}') c")
        assert migrate_up(engine.url, timescaledb="require")[0] == "0013_tire_dimension"
        with psycopg.connect(engine.url, autocommit=True) as conn:
            for table in ("readings", "aggregates", "readings_1h", "readings_1d"):
                rows = conn.execute(f"SELECT source_id, metric, tire FROM {table} ORDER BY 1, 2, 3").fetchall()
                assert rows == CONVERTED, table
            order = conn.execute(
                "SELECT hypertable_name, string_agg(attname, ',' ORDER BY orderby_column_index)"
                " FROM timescaledb_information.compression_settings WHERE orderby_column_index IS NOT NULL GROUP BY 1"
            ).fetchall()
            assert {"readings": "metric,tire,time", "aggregates": "metric,tire,window_s,window_start"}.items() <= dict(
                order
            ).items()
            conn.execute("SELECT compress_chunk(c) FROM show_chunks('aggregates') c")  # compresses again
            conn.execute(
                "INSERT INTO aggregates VALUES (%s, %s, 60, 'veh-1', 'f', 'tire.reading', 'pressure_kpa', 1, 1, 1, 1,"
                " 'FR') ON CONFLICT (source_id, metric, tire, window_s, window_start) DO NOTHING",
                (at, at + timedelta(minutes=1)),
            )
            assert conn.execute("SELECT count(*) FROM aggregates WHERE metric = 'pressure_kpa'").fetchone()[0] == 2
        policies = {(p["policy"], p["table"]) for p in migration_status(engine.url)["policies"]}
        assert {("compression", "readings"), ("refresh_continuous_aggregate", "readings_1h")} <= policies


def test_roles_on_hypertables_and_rollups(tsdb):
    """The roles' grants where TimescaleDB is involved: the writer's inserts create chunks, the API
    reads the continuous aggregates, the owner owns them. PGlite serves every client in its one
    session as its bootstrap user and ignores the startup packet's user and options, so the LOGIN
    users are taken with SET ROLE here, and their login settings (Grafana's read-only default and
    statement timeout) cannot apply: test_storage_roles covers those on PostgreSQL."""
    with psycopg.connect(tsdb, autocommit=True) as conn:
        ensure_login_users(conn, PASSWORDS)
        owners = conn.execute(
            "SELECT view_name, view_owner FROM timescaledb_information.continuous_aggregates ORDER BY 1"
        ).fetchall()
        assert owners == [("readings_1d", "fleet_owner"), ("readings_1h", "fleet_owner")]
        at = datetime(2031, 1, 1, tzinfo=UTC)  # a chunk of its own, made by the writer's insert
        try:
            conn.execute("SET ROLE fleet_writer_login")
            conn.execute(
                "INSERT INTO readings VALUES (%s, 'veh-r', 'f', 'x', 'speed', 1, 'r1', '')", (at,), prepare=False
            )
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT acknowledged_by FROM alarms")
            conn.execute("SET ROLE fleet_api_login")
            rollup = "SELECT count FROM readings_1h WHERE source_id = 'veh-r'"
            assert conn.execute(rollup, prepare=False).fetchall() == [(1,)]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("INSERT INTO readings VALUES (now(), 'veh-r', 'f', 'x', 'speed', 1, 'r2', '')")
            conn.execute("SET ROLE fleet_grafana_login")
            assert conn.execute("SELECT count FROM readings_1d WHERE source_id = 'veh-r'").fetchall() == [(1,)]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM readings")
        finally:
            conn.execute("RESET ROLE")
            conn.execute("DELETE FROM readings WHERE source_id = 'veh-r'")
