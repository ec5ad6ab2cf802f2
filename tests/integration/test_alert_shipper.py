"""The local alerts path (Vector's job on one machine): alerts topic -> alarm_events, on the
real broker and real PostgreSQL, with Vector's own insert statement."""

import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from confluent_kafka import Producer

from contracts.records import AlertRecord
from devstack.alert_shipper import AlertShipper
from storage.migrate import migrate_up
from tests.support.db_roles import role_url

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def alert(n: int, **changes) -> AlertRecord:
    fields = dict(
        alert_id=f"a-{n}",
        alert_type="co2_high",
        severity="warning",
        status="active",
        source_id=f"hq.z1.d{n}",
        first_seen=T0,
        last_seen=T0 + timedelta(seconds=n),
        count=n + 1,
        value=1100.0 + n,
        threshold=1000.0,
    )
    return AlertRecord(**(fields | changes))


def wait_for_rows(url: str, expected: int, timeout_s: float = 20) -> list[tuple]:
    deadline = time.monotonic() + timeout_s
    while True:
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "select alert_id, status, count, fleet_id, cleared_at from alarm_events order by alert_id, count"
            ).fetchall()
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_alert_records_land_in_alarm_events_and_bad_ones_do_not_stop_it(broker, kafka_topics, pg_url):
    migrate_up(pg_url)
    (topic,) = kafka_topics("alerts", partitions=2)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    producer.produce(topic, key="hq.z1.d0", value=alert(0).model_dump_json())
    producer.produce(topic, key="junk", value=b"not json")
    cleared = alert(1, status="cleared", cleared_at=T0 + timedelta(minutes=5))
    # Vector sends what the topic holds: a record without fleet_id must still insert (NULL).
    producer.produce(topic, key="hq.z1.d1", value=cleared.model_dump_json(exclude={"fleet_id"}))
    assert producer.flush(10) == 0

    shipper = AlertShipper(broker.bootstrap, role_url(pg_url, "writer"), topic=topic).start()
    try:
        rows = wait_for_rows(pg_url, expected=2)
    finally:
        shipper.stop()
    assert rows == [
        ("a-0", "active", 1, "default", None),
        ("a-1", "cleared", 2, None, T0 + timedelta(minutes=5)),
    ]
    assert shipper.shipped == 2


def test_only_committed_alert_records_are_shipped(broker, kafka_topics, pg_url):
    """The jobs write alarms in Kafka transactions: what an aborted one wrote (a crash before its
    checkpoint) must never reach alarm_events, as Vector's read_committed consumer ensures."""
    migrate_up(pg_url)
    (topic,) = kafka_topics("alerts-txn", partitions=1)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "alarms-test"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, key="hq.z1.d0", value=alert(0).model_dump_json())
    assert producer.flush(30) == 0  # on the broker, not just queued (an abort drops the queue)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key="hq.z1.d1", value=alert(1).model_dump_json())
    producer.commit_transaction(30)

    shipper = AlertShipper(broker.bootstrap, role_url(pg_url, "writer"), topic=topic).start()
    try:
        # One partition, read in order: once the committed record is in, the aborted one before
        # it has been read past.
        rows = wait_for_rows(pg_url, expected=1)
    finally:
        shipper.stop()
    assert rows == [("a-1", "active", 2, "default", None)]
    assert shipper.shipped == 1


def test_the_shipper_survives_a_batch_of_only_errors_and_a_record_alarm_events_refuses(broker, pg_url):
    """Started before its topic exists, the shipper's first batches hold only errors (unknown topic),
    which have no offsets to commit; once the topic is there it ships. A JSON object whose field has
    the wrong type is refused by alarm_events alone: the records around it still land."""
    migrate_up(pg_url)
    topic = f"alerts-later-{T0.timestamp():.0f}-{time.monotonic_ns()}"
    shipper = AlertShipper(broker.bootstrap, role_url(pg_url, "writer"), topic=topic).start()
    try:
        broker.create_topics([topic], partitions=1)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
        producer.produce(topic, value=alert(0).model_dump_json())
        producer.produce(topic, value=alert(1).model_dump_json().replace('"count":2', '"count":"two"'))
        producer.produce(topic, value=alert(2).model_dump_json())
        assert producer.flush(10) == 0
        rows = wait_for_rows(pg_url, expected=2, timeout_s=120)
        assert shipper.running()
    finally:
        shipper.stop()
    assert [row[:3] for row in rows] == [("a-0", "active", 1), ("a-2", "active", 3)]
    assert shipper.shipped == 2
