"""Inactivity on the real mini-cluster, fed through a real Kafka broker and loaded into real
PostgreSQL, with the check interval of the thresholds the job is given: devices are checked for
silence every check_interval_s (on multiples of it since 1970), and a device is reported at the
first check at or after its last heartbeat's arrival + its timeout, also when every device has
fallen silent (so no watermark moves). One device is kept alive meanwhile by heartbeats with epoch
times (legacy integer seconds and canonical milliseconds), which must count as heartbeats; a
heartbeat later brings another device back online and clears its alarm."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from contracts.topics import ALERTS_TOPIC, topic_for
from tests.support.jobs_run import (
    WAIT_S,
    jobs_command,
    loading,
    new_database,
    produce,
    rows,
    start_jobs,
    stop_jobs,
    wait_for,
    wait_rows,
)
from tests.support.jobs_sample import START, SampleSet, heartbeats

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMEOUT_S = 10
"""Long enough that the keep-alive heartbeats (every 0.5 s) reach the job in time on a busy machine."""
CHECK_S = 20
SLACK_S = 5.0
"""How long after its check an alarm record may reach the alerts topic (timer to Kafka producer:
the Python operator's bundle, the sink) on the busy two-core machine."""


def _alarm_times(bootstrap: str) -> dict[str, float]:
    """source_id -> Kafka timestamp (s) of its first active device_inactive record on the alerts topic
    (read_committed: as the alert shipper sees them); the sink stamps a record when it sends it."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}", "isolation.level": "read_committed"}
    )
    try:
        partitions = consumer.list_topics(ALERTS_TOPIC, timeout=10).topics[ALERTS_TOPIC].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(ALERTS_TOPIC, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(ALERTS_TOPIC, p, 0) for p in partitions])
        found: dict[str, float] = {}
        deadline = time.monotonic() + 60
        while any(
            tp.offset < ends[tp.partition] for tp in consumer.position([TopicPartition(ALERTS_TOPIC, p) for p in ends])
        ):
            assert time.monotonic() < deadline, "reading the alerts topic took over 60 s"
            for message in consumer.consume(100, timeout=0.5):
                record = json.loads(message.value())
                if record["alert_type"] == "device_inactive" and record["status"] == "active":
                    found.setdefault(record["source_id"], message.timestamp()[1] / 1000)
        return found
    finally:
        consumer.close()


def _keep_alive_lines(device: str, n: int) -> list[bytes]:
    """The n-th keep-alive heartbeat, alternating seed 003's legacy form (integer epoch seconds)
    and the canonical form with epoch milliseconds."""
    at = START + timedelta(seconds=1 + n)
    epoch_s = int(at.timestamp())
    if n % 2:
        return [json.dumps({"event-id": f"ka-{n}", "device-id": device, "time": epoch_s}).encode()]
    line = {"schema": "device.heartbeat", "event_id": f"ka-{n}", "source_id": device, "event_time": epoch_s * 1000}
    return [json.dumps(line, separators=(",", ":")).encode()]


def test_devices_are_checked_on_the_configured_interval(platform_broker, postgres_server, tmp_path):
    url, bootstrap = new_database(postgres_server), platform_broker.bootstrap
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text(yaml.safe_dump({"inactivity": {"timeout_s": TIMEOUT_S, "check_interval_s": CHECK_S}}))
    SampleSet(lines={"device.heartbeat": heartbeats(3, timeout_s=TIMEOUT_S)}).produce(bootstrap)
    command = jobs_command(
        bootstrap,
        "--start-from",
        "earliest",
        "--checkpoint-dir",
        str(tmp_path / "ck"),
        "--thresholds",
        str(thresholds),
        job="inactivity",
    )
    active = "SELECT source_id FROM alarms WHERE status = 'active' ORDER BY 1"
    with loading(bootstrap, url) as loader:
        process = start_jobs(command, tmp_path / "jobs.log")
        alive = {"process": process, "loader": loader}
        try:
            wait_rows(url, "SELECT count(*) FROM device_inactivity", [(3,)], **alive)
            # dev-001 keeps sending (epoch times) until the other two are reported, then stops too.
            sent = 0

            def others_reported() -> bool:
                nonlocal sent
                produce(bootstrap, topic_for("device.heartbeat"), _keep_alive_lines("dev-001", sent))
                sent += 1
                return {("dev-000",), ("dev-002",)} <= set(rows(url, active))

            wait_for(others_reported, "dev-000 and dev-002 reported inactive", interval_s=0.5, **alive)
            assert rows(url, active) == [("dev-000",), ("dev-002",)]  # dev-001's epoch heartbeats kept it active
            wait_rows(url, active, [("dev-000",), ("dev-001",), ("dev-002",)], **alive)

            reported = _alarm_times(bootstrap)
            for device, at in reported.items():  # on a check: a multiple of the interval, plus delivery
                assert at % CHECK_S < SLACK_S, (device, at, reported)
            assert abs(reported["dev-000"] - reported["dev-002"]) < SLACK_S  # silent together, one check
            # dev-001 fell silent a few seconds after the others were reported: due before the next check.
            gap = reported["dev-001"] - reported["dev-000"]
            assert round(gap / CHECK_S) >= 1 and abs(gap - CHECK_S * round(gap / CHECK_S)) < SLACK_S, reported

            last_kept = START + timedelta(seconds=sent)  # the newest keep-alive's event time
            assert rows(url, "SELECT device_id, inactive, inactive_since FROM device_inactivity ORDER BY 1") == [
                ("dev-000", True, START + timedelta(seconds=TIMEOUT_S)),
                ("dev-001", True, last_kept + timedelta(seconds=TIMEOUT_S)),
                ("dev-002", True, START + timedelta(seconds=TIMEOUT_S)),
            ]
            assert rows(url, "SELECT count(*) FROM dead_letters") == [(0,)]  # every epoch heartbeat counted

            back = START + timedelta(seconds=600)
            SampleSet(lines={"device.heartbeat": heartbeats(1, timeout_s=600, at=back)}).produce(bootstrap)
            wait_rows(
                url,
                "SELECT source_id, status, cleared_at FROM alarms WHERE status = 'cleared'",
                [("dev-000", "cleared", back)],
                WAIT_S,
                **alive,
            )
            wait_rows(
                url,
                "SELECT inactive, inactive_since, last_seen FROM device_inactivity WHERE device_id = 'dev-000'",
                [(False, None, back)],
                60,
                **alive,
            )
            # One alarm per silence: still exactly three rows, one of them cleared.
            assert rows(url, "SELECT count(*) FROM alarms WHERE alert_type = 'device_inactive'") == [(3,)]
        finally:
            stop_jobs(process)
