"""The fixtures themselves run real services: prove it, so other tests can rely on them."""

import psycopg
import pytest
from confluent_kafka import Consumer, Producer

pytestmark = pytest.mark.integration


def test_each_test_gets_an_empty_database(pg_url):
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute("select count(*) from information_schema.tables where table_schema='public'").fetchone()
        assert tables == (0,)
        conn.execute("create table scratch (id int primary key)")


def test_broker_round_trips_keyed_messages(broker, kafka_topics):
    (topic,) = kafka_topics("roundtrip", partitions=3)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    for i in range(30):
        producer.produce(topic, key=f"k{i % 5}", value=f"v{i}")
    assert producer.flush(10) == 0

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen = {}
    try:
        while len(seen) < 30:
            message = consumer.poll(10)
            assert message is not None, f"only {len(seen)} of 30 messages arrived"
            assert message.error() is None
            seen[message.value().decode()] = (message.key().decode(), message.partition())
    finally:
        consumer.close()
    partitions_by_key = {}
    for key, partition in seen.values():
        partitions_by_key.setdefault(key, set()).add(partition)
    assert all(len(parts) == 1 for parts in partitions_by_key.values()), "a key spread over partitions"


def test_make_run_migrates_with_the_charts_migration_command(pg_url):
    """make run's migrations are the timescaledb chart's Job command (storage.migrate up
    --login-users), run once: the schema is current and each role's login works."""
    from devstack.services import MigrationsService, PostgresService
    from storage.migrate import migration_status
    from storage.roles import ROLES

    postgres = PostgresService(pg_url)  # a fresh database on the tests' server, as make run makes one
    postgres.start()
    try:
        MigrationsService(postgres).start()
        assert migration_status(postgres.url)["pending"] == []
        for key in ROLES:
            with psycopg.connect(postgres.url_for(key)) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        postgres.stop()


def test_a_failed_migration_names_the_command_and_its_error():
    from devstack.services import storage_migrate

    with pytest.raises(RuntimeError, match=r"storage\.migrate up failed \(1\)"):
        storage_migrate(["up"], "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
