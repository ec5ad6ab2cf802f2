"""Local stand-in for Vector on one machine: ships the alerts topic into `alarm_events`.

In Kubernetes, Vector (charts/vector) consumes the alerts topic and its postgres sink appends
each record with the statement below. No Vector binary exists here, so the local run does the
same work with the same statement: consume a batch, insert it, commit the offsets only after the
database commit (at-least-once, as Vector with end-to-end acknowledgements). It reads committed records
only, as Vector's consumer does (charts/vector).
"""

from __future__ import annotations

import json
import logging
import threading

import psycopg
from confluent_kafka import Consumer, KafkaException
from prometheus_client import Counter

from contracts.kafka_auth import VECTOR_GROUP, KafkaAuth
from contracts.prometheus_names import ALERT_SHIPPER_RECORDS, ALERT_SHIPPER_REJECTED
from contracts.topics import ALERTS_TOPIC

log = logging.getLogger(__name__)

# Exactly what Vector's postgres sink executes per batch: absent fields become NULL.
VECTOR_INSERT = "INSERT INTO alarm_events SELECT * FROM jsonb_populate_recordset(NULL::alarm_events, %s::jsonb)"

SHIPPED = Counter(ALERT_SHIPPER_RECORDS, "Alert records shipped into alarm_events")
REJECTED = Counter(ALERT_SHIPPER_REJECTED, "Alert records that were not JSON objects or that alarm_events refused")


class AlertShipper:
    def __init__(
        self,
        bootstrap: str,
        database_url: str,
        topic: str = ALERTS_TOPIC,
        batch_size: int = 500,
        kafka_auth: KafkaAuth | None = None,
    ):
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                **(kafka_auth or KafkaAuth.from_env()).librdkafka(),  # SASL/TLS: KAFKA_* (Vector's user)
                "group.id": VECTOR_GROUP,  # Vector's group: the one charts/kafka's ACLs grant its user
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                # Only what the jobs' transactions committed: each alarm state once (Vector: the same).
                "isolation.level": "read_committed",
            }
        )
        self._topic = topic
        self._database_url = database_url
        self._batch_size = batch_size
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.shipped = 0

    def start(self) -> AlertShipper:
        self._consumer.subscribe([self._topic])
        self._thread = threading.Thread(target=self._run, name="alert-shipper", daemon=True)
        self._thread.start()
        return self

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        conn: psycopg.Connection | None = None
        while not self._stop.is_set():
            messages = self._consumer.consume(self._batch_size, timeout=0.5)
            records = [record for record in map(self._decode, messages) if record is not None]
            if records:
                conn = self._ship(conn, records)
                if conn is None:
                    return  # stopped before the batch was in: its offsets stay uncommitted
            if any(not message.error() for message in messages):  # a batch of errors has no offsets
                self._commit()
        if conn is not None:
            conn.close()

    def _commit(self) -> None:
        """Commit the batch's offsets; if the broker is away, the next batch's commit covers them
        (until then a restart ships them again: at-least-once, as Vector)."""
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            log.warning("offset commit failed; retried with the next batch", extra={"error": str(exc)})

    def _ship(self, conn: psycopg.Connection | None, records: list[dict]) -> psycopg.Connection | None:
        """Insert the batch, retrying (as Vector does) while the database is away; None if stopped."""
        delay_s = 0.5
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self._database_url, connect_timeout=5)
                shipped = self._insert(conn, records)
                self.shipped += shipped
                SHIPPED.inc(shipped)
                return conn
            except psycopg.OperationalError as exc:
                log.warning("database unavailable; retrying the batch", extra={"error": str(exc), "retry_s": delay_s})
                if conn is not None:
                    conn.close()
                conn = None
                self._stop.wait(delay_s)
                delay_s = min(delay_s * 2, 10.0)
        return None

    @staticmethod
    def _insert(conn: psycopg.Connection, records: list[dict]) -> int:
        """Insert the batch in one statement; if alarm_events refuses it (a record with a value of the
        wrong type), insert record by record and reject only the refused ones. Returns the count in."""
        try:
            conn.execute(VECTOR_INSERT, (json.dumps(records),))
            conn.commit()
            return len(records)
        except (psycopg.DataError, psycopg.IntegrityError):
            conn.rollback()
        shipped = 0
        for record in records:
            try:
                conn.execute(VECTOR_INSERT, (json.dumps([record]),))
                conn.commit()
                shipped += 1
            except (psycopg.DataError, psycopg.IntegrityError) as exc:
                conn.rollback()
                REJECTED.inc()
                log.warning("alarm_events refused an alert record", extra={"error": str(exc).splitlines()[0]})
        return shipped

    @staticmethod
    def _decode(message) -> dict | None:
        if message.error():
            log.warning("alerts topic error", extra={"error": str(message.error())})
            return None
        try:
            record = json.loads(message.value())
        except ValueError:
            record = None
        if not isinstance(record, dict):
            REJECTED.inc()
            log.warning("alert record is not a JSON object", extra={"offset": message.offset()})
            return None
        return record

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._consumer.close()
