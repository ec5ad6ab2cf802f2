"""storage.writes and jobs.loader on real PostgreSQL and the real broker (no Flink needed)."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from datetime import timedelta

import psycopg
import pytest
from confluent_kafka import Consumer

from contracts.records import AlertRecord
from devstack.broker import CONSUMER_DEFAULTS
from jobs.lifecycle import alarm_line, alert_id
from jobs.loader import AlertPublisher, Loader
from jobs.sample import START
from storage.migrate import migrate_up
from storage.writes import WRITES, upsert_csv, upsert_rows

pytestmark = pytest.mark.integration


def alarm(count: int, status: str = "active", first=START, **extra) -> AlertRecord:
    return AlertRecord(
        alert_id=alert_id("speeding", "veh-1", first),
        alert_type="speeding",
        severity="warning",
        status=status,
        source_id="veh-1",
        first_seen=first,
        last_seen=first + timedelta(seconds=count),
        count=count,
        value=10.0,
        threshold=0.0,
        cleared_at=first + timedelta(seconds=count + 1) if status == "cleared" else None,
        **extra,
    )


def upsert_alarms(conn, *records: AlertRecord) -> None:
    columns = WRITES["alarms"].columns
    dumped = [r.model_dump(mode="json") for r in records]
    upsert_rows(conn, "alarms", [tuple(row[c] for c in columns) for row in dumped])


@pytest.fixture
def db(pg_url):
    migrate_up(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn


def test_alarm_upserts_move_forward_only_and_keep_acknowledgement(db):
    upsert_alarms(db, alarm(2))
    db.execute("UPDATE alarms SET status = 'acknowledged', acknowledged_by = 'ops'")
    upsert_alarms(db, alarm(3), alarm(1))  # an update and a stale replay in one batch
    assert db.execute("SELECT status, count, acknowledged_by FROM alarms").fetchall() == [("acknowledged", 3, "ops")]
    upsert_alarms(db, alarm(3, "cleared"))
    upsert_alarms(db, alarm(3), alarm(2))  # replays after the clearing change nothing
    assert db.execute("SELECT status, count FROM alarms").fetchall() == [("cleared", 3)]


def test_clearing_and_the_next_incident_in_one_batch(db):
    later = START + timedelta(minutes=5)
    upsert_alarms(db, alarm(1))
    upsert_alarms(db, alarm(1, first=later), alarm(2, "cleared"))  # the unique open index needs the order
    assert db.execute("SELECT status, count(*) FROM alarms GROUP BY 1 ORDER BY 1").fetchall() == [
        ("active", 1),
        ("cleared", 1),
    ]


def test_csv_upserts_are_idempotent_and_keep_the_newest_state(db):
    csv = (
        b'2024-01-01 00:00:00.000,2024-01-01 00:01:00.000,60,veh-1,default,tire.reading,"pressure_kpa.FL",'
        b"200.0,190.0,210.0,3\n"
    )
    assert upsert_csv(db, "aggregates", csv) == 1
    upsert_csv(db, "aggregates", csv + csv)  # a replayed file, a key twice in one batch
    assert db.execute("SELECT metric, avg, count FROM aggregates").fetchall() == [("pressure_kpa.FL", 200.0, 3)]
    state = b'veh-1,vehicle,default,,,2024-01-01 00:00:05.000,tire.reading,"{""a"": 2}"\n'
    older = b'veh-1,vehicle,default,,,2024-01-01 00:00:01.000,tire.reading,"{""a"": 1}"\n'
    upsert_csv(db, "source_state", state + older)
    upsert_csv(db, "source_state", older)
    assert db.execute("SELECT latest, site_id FROM source_state").fetchall() == [({"a": 2}, None)]


def reading(second: int) -> bytes:
    """One `readings` CSV row as the jobs' sink writes it."""
    return f"2024-01-01 00:00:{second:02d}.000,veh-1,default,tire.reading,pressure_kpa.FL,230.5,e{second}\n".encode()


def test_insert_only_batches_are_copied_and_replays_merged(db):

    assert upsert_csv(db, "readings", reading(1) + reading(2)) == 2  # fresh: copied as is
    assert upsert_csv(db, "readings", reading(2) + reading(3)) == 1  # overlaps: merged, the copy undone
    assert upsert_csv(db, "readings", reading(3) + reading(3)) == 0  # a key twice in one batch
    rows = db.execute("SELECT event_id, value FROM readings ORDER BY time").fetchall()
    assert rows == [("e1", 230.5), ("e2", 230.5), ("e3", 230.5)]


def test_loader_merges_each_committed_file_once_and_publishes_alarms(pg_url, broker, kafka_topics, tmp_path):
    migrate_up(pg_url)
    (topic,) = kafka_topics("alerts", partitions=1)
    out = tmp_path / "output"
    (out / "events_alarms").mkdir(parents=True)
    (out / "events_alarms" / ".part-0.inprogress").write_text(alarm_line(alarm(9)) + "\n")  # not committed yet
    (out / "events_alarms" / "part-0-0").write_text(alarm_line(alarm(1)) + "\n" + alarm_line(alarm(2)) + "\n")
    loader = Loader(pg_url, out, AlertPublisher(broker.bootstrap, topic))
    assert loader.load_pending() == 1
    assert Loader(pg_url, out).load_pending() == 0  # a restarted loader skips loaded files
    loader.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count FROM alarms").fetchall() == [(2,)]
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            **CONSUMER_DEFAULTS,
        }
    )
    consumer.subscribe([topic])
    messages = []
    for _ in range(60):
        message = consumer.poll(1)
        if message is not None and not message.error():
            messages.append(message)
        if len(messages) == 2:
            break
    consumer.close()
    assert [m.key() for m in messages] == [b"veh-1", b"veh-1"]
    assert [AlertRecord.model_validate(json.loads(m.value())).count for m in messages] == [1, 2]


def test_loaded_files_go_once_no_retained_checkpoint_can_commit_them_again(pg_url, tmp_path):
    """Flink re-commits the files pending in the checkpoint it restores from and fails if one is
    gone: a loaded file may go only when the oldest retained checkpoint completed after its load."""
    migrate_up(pg_url)
    out, checkpoints = tmp_path / "output", tmp_path / "checkpoints" / "job-1"
    (out / "readings").mkdir(parents=True)
    first = out / "readings" / "part-0-0"
    first.write_bytes(reading(1))
    older = _checkpoint(checkpoints, 1)
    loader = Loader(pg_url, out, checkpoints=checkpoints)
    assert Loader(pg_url, out).prune() == 0  # no checkpoint directory given: nothing goes
    assert loader.load_pending() == 1
    assert loader.prune() == 0 and first.exists()  # chk-1 completed before the load
    time.sleep(0.05)
    _checkpoint(checkpoints, 2)
    assert loader.prune() == 0 and first.exists()  # chk-1 is still retained
    shutil.rmtree(older)  # Flink retires it
    assert loader.prune() == 1 and not first.exists()
    second = out / "readings" / "part-0-1"
    second.write_bytes(reading(2))
    assert loader.load_pending() == 1 and loader.prune() == 0 and second.exists()  # loaded after chk-2
    loader.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM job_output_files").fetchone() == (2,)


def _checkpoint(job_dir, number: int):
    """A completed checkpoint as Flink lays it out: chk-<n>/_metadata."""
    path = job_dir / f"chk-{number}"
    path.mkdir(parents=True)
    (path / "_metadata").write_bytes(b"")
    return path
