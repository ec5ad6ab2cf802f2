"""The simulator against a real Apache Kafka broker: exact events, keys and
partitions for a seed, and `python -m devstack.run` stopping cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, TopicPartition

from contracts import ContractError, parse_event
from contracts.topics import ALL_TOPICS, EVENT_TOPICS
from devstack import Broker
from generator import SimConfig, Simulator
from generator.runner import run
from generator.sinks import KafkaSink

pytestmark = pytest.mark.integration
PARTITIONS = 3


def java_murmur2_partition(key: bytes, partitions: int) -> int:
    """Kafka's Java default partitioner (Utils.murmur2, toPositive, modulo), written out here
    independently of librdkafka to check the producer's choice."""
    m, r, length = 0x5BD1E995, 24, len(key)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length % 4
    if tail:
        h ^= int.from_bytes(key[length - tail :], "little")
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


def test_murmur2_matches_kafkas_reference_vectors():
    signed = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536}
    for key, expected in signed.items():
        assert java_murmur2_partition(key, 2**31 - 1) == (expected & 0x7FFFFFFF) % (2**31 - 1)


@pytest.fixture(scope="module")
def own_broker():
    """A broker of our own: the contract topic names are fixed, so no sharing with other tests."""
    with Broker() as broker:
        broker.create_topics(ALL_TOPICS, partitions=PARTITIONS)
        yield broker


def consume_all(bootstrap: str, expected: int, timeout_s: float = 30) -> list:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "generator-test", "enable.auto.commit": False})
    consumer.assign([TopicPartition(t, p, 0) for t in EVENT_TOPICS.values() for p in range(PARTITIONS)])
    messages, deadline = [], time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.5):
                assert message.error() is None, message.error()
                messages.append(message)
    finally:
        consumer.close()
    return messages


def test_seeded_run_lands_exactly_with_keys_partitions_and_order(own_broker):
    config = SimConfig(start=datetime(2026, 5, 1, tzinfo=UTC), seed=42, count=5000, rate=100, malformed_share=0.02)
    planned = Simulator(config)
    expected = []
    while batch := planned.next_batch():
        expected += batch
    promised = planned.expectations()

    sink = KafkaSink(own_broker.bootstrap)
    stats = run(Simulator(config), sink, threading.Event(), paced=False)
    assert (stats.sent, stats.errors) == (5000, 0)

    messages = consume_all(own_broker.bootstrap, 5000)
    received = [(m.topic(), m.key().decode(), m.value().decode()) for m in messages]
    assert sorted(received) == sorted(expected)  # exactly these events, nothing more
    for message in messages:
        assert message.partition() == java_murmur2_partition(message.key(), PARTITIONS)
    per_key = defaultdict(list)
    for message in sorted(messages, key=lambda m: (m.topic(), m.partition(), m.offset())):
        per_key[(message.topic(), message.key())].append(message.value().decode())
    for (topic, key), values in per_key.items():
        assert values == [p for t, k, p in expected if t == topic and k == key.decode()]  # per-key order holds
    bad = 0
    for _topic, _key, payload in received:
        try:
            parse_event(payload)
        except ContractError:
            bad += 1
    assert bad == len(promised.malformed) > 0
    assert stats.per_topic == {topic: n for topic, n in promised.events_per_topic.items() if n}


def test_devstack_run_streams_into_the_broker_and_stops_cleanly_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.run", "--rate", "500", "--progress-interval", "0.5", "--vehicles", "3"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    lines, pids = [], {}
    try:
        for line in process.stderr:
            lines.append(line)
            if '"pid"' in line:
                record = json.loads(line)
                pids[record.get("service", "broker")] = record["pid"]
            if '"msg": "progress"' in line:
                break
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    summary = next(json.loads(line) for line in output.splitlines() if '"msg": "summary"' in line)
    assert summary["sent"] > 0 and summary["errors"] == 0 and summary["stopped_early"] is True
    assert "fleet.tire-readings" in summary["per_topic"]
    assert "broker" in pids
    for service, pid in pids.items():  # the broker and every child process went with it
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
            pytest.fail(f"{service} (pid {pid}) outlived make run")
