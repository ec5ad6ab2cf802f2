"""Seed inputs from their real producers through Kafka and a bounded run of every job into the
database: seed 003's legacy heartbeats with integer epoch seconds (the simulator's legacy devices)
and seed 004's own trip records in CSV and JSON (`python -m generator --replay`, no source_id,
`duration`/`distance`). None of them may become a dead letter.

The simulator sends only integer epoch seconds; the other epoch forms the contract accepts
(milliseconds, float seconds, in `event_time` and in the legacy `time`) are written here, one
heartbeat each (tests/integration/test_jobs_event_time.py pins their edges)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from contracts import parse_event
from contracts.topics import topic_for
from generator.replay import DEFAULT_SOURCE_ID
from tests.support.jobs_run import (
    REPO,
    bounded_command,
    load_all,
    new_database,
    produce_lines,
    read_committed,
    rows,
    run_jobs,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SIMULATED = [
    "--families", "device.heartbeat", "--heartbeat-devices", "4", "--legacy-heartbeat-share", "1",
    "--count", "40", "--rate", "2", "--start", "2026-01-01T00:00:00.250Z", "--scenarios", "none", "--max-speed",
]  # fmt: skip
HAND_MADE = {  # device -> (line, its event time, timeout_s or None)
    "dev-ms": (
        '{"schema":"device.heartbeat","event_id":"m1","source_id":"dev-ms","event_time":1767225700123,"timeout_s":3600}',
        T0 + timedelta(seconds=100, milliseconds=123),
        3600.0,
    ),
    "dev-float": (
        '{"schema":"device.heartbeat","event_id":"f1","source_id":"dev-float","event_time":1767225701.5,"timeout_s":7200}',
        T0 + timedelta(seconds=101, milliseconds=500),
        7200.0,
    ),
    "dev-legacy-float": (
        '{"event-id":"lf1","device-id":"dev-legacy-float","time":1767225702.25}',
        T0 + timedelta(seconds=102, milliseconds=250),
        None,
    ),
    "dev-legacy-ms": (
        '{"event-id":"lm1","device-id":"dev-legacy-ms","time":1767225703123}',
        T0 + timedelta(seconds=103, milliseconds=123),
        None,
    ),
}
SEED_004_CSV = (
    "trip_id,region_id,event_time,fare,duration,distance\n"
    "c-1,region-csv,2026-01-01T00:01:00Z,12.0,300,5.0\n"
    "c-2,region-csv,1767225720,9.5,600,4.0\n"  # epoch seconds (00:02:00) in CSV
)
SEED_004_JSON = [
    {"trip_id": "j-1", "region_id": "region-json", "event_time": "2026-01-01T00:02:30Z", "fare": 20.0, "duration": 900, "distance": 10.0},
    {"trip_id": "j-2", "region_id": "region-json", "event_time": 1767225780000, "fare": 30.0, "duration": 1200, "distance": 12.0},
]  # fmt: skip


def _generator(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "generator", *args, "--log-level", "WARNING"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_epoch_heartbeats_and_seed_004_trips_are_read_not_dead_lettered(platform_broker, postgres_server, tmp_path):
    bootstrap = platform_broker.bootstrap
    simulated = [json.loads(line) for line in _generator(*SIMULATED).splitlines()]
    assert simulated and all(isinstance(event["time"], int) for event in simulated)  # seed 003's form
    _generator(*SIMULATED, "--output", "kafka", "--bootstrap", bootstrap)
    produce_lines(bootstrap, [("device.heartbeat", line) for line, _, _ in HAND_MADE.values()])

    csv_file, json_file = tmp_path / "trips.csv", tmp_path / "trips.json"
    csv_file.write_text(SEED_004_CSV)
    json_file.write_text(json.dumps(SEED_004_JSON, indent=2))
    for path in (csv_file, json_file):
        _generator("--replay", str(path), "--output", "kafka", "--bootstrap", bootstrap, "--max-speed")
    trips = [parse_event(value) for value in read_committed(bootstrap, [topic_for("trip")])[topic_for("trip")]]
    assert sorted((t.trip_id, t.source_id, t.duration_s, t.distance_km) for t in trips) == [
        ("c-1", DEFAULT_SOURCE_ID, 300, 5.0),
        ("c-2", DEFAULT_SOURCE_ID, 600, 4.0),
        ("j-1", DEFAULT_SOURCE_ID, 900, 10.0),
        ("j-2", DEFAULT_SOURCE_ID, 1200, 12.0),
    ]

    # Timeouts far beyond the run: no device may be reported inactive while the bounded job runs.
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text("inactivity: {timeout_s: 3600}\n")
    run_jobs(bounded_command(bootstrap, tmp_path / "ck", "--thresholds", str(thresholds)))
    url = new_database(postgres_server)
    load_all(bootstrap, url, "loader-seeds")

    assert rows(url, "SELECT topic, error FROM dead_letters") == []
    newest: dict[str, datetime] = {}
    first: dict[str, datetime] = {}
    for event in simulated:
        at = datetime.fromtimestamp(event["time"], UTC)
        newest[event["device-id"]] = max(newest.get(event["device-id"], at), at)
        first.setdefault(event["device-id"], at)
    for device, (_, at, _) in HAND_MADE.items():
        newest[device] = first[device] = at
    assert rows(url, "SELECT source_id, last_seen FROM source_state WHERE kind = 'device' ORDER BY 1") == sorted(
        newest.items()
    )
    # Every device is known and active: its first heartbeat was read (bounded: no check fires).
    assert rows(url, "SELECT device_id, last_seen, inactive FROM device_inactivity ORDER BY 1") == sorted(
        (device, at, False) for device, at in first.items()
    )
    assert rows(url, "SELECT source_id, time, value FROM readings WHERE metric = 'timeout_s' ORDER BY 1") == sorted(
        (device, at, timeout) for device, (_, at, timeout) in HAND_MADE.items() if timeout is not None
    )
    assert rows(
        url,
        "SELECT region_id, window_start, trips, revenue, avg_duration_s, avg_distance_km FROM trip_metrics"
        " WHERE window_s = 300 ORDER BY 1",
    ) == [("region-csv", T0, 2, 21.5, 450.0, 4.5), ("region-json", T0, 2, 50.0, 1050.0, 11.0)]
    # The 1-minute windows beside them (--trip-windows 60,300 by default) hold the same trips.
    assert rows(
        url, "SELECT region_id, sum(trips), sum(revenue) FROM trip_metrics WHERE window_s = 60 GROUP BY 1 ORDER BY 1"
    ) == [("region-csv", 2, 21.5), ("region-json", 2, 50.0)]
