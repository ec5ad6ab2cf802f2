"""The jobs on the real Flink mini-cluster, a real Kafka broker and real PostgreSQL, through
`python -m jobs all --bounded --start-from earliest` and the loader (storage.loader): window
results against an independent reference, every alarm raised and cleared once per incident (and
each of its states exactly once on the alerts topic), malformed dead letters, driving KPIs by
hand; and a live job killed with -9 and restored equals an uninterrupted run, exactly once.

The sample data has no events late beyond the watermark bound: in a bounded replay of a topic the
source's watermark moves every 50 ms, so whether such an event is late depends on timing. Late
events are tested on a live job (test_jobs_followed)."""

from __future__ import annotations

import csv
import json
import math
import signal
from collections import Counter, defaultdict
from datetime import timedelta

import pytest

from contracts import AlertRecord, AlertType, parse_event
from contracts.metrics import NO_TIRE, TIRE_FAMILY, metric_names
from contracts.topics import ALERTS_TOPIC, ALL_TOPICS, DEAD_LETTER_TOPIC, STORE_TOPICS, topic_for
from contracts.windows import TRIP_WINDOWS_S
from devstack import Broker
from jobs.runner import latest_checkpoint
from storage.writes import WRITES
from tests.support.jobs_run import (
    Streamer,
    bounded_command,
    duplicates,
    jobs_command,
    load_all,
    loaded_records,
    loading,
    new_database,
    produce_lines,
    read_committed,
    rows,
    run_jobs,
    snapshot,
    start_jobs,
    stop_jobs,
    wait_for,
    wait_snapshot,
)
from tests.support.jobs_sample import START, build, closers

pytestmark = [pytest.mark.integration, pytest.mark.slow]
COMPARED_TABLES = {
    "readings": "source_id, metric, tire, time, event_id, value",
    "aggregates": "source_id, metric, tire, window_s, window_start, avg, min, max, count",
    "alarms": "alert_id, alert_type, status, first_seen, last_seen, cleared_at, count, value",
    "source_state": "source_id, last_seen, latest::text",
    "driving_kpis": "source_id, window_s, window_start, interventions, disengagements, distance_km",
    "trip_metrics": "region_id, window_s, window_start, trips, revenue, avg_duration_s",
    "dead_letters": "id, kind, topic, error, field",
}
OUTPUT_TOPICS = (*STORE_TOPICS.values(), ALERTS_TOPIC, DEAD_LETTER_TOPIC)


@pytest.fixture(scope="module")
def sample():
    data = build(late=0)
    assert not data.late and data.malformed
    return data


@pytest.fixture(scope="module")
def full_run(platform_broker, postgres_server, sample, tmp_path_factory) -> str:
    """One uninterrupted bounded run of every pipeline over the sample, loaded into a database of
    its own; the tests below read its output."""
    sample.produce(platform_broker.bootstrap)
    checkpoints = tmp_path_factory.mktemp("jobs-full") / "checkpoints"
    run_jobs(bounded_command(platform_broker.bootstrap, checkpoints))
    url = new_database(postgres_server)
    load_all(platform_broker.bootstrap, url, "loader-full")
    return url


def valid_events(sample) -> list:
    return [
        parse_event(line)
        for family, lines in sample.lines.items()
        for line in lines
        if (family, line) not in sample.malformed
    ]


def reference_aggregates(sample) -> dict[tuple, tuple]:
    """avg/min/max/count per (source, metric, tire, window size, window start), computed in Python
    from the events and the contract's naming (contracts.metrics)."""
    windows = {"building.reading": (300, 900)}
    values: dict[tuple, list[float]] = defaultdict(list)
    for event in valid_events(sample):
        tire = event.tire_position.value if event.schema_name == TIRE_FAMILY else NO_TIRE
        for field, metric in metric_names(event.schema_name).items():
            value = getattr(event, field)
            if value is not None:
                for size in windows.get(event.schema_name, (60,)):
                    offset = (event.event_time - START).total_seconds() // size * size
                    start = START + timedelta(seconds=offset)
                    values[(event.source_id, metric, tire, size, start)].append(float(value))
    return {key: (sum(v) / len(v), min(v), max(v), len(v)) for key, v in values.items()}


