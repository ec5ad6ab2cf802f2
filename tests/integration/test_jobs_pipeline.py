"""The jobs on the real Flink mini-cluster and real PostgreSQL, through `python -m jobs all`:
window results against an independent reference, every alarm raised and cleared once per
incident, dead letters, driving KPIs by hand, and kill -9 + restore equals an uninterrupted run."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from contracts import AlertType, parse_event
from contracts.topics import topic_for
from jobs.sample import START, build
from storage.migrate import migrate_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
COMPARED_TABLES = {
    "readings": "source_id, metric, time, event_id, value",
    "aggregates": "source_id, metric, window_s, window_start, avg, min, max, count",
    "alarms": "alert_id, alert_type, status, first_seen, last_seen, cleared_at, count, value",
    "source_state": "source_id, last_seen, latest::text",
    "driving_kpis": "source_id, window_s, window_start, interventions, disengagements, distance_km",
    "trip_metrics": "region_id, window_s, window_start, trips, revenue, avg_duration_s",
    "dead_letters": "id, kind, topic, error, field",
}


def new_database(server: str) -> str:
    name = f"jobs_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = server.rsplit("/", 1)[0] + f"/{name}" + ("?" + server.split("?", 1)[1] if "?" in server else "")
    migrate_up(url)
    return url


def jobs_command(input_dir: Path, url: str, checkpoints: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jobs",
        "all",
        "--input-dir",
        str(input_dir),
        "--database-url",
        url,
        "--checkpoint-dir",
        str(checkpoints),
        "--checkpoint-interval",
        "1",
        *extra,
    ]


def run_jobs(*args: str, timeout: float = 400) -> None:
    result = subprocess.run(list(args), check=False, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]


def rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        return conn.execute(query).fetchall()


@pytest.fixture(scope="module")
def sample():
    return build()


@pytest.fixture(scope="module")
def full_run(postgres_server, sample, tmp_path_factory) -> str:
    """One uninterrupted run of every pipeline over the sample; the tests below read its output."""
    work = tmp_path_factory.mktemp("jobs-full")
    sample.write(work / "in")
    url = new_database(postgres_server)
    run_jobs(*jobs_command(work / "in", url, work / "checkpoints"))
    return url


def on_time_events(sample) -> list:
    bad = sample.late | sample.malformed
    return [parse_event(line) for family, lines in sample.lines.items() for line in lines if (family, line) not in bad]


def reference_aggregates(sample) -> dict[tuple, tuple]:
    """avg/min/max/count per (source, metric, window size, window start), computed in Python."""
    windows = {"building.reading": (300, 900)}
    values: dict[tuple, list[float]] = defaultdict(list)
    for event in on_time_events(sample):
        own = event.model_dump(exclude={"schema_", "version", "event_id", "source_id", "event_time", "fleet_id"})
        suffix = f".{event.tire_position}" if event.schema_name == "tire.reading" else ""
        prefix = "driving.event." if event.schema_name == "driving.event" else ""  # telemetry names odometer_km
        for field, value in own.items():
            metric = prefix + field
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value is not None:
                for size in windows.get(event.schema_name, (60,)):
                    offset = (event.event_time - START).total_seconds() // size * size
                    start = START + timedelta(seconds=offset)
                    values[(event.source_id, metric + suffix, size, start)].append(float(value))
    return {key: (sum(v) / len(v), min(v), max(v), len(v)) for key, v in values.items()}


def test_window_aggregates_equal_an_independent_reference(full_run, sample):
    expected = reference_aggregates(sample)
    actual = {
        (source, metric, size, start): (avg, low, high, count)
        for source, metric, size, start, avg, low, high, count in rows(
            full_run, "SELECT source_id, metric, window_s, window_start, avg, min, max, count FROM aggregates"
        )
    }
    assert actual.keys() == expected.keys()
    for key, (avg, low, high, count) in expected.items():
        got = actual[key]
        assert got[3] == count, key
        assert math.isclose(got[0], avg, rel_tol=1e-9) and (got[1], got[2]) == (low, high), key


def test_every_alarm_type_is_raised_and_cleared_once_per_incident(full_run):
    alarms = rows(full_run, "SELECT alert_type, source_id, status, count, first_seen, cleared_at FROM alarms")
    by_type = defaultdict(list)
    for alert_type, source, status, count, first_seen, cleared_at in alarms:
        by_type[alert_type].append((source, status, count, first_seen, cleared_at))
    expected = set(AlertType) - {AlertType.DEVICE_INACTIVE}
    assert set(by_type) == {str(t) for t in expected}
    incident_start = START + timedelta(seconds=5 * 24)  # build(): steps 24..27 breach, 28 in the band
    for alert_type, incidents in by_type.items():
        assert len(incidents) == 1, (alert_type, incidents)  # the band reading did not flap it
        source, status, count, first_seen, cleared_at = incidents[0]
        assert source in ("veh-000", "bld-dev-1")
        assert (status, count, first_seen) == ("cleared", 4, incident_start), alert_type
        assert cleared_at == incident_start + timedelta(seconds=25), alert_type  # first reading past `clear`


def test_malformed_and_late_events_are_dead_letters_with_reasons(full_run, sample):
    letters = rows(full_run, "SELECT kind, topic, payload, error, field FROM dead_letters")
    got = {(kind, topic, payload) for kind, topic, payload, _, _ in letters}
    expected = {("late", topic_for(f), line) for f, line in sample.late}
    expected |= {("malformed", topic_for(f), line) for f, line in sample.malformed}
    assert got == expected
    reasons = {payload: (error, field) for kind, _, payload, error, field in letters if kind == "malformed"}
    assert reasons['{"schema": "tire.reading"}'][1] == "event_id"  # the ContractError's field
    assert "not valid JSON" in reasons["not json"][0]
    # Every on-time event is in readings exactly once per metric; none of the rejects are.
    readings = rows(full_run, "SELECT count(DISTINCT event_id || source_id) FROM readings")[0][0]
    assert readings == len({(e.event_id, e.source_id) for e in on_time_events(sample)})


def test_driving_kpis_and_trip_metrics_match_hand_computed_values(full_run):
    kpis = rows(
        full_run,
        "SELECT window_start, interventions, disengagements, distance_km, km_per_intervention "
        "FROM driving_kpis WHERE source_id = 'veh-000' ORDER BY window_start",
    )
    # veh-000 in [0, 300 s): driving events at steps 3, 15, 27, 39, 51 = intervention x4 (n = 0, 1, 3, 4),
    # disengagement x1 (n = 2); odometer 1000.0 .. 1005.9 -> 5.9 km, 1.475 km per intervention.
    first, second = kpis
    assert first[:3] == (START, 4, 1)
    assert math.isclose(first[3], 5.9) and math.isclose(first[4], 5.9 / 4)
    # [300, 360 s): one disengagement, no intervention -> no km per intervention; 1006.0 .. 1007.1.
    assert second[:3] == (START + timedelta(seconds=300), 0, 1)
    assert math.isclose(second[3], 1.1) and second[4] is None
    trips = rows(
        full_run,
        "SELECT region_id, trips, revenue FROM trip_metrics WHERE window_start = %s ORDER BY 1".replace(
            "%s", f"'{START.isoformat()}'"
        ),
    )
    # Two vehicles; region-0 gets trips n = 0, 2, 4 (fares 10, 12, 14), region-1 n = 1, 3 (11, 13).
    assert trips == [("region-0", 6, 72.0), ("region-1", 4, 48.0)]


def test_source_state_holds_the_latest_event_per_source(full_run):
    state = {
        source: (last_seen, schema, parse_event(json.dumps(latest)))
        for source, last_seen, schema, latest in rows(
            full_run, "SELECT source_id, last_seen, last_schema, latest FROM source_state"
        )
    }
    last = START + timedelta(seconds=5 * 71)
    assert {source: seen for source, (seen, _, _) in state.items()} == {
        "veh-000": last,
        "veh-001": last,
        "bld-dev-1": last,
    }
    for source, (seen, schema, event) in state.items():  # the row is that event, whole
        assert (event.source_id, event.event_time, event.schema_name) == (source, seen, schema)


def snapshot(url: str) -> dict[str, list]:
    """Every compared table, sorted; doubles rounded to 9 decimals because a restored window sums
    its values in another order (1040.1499999999999 vs 1040.15)."""

    def rounded(row: tuple) -> tuple:
        return tuple(round(value, 9) if isinstance(value, float) else value for value in row)

    return {
        table: sorted(map(rounded, rows(url, f"SELECT {columns} FROM {table}")))
        for table, columns in COMPARED_TABLES.items()
    }


def test_kill_mid_stream_and_restore_gives_the_uninterrupted_result(postgres_server, tmp_path):
    """kill -9 the whole job process once output has started to land, restore from the latest
    checkpoint, and compare every table with an uninterrupted run. The data has no events late
    beyond the bound: watermarks are not part of a checkpoint, so which events count as late
    may differ right after a restore (see the README)."""
    data = build(steps=720, vehicles=4, late=0)
    data.write(tmp_path / "in")
    baseline = new_database(postgres_server)
    run_jobs(*jobs_command(tmp_path / "in", baseline, tmp_path / "ck-baseline"))

    url = new_database(postgres_server)
    command = jobs_command(tmp_path / "in", url, tmp_path / "ck")
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300
        while not rows(url, "SELECT count(*) FROM job_output_files")[0][0]:
            assert process.poll() is None, "job ended before any output"
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    at_kill = snapshot(url)
    assert at_kill != snapshot(baseline), "the kill came after the end: nothing to restore"
    run_jobs(*command, "--restore", "latest")
    restored, expected = snapshot(url), snapshot(baseline)
    for table in COMPARED_TABLES:
        missing = sorted(set(expected[table]) - set(restored[table]))[:3]
        extra = sorted(set(restored[table]) - set(expected[table]))[:3]
        assert restored[table] == expected[table], (table, "missing", missing, "extra", extra)
