"""storage.loader on a real Kafka broker and real PostgreSQL, fed with what the jobs really write:
one bounded `python -m jobs all` run over the sample set fills the store, alerts and dead-letter
topics, and each test loads them into a database of its own. Every committed record lands once
(counted in loader_offsets, in the batch's transaction); a restart or a kill -9 in the middle of a
batch loses nothing and applies nothing twice; a record the database refuses goes to dead_letters
with the reason while the rest loads; replays change nothing (upserts on deterministic keys)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
import pytest

from contracts.records import AlertRecord
from contracts.topics import ALERTS_TOPIC, DEAD_LETTER_TOPIC, STORE_TOPICS
from storage.loader import Loader, topic_tables
from storage.writes import WRITES
from tests.support.db_roles import role_url
from tests.support.jobs_run import (
    REPO,
    bounded_command,
    load_all,
    loaded_records,
    new_database,
    produce,
    read_committed,
    rows,
    run_jobs,
    snapshot,
    wait_for,
)
from tests.support.jobs_sample import build

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TABLES = {table: f"SELECT {', '.join(spec.columns)} FROM {table}" for table, spec in WRITES.items()}
"""Every table the loader writes, every column it writes (not the database's own updated_at)."""


@dataclass
class JobOutput:
    bootstrap: str
    records: dict[str, list[bytes]]
    """Every output topic's records as a read_committed consumer sees them."""
    reference: dict[str, list]
    """The tables after one plain load (TABLES)."""

    def counts(self) -> dict[str, int]:
        return {topic: len(values) for topic, values in self.records.items() if values}


@pytest.fixture(scope="module")
def output(platform_broker, postgres_server, tmp_path_factory) -> JobOutput:
    build(late=0).produce(platform_broker.bootstrap)
    run_jobs(bounded_command(platform_broker.bootstrap, tmp_path_factory.mktemp("loader-jobs") / "ck"))
    records = read_committed(platform_broker.bootstrap, topic_tables())
    url = new_database(postgres_server)
    load_all(platform_broker.bootstrap, url, "loader-reference")
    return JobOutput(platform_broker.bootstrap, records, snapshot(url, TABLES))


def test_every_committed_record_lands_once(output, postgres_server):
    url = new_database(postgres_server)
    # As the writer role (storage.roles), as deployed: the same tables as the admin's reference load.
    load_all(output.bootstrap, role_url(url, "writer"), "loader-once")
    assert loaded_records(url, "loader-once") == output.counts()
    assert snapshot(url, TABLES) == output.reference
    # Each readings record is one row, column for column as the job wrote it.
    written = {
        (datetime.fromisoformat(time).replace(tzinfo=UTC), source, fleet, schema, metric, tire, float(value), event_id)
        for time, source, fleet, schema, metric, tire, value, event_id in csv.reader(
            value.decode() for value in output.records[STORE_TOPICS["readings"]]
        )
    }
    assert len(written) == len(output.records[STORE_TOPICS["readings"]]) > 1000
    loaded = rows(url, "SELECT time, source_id, fleet_id, schema_name, metric, tire, value, event_id FROM readings")
    assert {tire for *_, tire, _, _ in loaded} >= {"", "FL"}  # tire readings carry their tire, the rest ''
    assert set(loaded) == written and len(loaded) == len(written)
    # Windows and dead letters are one record each; an alarm is its last state.
    for table in ("aggregates", "driving_kpis", "trip_metrics", "dead_letters"):
        topic = STORE_TOPICS.get(table, DEAD_LETTER_TOPIC)
        assert rows(url, f"SELECT count(*) FROM {table}") == [(len(output.records[topic]),)], table
    last = {}
    for value in output.records[ALERTS_TOPIC]:
        record = AlertRecord.model_validate_json(value)
        last[record.alert_id] = (record.status.value, record.count)
    assert dict((a, (s, c)) for a, s, c in rows(url, "SELECT alert_id, status, count FROM alarms")) == last


def test_a_restarted_loader_goes_on_where_its_database_says(output, postgres_server):
    """A few batches, a clean stop, a new loader of the same group: the rest, once."""
    url = new_database(postgres_server)
    first = Loader(output.bootstrap, url, "loader-restart", batch_size=100).start()
    try:
        wait_for(lambda: first.poll_once() and first.loaded >= 300, "three batches")
    finally:
        first.close()
    partial = sum(loaded_records(url, "loader-restart").values())
    assert 300 <= partial < sum(output.counts().values())
    load_all(output.bootstrap, url, "loader-restart")
    assert loaded_records(url, "loader-restart") == output.counts()
    assert snapshot(url, TABLES) == output.reference


def _backend_waiting_for_the_offsets(url: str) -> int | None:
    """The loader's database session, when it is inside a batch, blocked writing its offsets."""
    found = rows(
        url,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND wait_event_type = 'Lock' AND state = 'active' AND query LIKE 'INSERT INTO loader_offsets%%'",
    )
    return found[0][0] if found else None


def test_a_loader_killed_in_the_middle_of_a_batch_loses_nothing_and_applies_nothing_twice(
    output, postgres_server, tmp_path
):
    """`python -m storage.loader` resumes a group that loaded a few batches; its next batch has
    written its rows and waits for the offsets table (locked here), so the kill -9 lands inside
    the batch's transaction. Nothing of that batch stays; a new loader loads the rest, once."""
    url = new_database(postgres_server)
    group = "loader-killed"
    first = Loader(output.bootstrap, url, group, batch_size=100).start()
    try:
        wait_for(lambda: first.poll_once() and first.loaded >= 200, "two batches")
    finally:
        first.close()
    before = loaded_records(url, group)
    command = [
        sys.executable,
        "-m",
        "storage.loader",
        "--bootstrap-servers",
        output.bootstrap,
        "--database-url",
        url,
        "--group-id",
        group,
        "--batch-size",
        "100",
    ]
    with psycopg.connect(url) as lock:
        lock.execute("LOCK TABLE loader_offsets IN EXCLUSIVE MODE")  # reads pass, writes wait
        with open(tmp_path / "loader.log", "wb") as log:
            process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(
                lambda: _backend_waiting_for_the_offsets(url), "the loader blocked inside a batch", process=process
            )
            backend = _backend_waiting_for_the_offsets(url)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        lock.rollback()
    # The server notices the client is gone once the lock is free; the transaction never commits.
    wait_for(lambda: not rows(url, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (backend,)), "the session's end")
    assert loaded_records(url, group) == before
    readings = before.get(STORE_TOPICS["readings"], 0)
    assert rows(url, "SELECT count(*) FROM readings") == [(readings,)]  # rows and offsets moved together

    load_all(output.bootstrap, url, group)
    assert loaded_records(url, group) == output.counts()
    assert snapshot(url, TABLES) == output.reference


def _topics(broker, *tables: str) -> dict[str, str]:
    """A fresh single-partition topic per table: topic -> table (the loader's `tables`)."""
    suffix = uuid.uuid4().hex[:8]
    topics = {f"{table}-{suffix}": table for table in tables}
    broker.create_topics(list(topics), partitions=1)
    return topics


BAD_CSV = {
    b"2024-01-01 00:00:00.000,veh-x": "missing data for column",
    b"2024-01-01 00:00:00.000,veh-x,default,tire.reading,m,FL,not-a-number,e-x": "invalid input syntax for type double",
    b'2024-01-01 00:00:00.000,veh-x,default,tire.reading,"m,FL,1.0,e-x': "unterminated CSV quoted field",
    b"2024-01-01 00:00:00.000,veh-x,default,tire.reading,m,FL,1.0,e-x,extra": "extra data after last expected column",
    b"": "missing data for column",
}
BAD_JSON = {
    b"not json": "Expecting value",
    b"[1, 2]": "record is not a JSON object",
    b'{"alert_id": "x"}': "validation error",
}


def test_records_the_database_refuses_go_to_dead_letters_and_the_rest_loads(output, platform_broker, postgres_server):
    """Malformed records among the jobs' real ones, in a readings and an alerts topic: each bad one
    becomes a dead letter naming its topic and the reason, every good one loads, and the loader
    counts all of them as read."""
    readings_topic, alerts_topic = _topics(platform_broker, "readings", "alarms")
    good_readings = output.records[STORE_TOPICS["readings"]]
    middle = len(good_readings) // 2
    produce(platform_broker.bootstrap, readings_topic, [*good_readings[:middle], *BAD_CSV, *good_readings[middle:]])
    good_alerts = output.records[ALERTS_TOPIC]
    produce(platform_broker.bootstrap, alerts_topic, [*BAD_JSON, *good_alerts])
    url = new_database(postgres_server)
    loader = Loader(
        platform_broker.bootstrap,
        url,
        "loader-refused",
        tables={readings_topic: "readings", alerts_topic: "alarms"},
    ).start()
    try:
        loader.catch_up()
    finally:
        loader.close()
    letters = rows(url, "SELECT kind, topic, payload, error, field FROM dead_letters")
    reasons = {(topic, payload.encode()): error for kind, topic, payload, error, field in letters}
    assert {kind for kind, *_ in letters} == {"malformed"} and {field for *_, field in letters} == {None}
    assert reasons.keys() == {(readings_topic, bad) for bad in BAD_CSV} | {(alerts_topic, bad) for bad in BAD_JSON}
    for (topic, payload), error in reasons.items():
        expected = (BAD_CSV if topic == readings_topic else BAD_JSON)[payload]
        assert expected in error, (payload, error)
    assert rows(url, "SELECT count(*) FROM readings") == [(len(good_readings),)]
    assert snapshot(url, {"alarms": TABLES["alarms"]})["alarms"] == output.reference["alarms"]
    assert loaded_records(url, "loader-refused") == {
        readings_topic: len(good_readings) + len(BAD_CSV),
        alerts_topic: len(good_alerts) + len(BAD_JSON),
    }


def test_replays_change_nothing(output, postgres_server):
    """A second loader group reads every topic again into the same database: the rows stay as they
    are, byte for byte (windows, readings and dead letters by their deterministic keys, alarms only
    ever moving forward)."""
    url = new_database(postgres_server)
    load_all(output.bootstrap, url, "loader-first")
    assert snapshot(url, TABLES) == output.reference
    load_all(output.bootstrap, url, "loader-again")
    assert loaded_records(url, "loader-again") == output.counts()
    assert snapshot(url, TABLES) == output.reference


def test_alarm_states_only_move_forward_and_keep_an_acknowledgement(output, platform_broker, postgres_server):
    """One incident's real states from the alerts topic, sent in pieces with stale replays among
    them: the row takes the newest state, an operator's acknowledgement survives later counts, and
    only the clearing replaces it."""
    history = defaultdict(list)
    for value in output.records[ALERTS_TOPIC]:
        history[json.loads(value)["alert_id"]].append(value)
    states = next(values for values in history.values() if len(values) >= 4)
    *active, cleared = states
    assert json.loads(cleared)["status"] == "cleared"
    (topic,) = _topics(platform_broker, "alarms")
    url = new_database(postgres_server)
    loader = Loader(platform_broker.bootstrap, url, "loader-alarm", tables={topic: "alarms"}).start()

    def send(*values: bytes) -> list[tuple]:
        produce(platform_broker.bootstrap, topic, values)
        loader.catch_up()
        return rows(url, "SELECT status, count, acknowledged_by FROM alarms")

    try:
        assert send(*active[:2]) == [("active", 2, None)]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE alarms SET status = 'acknowledged', acknowledged_by = 'ops'")
        assert send(*active[2:], active[0]) == [("acknowledged", len(active), "ops")]
        assert send(cleared, active[-1]) == [("cleared", len(active), "ops")]
        # Cleared by a person (the API sets cleared_by), then moved on by the pipeline: its clear.
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE alarms SET cleared_by = 'ops', count = count - 1")
        send(cleared)
        assert rows(url, "SELECT status, cleared_by FROM alarms") == [("cleared", None)]
    finally:
        loader.close()


def _before_tires(record: bytes, table: str) -> bytes:
    """A record of today's jobs as jobs before migration 0013 wrote it: no tire column, the tire
    folded into the metric name (`pressure_kpa.FL`)."""
    columns = WRITES[table].columns
    (fields,) = csv.reader([record.decode()])
    tire = fields.pop(columns.index("tire"))
    if tire:
        fields[columns.index("metric")] += f".{tire}"
    return ",".join(fields).encode()


def test_records_of_jobs_before_the_tire_column_load_during_an_upgrade(output, platform_broker, postgres_server):
    """Readings and aggregates that older jobs left in the store topics (the tire in the metric's
    name, one column fewer) load as today's rows, alone or among today's records, instead of
    becoming dead letters: an upgrade need not drain the topics first."""
    tables = {"readings": STORE_TOPICS["readings"], "aggregates": STORE_TOPICS["aggregates"]}
    loads = _topics(platform_broker, *tables)
    topics = {table: topic for topic, table in loads.items()}
    for table, source in tables.items():
        today = output.records[source]
        assert any(b",FL," in record for record in today), table  # tire rows among them
        old = [_before_tires(record, table) for record in today]
        half = len(today) // 2
        produce(platform_broker.bootstrap, topics[table], [*old[:half], *today[half:], *old[half:]])
    url = new_database(postgres_server)
    loader = Loader(platform_broker.bootstrap, url, "loader-upgrade", tables=loads).start()
    try:
        loader.catch_up()
    finally:
        loader.close()
    assert rows(url, "SELECT count(*) FROM dead_letters") == [(0,)]
    found = snapshot(url, {table: TABLES[table] for table in tables})
    assert found == {table: output.reference[table] for table in tables}


def test_trip_metrics_of_jobs_before_the_fleet_column_load_for_every_fleet(output, platform_broker, postgres_server):
    """Trip metrics that older jobs left in their store topic (one column fewer: no fleet) load with
    the fleet '*' that migration 0016 gave such rows, visible to keys for every fleet only, instead
    of becoming dead letters."""
    today = output.records[STORE_TOPICS["trip_metrics"]]
    fleet_at = WRITES["trip_metrics"].columns.index("fleet_id")
    old = []
    for record in today:
        (fields,) = csv.reader([record.decode()])
        old.append(",".join(fields[:fleet_at] + fields[fleet_at + 1 :]).encode())
    loads = _topics(platform_broker, "trip_metrics")
    produce(platform_broker.bootstrap, next(iter(loads)), [*old[: len(old) // 2], *today, *old[len(old) // 2 :]])
    url = new_database(postgres_server)
    loader = Loader(platform_broker.bootstrap, url, "loader-trip-upgrade", tables=loads).start()
    try:
        loader.catch_up()
    finally:
        loader.close()
    assert rows(url, "SELECT count(*) FROM dead_letters") == [(0,)]
    windows = "region_id, window_s, window_start"
    reference = set(rows(url, f"SELECT {windows} FROM trip_metrics WHERE fleet_id <> '*'"))
    assert reference and reference == set(rows(url, f"SELECT {windows} FROM trip_metrics WHERE fleet_id = '*'"))
