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
from confluent_kafka import Consumer
from prometheus_client import Counter

from contracts.prometheus_names import ALERT_SHIPPER_RECORDS, ALERT_SHIPPER_REJECTED
from contracts.topics import ALERTS_TOPIC

log = logging.getLogger(__name__)

# Exactly what Vector's postgres sink executes (TOOLCHAIN.md): absent fields become NULL.
VECTOR_INSERT = "INSERT INTO alarm_events SELECT * FROM jsonb_populate_recordset(NULL::alarm_events, %s::jsonb)"

SHIPPED = Counter(ALERT_SHIPPER_RECORDS, "Alert records shipped into alarm_events")
REJECTED = Counter(ALERT_SHIPPER_REJECTED, "Alert records that were not JSON objects")


class AlertShipper:
    def __init__(self, bootstrap: str, database_url: str, topic: str = ALERTS_TOPIC, batch_size: int = 500):
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "fleet-alert-shipper",
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

    def _run(self) -> None:
        conn: psycopg.Connection | None = None
        while not self._stop.is_set():
            messages = self._consumer.consume(self._batch_size, timeout=0.5)
            records = [record for record in map(self._decode, messages) if record is not None]
            if records:
                conn = self._ship(conn, records)
                if conn is None:
                    return  # stopped before the batch was in: its offsets stay uncommitted
            if messages:
                self._consumer.commit(asynchronous=False)
        if conn is not None:
            conn.close()

    def _ship(self, conn: psycopg.Connection | None, records: list[dict]) -> psycopg.Connection | None:
        """Insert the batch, retrying (as Vector does) while the database is away; None if stopped."""
        delay_s = 0.5
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self._database_url, connect_timeout=5)
                conn.execute(VECTOR_INSERT, (json.dumps(records),))
                conn.commit()
                self.shipped += len(records)
                SHIPPED.inc(len(records))
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