def test_window_aggregates_equal_an_independent_reference(full_run, sample):
    expected = reference_aggregates(sample)
    actual = {
        (source, metric, tire, size, start): (avg, low, high, count)
        for source, metric, tire, size, start, avg, low, high, count in rows(
            full_run, "SELECT source_id, metric, tire, window_s, window_start, avg, min, max, count FROM aggregates"
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


def test_the_alerts_topic_holds_each_alarm_state_exactly_once(full_run, platform_broker):
    """What a read_committed consumer of the alerts topic (the alert shipper) sees: every state of
    every incident once, in order per source (the records are keyed by source_id), the last one
    the row in the database. The store topics hold each row once too."""
    topics = read_committed(platform_broker.bootstrap, OUTPUT_TOPICS)
    records = [AlertRecord.model_validate_json(value) for value in topics[ALERTS_TOPIC]]
    states = [(r.alert_id, r.status.value, r.count) for r in records]
    assert not duplicates(states)
    by_alarm = defaultdict(list)
    for alert_id, status, count in states:
        by_alarm[alert_id].append((status, count))
    assert len(by_alarm) == len(AlertType) - 1
    for alert_id, history in by_alarm.items():
        assert history == [("active", 1), ("active", 2), ("active", 3), ("active", 4), ("cleared", 4)], alert_id
    last = {r.alert_id: r for r in records}
    assert {(a, s, c) for a, s, c in rows(full_run, "SELECT alert_id, status, count FROM alarms")} == {
        (r.alert_id, r.status.value, r.count) for r in last.values()
    }
    # Window results and readings are written once each (their upserts would hide a second copy).
    for table in ("readings", "aggregates", "driving_kpis", "trip_metrics", "dead_letters"):
        topic = STORE_TOPICS.get(table, DEAD_LETTER_TOPIC)
        assert len(topics[topic]) == rows(full_run, f"SELECT count(*) FROM {table}")[0][0], table
    assert not duplicates(topics[STORE_TOPICS["readings"]])


def test_malformed_events_are_dead_letters_with_reasons(full_run, sample):
    letters = rows(full_run, "SELECT kind, topic, payload, error, field FROM dead_letters")
    got = {(kind, topic, payload) for kind, topic, payload, _, _ in letters}
    assert got == {("malformed", topic_for(f), line) for f, line in sample.malformed}
    reasons = {payload: (error, field) for kind, _, payload, error, field in letters}
    assert reasons['{"schema": "tire.reading"}'][1] == "event_id"  # the ContractError's field
    assert "not valid JSON" in reasons["not json"][0]
    # Every valid event is in readings; none of the rejects are.
    readings = rows(full_run, "SELECT count(DISTINCT event_id || source_id) FROM readings")[0][0]
    assert readings == len({(e.event_id, e.source_id) for e in valid_events(sample)})


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
        "SELECT region_id, trips, revenue FROM trip_metrics WHERE window_s = 300 AND window_start = %s ORDER BY 1",
        (START,),
    )
    # Two vehicles; region-0 gets trips n = 0, 2, 4 (fares 10, 12, 14), region-1 n = 1, 3 (11, 13).
    assert trips == [("region-0", 6, 72.0), ("region-1", 4, 48.0)]
    # The default trip windows (contracts.windows): the 1-minute ones add up to the 5-minute ones.
    by_size = rows(
        full_run,
        "SELECT window_s, time_bucket('5 minutes', window_start), region_id, sum(trips)::int, round(sum(revenue)::numeric, 6)"
        " FROM trip_metrics GROUP BY 1, 2, 3 ORDER BY 2, 3, 1",
    )
    assert {size for size, *_ in by_size} == set(TRIP_WINDOWS_S) == {60, 300}
    minutes = {tuple(rest) for size, *rest in by_size if size == 60}
    assert minutes == {tuple(rest) for size, *rest in by_size if size == 300}


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


CLOSE_AT = START + timedelta(days=1)
_OPEN_IN_A_LIVE_JOB = {
    "aggregates": f"window_start < '{CLOSE_AT.isoformat()}'",
    "driving_kpis": f"window_start < '{CLOSE_AT.isoformat()}'",
    "trip_metrics": f"window_start < '{CLOSE_AT.isoformat()}'",
    "source_state": "source_id <> 'closer'",
}
LIVE_ROWS = {
    table: f"SELECT {columns} FROM {table}"
    + (f" WHERE {_OPEN_IN_A_LIVE_JOB[table]}" if table in _OPEN_IN_A_LIVE_JOB else "")
    for table, columns in COMPARED_TABLES.items()
}
"""Every table as compared after a live run: what the closers (tests.support.jobs_sample.closers) leave open in
a live job, and a bounded one closes at its end, left out."""


def _readings(url: str) -> int:
    return rows(url, "SELECT count(*) FROM readings")[0][0]


def _keys(table: str, records: list[bytes]) -> list[tuple]:
    """The deterministic key (storage.writes) of each CSV record of a store topic."""
    spec = WRITES[table]
    at = [spec.columns.index(column) for column in spec.key]
    return [tuple(row[i] for i in at) for row in csv.reader(value.decode() for value in records)]


def _uninterrupted(broker: Broker, events: list, server: str, checkpoints) -> tuple[dict, dict]:
    """A bounded replay of `events`, loaded: the rows (LIVE_ROWS) and every output topic's records."""
    produce_lines(broker.bootstrap, events)
    run_jobs(bounded_command(broker.bootstrap, checkpoints, "--group-id", "baseline"))
    url = new_database(server)
    load_all(broker.bootstrap, url, "loader-baseline")
    return snapshot(url, LIVE_ROWS), read_committed(broker.bootstrap, OUTPUT_TOPICS)


def test_kill_mid_stream_and_restore_gives_the_uninterrupted_result(postgres_server, tmp_path):
    """A live job, fed at a steady rate, killed with -9 (its whole process group) once its output
    lands in the database; events keep coming while it is down; restarted with `--restore latest`
    from the same checkpoint directory (same group and transactional ids: the restored sinks abort
    what the killed ones left open). The result equals an uninterrupted run's (a bounded replay on
    a broker of its own): every table row by row, and exactly once on the topics: each alarm state
    once on the alerts topic (read_committed, as the alert shipper reads it), each window and
    reading once on the store topics, each of those records loaded once (loader_offsets).

    Events only come in order within the watermark bound (no late ones: a restored job's watermark
    starts again from nothing, so lateness right after a restore would differ). A bounded job cannot
    resume from a checkpoint (FLINK-31006, see jobs.cli); the closers end the live input instead."""
    events = build(steps=720, vehicles=4, late=0).in_time_order() + closers(CLOSE_AT).in_time_order()
    with Broker() as baseline_broker, Broker() as broker:
        for running in (baseline_broker, broker):
            running.create_topics(ALL_TOPICS)
        expected, uninterrupted = _uninterrupted(baseline_broker, events, postgres_server, tmp_path / "ck-baseline")

        url, checkpoints = new_database(postgres_server), tmp_path / "ck"
        command = jobs_command(
            broker.bootstrap,
            "--start-from",
            "earliest",
            "--group-id",
            "interrupted",
            "--transactional-id-prefix",
            "interrupted-tx",
            "--checkpoint-dir",
            str(checkpoints),
        )
        head = len(events) // 6
        produce_lines(broker.bootstrap, events[:head])
        with loading(broker.bootstrap, url, "loader-interrupted") as loader:
            process = start_jobs(command, tmp_path / "killed.log")
            try:
                wait_for(lambda: _readings(url) > 0, "the first output", process=process, loader=loader)
                before = _readings(url)
                streamer = Streamer(broker.bootstrap, events[head:], rate=400).start()
                wait_for(
                    lambda: _readings(url) > before,
                    "output of the streamed events",
                    process=process,
                    loader=loader,
                    interval_s=0.05,
                )
            finally:
                stop_jobs(process, signal.SIGKILL)
            assert streamer.sent < len(events) - head, "the kill came after the input's end"
            assert latest_checkpoint(checkpoints) is not None
            assert 0 < _readings(url) < len(expected["readings"])

            restored = start_jobs([*command, "--restore", "latest"], tmp_path / "restored.log")
            try:
                streamer.join()
                wait_snapshot(url, LIVE_ROWS, expected, process=restored, loader=loader)
            finally:
                stop_jobs(restored)
        # Whatever the jobs committed until they stopped, loaded by the same loader group.
        load_all(broker.bootstrap, url, "loader-interrupted")
        assert snapshot(url, LIVE_ROWS) == expected
        resumed = read_committed(broker.bootstrap, OUTPUT_TOPICS)
    _assert_once_on_the_topics(resumed, uninterrupted, expected)
    assert loaded_records(url, "loader-interrupted") == {
        topic: len(values) for topic, values in resumed.items() if values
    }


def _assert_once_on_the_topics(resumed: dict, uninterrupted: dict, expected: dict) -> None:
    """Records without sums are equal record for record (dead letters by id: they carry the time
    their event reached its broker); windows once each, by their key."""
    for topic in (ALERTS_TOPIC, STORE_TOPICS["readings"]):
        assert Counter(resumed[topic]) == Counter(uninterrupted[topic]), topic
    letters = [Counter(json.loads(value)["id"] for value in run[DEAD_LETTER_TOPIC]) for run in (resumed, uninterrupted)]
    assert letters[0] == letters[1]
    state = STORE_TOPICS["source_state"]  # one record per source and 5 s of event time
    assert Counter(resumed[state]) == Counter(v for v in uninterrupted[state] if not v.startswith(b"closer,"))
    for table in ("aggregates", "driving_kpis", "trip_metrics"):
        keys = _keys(table, resumed[STORE_TOPICS[table]])
        assert not duplicates(keys), table
        assert len(keys) == len(expected[table]), table
