"""`python -m storage.loader`: the jobs' outputs from Kafka into the database, exactly once.

The Flink jobs write their tables to the store topics, alarm records to the alerts topic and
rejected events to the dead-letter topic, in Kafka transactions committed with each checkpoint.
The loader reads them `read_committed` (so only checkpointed output), and upserts each batch with
storage.writes in one transaction together with the offsets that follow it (`loader_offsets`).
It resumes from those offsets, not from the group's: whatever crashes, each record counts once.
It needs no disk shared with Flink, and runs as its own deployment (charts/loader).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import logging
import signal
import sys
import threading
import time
from collections import defaultdict

import psycopg
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, Message, TopicPartition
from prometheus_client import Counter, Gauge, start_http_server
from pydantic import ValidationError

from contracts import jsonlog
from contracts.kafka_auth import LOADER_GROUP, KafkaAuth, KafkaAuthError
from contracts.metrics import NO_TIRE, TIRE_METRICS, TIRE_POSITIONS
from contracts.prometheus_names import LOADER_LAST_BATCH_SECONDS, LOADER_LAST_LOAD, LOADER_RECORDS, LOADER_REJECTED
from contracts.records import AlertRecord
from contracts.topics import ALERTS_TOPIC, DEAD_LETTER_TOPIC, STORE_TOPICS
from storage.writes import JSON_TABLES, WRITES, upsert_csv, upsert_rows

log = logging.getLogger("storage.loader")
DEFAULT_GROUP = LOADER_GROUP  # the group charts/kafka's ACLs let the loader user read in

LOADED = Counter(LOADER_RECORDS, "Records loaded into the database", ["table"])
REJECTED = Counter(LOADER_REJECTED, "Records that were not valid and went to dead_letters", ["table"])
BATCH_SECONDS = Gauge(LOADER_LAST_BATCH_SECONDS, "Duration of the last batch's transaction")
LAST_LOAD = Gauge(LOADER_LAST_LOAD, "Wall time of the last committed batch")


def topic_tables() -> dict[str, str]:
    """Every topic the loader reads -> the table its records go to."""
    return {
        **{topic: table for table, topic in STORE_TOPICS.items()},
        ALERTS_TOPIC: "alarms",
        DEAD_LETTER_TOPIC: "dead_letters",
    }


class Loader:
    def __init__(
        self,
        bootstrap_servers: str,
        database_url: str,
        group_id: str = DEFAULT_GROUP,
        *,
        tables: dict[str, str] | None = None,
        batch_size: int = 20_000,
        poll_s: float = 0.1,
        kafka_auth: KafkaAuth | None = None,
    ):
        self.group_id = group_id
        self.tables = tables or topic_tables()
        for table in set(self.tables.values()):  # a series per table from the start: increase() sees the first
            LOADED.labels(table)
            REJECTED.labels(table)
        self.batch_size = batch_size
        self.poll_s = poll_s
        self.database_url = database_url
        self.conn = psycopg.connect(database_url)
        self.conn.execute("SET TIME ZONE 'UTC'")
        self.conn.commit()
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": group_id,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10_000,
                **(kafka_auth or KafkaAuth.from_env()).librdkafka(),  # SASL/TLS: KAFKA_*
            }
        )
        self.loaded = 0

    def _stored_offsets(self) -> dict[tuple[str, int], int]:
        """Where each partition resumes: the offsets committed with the rows (loader_offsets).
        Waits for the database when it is away (a rebalance can come at any time)."""
        while True:
            try:
                rows = self.conn.execute(
                    "SELECT topic, partition, next_offset FROM loader_offsets WHERE group_id = %s", (self.group_id,)
                ).fetchall()
                self.conn.commit()
                return {(topic, partition): offset for topic, partition, offset in rows}
            except psycopg.OperationalError as exc:
                log.warning("database unavailable; waiting for it", extra={"error": str(exc)})
                self._connect()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start each partition where the database says, not where the group committed."""
        stored = self._stored_offsets()
        for tp in partitions:
            tp.offset = stored.get((tp.topic, tp.partition), OFFSET_BEGINNING)
        consumer.assign(partitions)
        log.info(
            "partitions assigned", extra={"partitions": [f"{p.topic}[{p.partition}]@{p.offset}" for p in partitions]}
        )

    def start(self) -> Loader:
        self.consumer.subscribe(list(self.tables), on_assign=self._on_assign)
        log.info("loader started", extra={"group_id": self.group_id, "topics": list(self.tables)})
        return self

    def poll_once(self) -> int:
        """Consume and apply one batch; returns how many records it held. While the database is
        away the batch is dropped and, once it is back, every partition resumes from the offsets the
        database holds: a batch whose commit got through is not applied again, nor one lost."""
        messages = self.consumer.consume(self.batch_size, timeout=self.poll_s)
        if messages:
            try:
                self.load(messages)
            except psycopg.OperationalError as exc:
                log.warning("database unavailable; reconnecting", extra={"error": str(exc)})
                self._reconnect()
        return len(messages)

    def _reconnect(self) -> None:
        """A new connection once the database answers; every partition back to its stored offset."""
        self._connect()
        stored = self._stored_offsets()
        for tp in self.consumer.assignment():
            tp.offset = stored.get((tp.topic, tp.partition), OFFSET_BEGINNING)
            self.consumer.seek(tp)
        log.info("database back; resumed from its offsets")

    def _connect(self) -> None:
        delay_s = 0.5
        while True:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
            try:
                self.conn = psycopg.connect(self.database_url, connect_timeout=5)
                self.conn.execute("SET TIME ZONE 'UTC'")
                self.conn.commit()
                return
            except psycopg.OperationalError as exc:
                log.warning("database unavailable", extra={"error": str(exc), "retry_s": delay_s})
                time.sleep(delay_s)
                delay_s = min(delay_s * 2, 10.0)

    def run(self, stop: threading.Event) -> None:
        self.start()
        try:
            while not stop.is_set():
                self.poll_once()
        finally:
            self.close()

    def caught_up(self) -> bool:
        """Every partition of every topic is assigned and read to its end (all of it committed)."""
        assigned = self.consumer.assignment()
        expected = sum(
            len(meta.partitions)
            for meta in self.consumer.list_topics(timeout=10).topics.values()
            if meta.topic in self.tables
        )
        if len(assigned) < expected:
            return False
        # Every partition's end in one request (read_committed: the last stable offset), not one
        # each: a query waits behind the consumer's long-polling fetch, 24 of them took 12 s.
        ends = self.consumer.offsets_for_times(
            [TopicPartition(tp.topic, tp.partition, OFFSET_END) for tp in assigned], timeout=10
        )
        if any(tp.error or tp.offset < 0 for tp in ends):
            return False
        end = {(tp.topic, tp.partition): tp.offset for tp in ends}
        for tp in self.consumer.position(assigned):
            high = end[(tp.topic, tp.partition)]
            if tp.offset < high and not (tp.offset < 0 and high == 0):
                return False
        return True

    def catch_up(self, timeout_s: float = 120) -> int:
        """Load until caught_up(): after a bounded job, everything it wrote. Returns records read."""
        deadline = time.monotonic() + timeout_s
        read = 0
        while True:
            got = self.poll_once()
            read += got
            if not got and self.caught_up():
                return read
            if time.monotonic() > deadline:
                raise TimeoutError(f"loader not caught up within {timeout_s:g} s ({read} records read)")

    def close(self) -> None:
        self.consumer.close()
        self.conn.close()

    def load(self, messages: list[Message]) -> int:
        """Apply one batch and the offsets after it in one transaction; returns rows changed."""
        by_table: dict[str, list[Message]] = defaultdict(list)
        ends: dict[tuple[str, int], tuple[int, int]] = {}
        for message in messages:
            if message.error():
                if message.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error", extra={"error": str(message.error())})
                continue
            by_table[self.tables[message.topic()]].append(message)
            key = (message.topic(), message.partition())
            ends[key] = (message.offset() + 1, ends.get(key, (0, 0))[1] + 1)
        started = time.monotonic()
        changed = 0
        with self.conn.transaction():
            rejected: list[tuple] = []
            for table, batch in by_table.items():
                changed += self._apply(table, batch, rejected)
            if rejected:
                upsert_rows(self.conn, "dead_letters", rejected)
            for (topic, partition), (offset, count) in ends.items():
                self.conn.execute(
                    "INSERT INTO loader_offsets (group_id, topic, partition, next_offset, records) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (group_id, topic, partition) DO UPDATE SET "
                    "next_offset = excluded.next_offset, records = loader_offsets.records + excluded.records, "
                    "updated_at = now()",
                    (self.group_id, topic, partition, offset, count),
                )
        # The group's offsets only show the lag to monitoring tools; the database's are the truth.
        self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), (o, _) in ends.items()], asynchronous=True)
        BATCH_SECONDS.set(time.monotonic() - started)
        LAST_LOAD.set_to_current_time()
        self.loaded += len(messages)
        return changed

    def _apply(self, table: str, batch: list[Message], rejected: list[tuple]) -> int:
        LOADED.labels(table).inc(len(batch))
        items: list[tuple[Message, object]] = []
        if table not in JSON_TABLES:
            items = [(message, message.value() or b"") for message in batch]

            def write(values: list) -> int:
                return upsert_csv(self.conn, table, b"\n".join(values) + b"\n")

        else:
            for message in batch:
                try:
                    items.append((message, _row(table, message.value() or b"")))
                except (ValueError, ValidationError) as exc:
                    REJECTED.labels(table).inc()
                    rejected.append(_dead_letter(message, exc))

            def write(values: list) -> int:
                return upsert_rows(self.conn, table, values)

        today = LEGACY_FORMS.get(table)
        if items and today and today(table, items[0][1]) is not None:
            items = [(message, today(table, value) or value) for message, value in items]
        return self._write(table, items, write, rejected) if items else 0

    def _write(self, table: str, items: list[tuple[Message, object]], write, rejected: list[tuple]) -> int:
        """Write the records in one statement; when the database refuses them (a CSV record that
        does not parse, a value out of range, a missing column), halve the batch, in order, until
        the records it refuses stand alone, and send those to dead_letters with its reason."""
        try:
            with self.conn.transaction():  # a savepoint: the batch's transaction survives a refusal
                return write([value for _, value in items])
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            if len(items) == 1:
                today = LEGACY_FORMS.get(table)
                legacy = today(table, items[0][1]) if today else None
                if legacy is not None:  # an older job's record among today's
                    return self._write(table, [(items[0][0], legacy)], write, rejected)
                REJECTED.labels(table).inc()
                rejected.append(_dead_letter(items[0][0], exc))
                return 0
        middle = len(items) // 2
        return self._write(table, items[:middle], write, rejected) + self._write(table, items[middle:], write, rejected)


def _one_column_short(table: str, value: bytes) -> list[str] | None:
    """The CSV fields of a record that has one column fewer than `table` has today, else None."""
    try:
        (fields,) = csv.reader([value.decode()])
    except (UnicodeDecodeError, ValueError, csv.Error):
        return None
    return fields if len(fields) == len(WRITES[table].columns) - 1 else None


def _csv(fields: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue().encode()


def _before_tires(table: str, value: bytes) -> bytes | None:
    """A record of `table` as jobs before migration 0013 wrote it (no tire column; the tire in the
    metric name, `pressure_kpa.FL`) in today's columns; None for any other record."""
    fields = _one_column_short(table, value)
    if fields is None:
        return None
    metric_at = WRITES[table].columns.index("metric")
    metric, _, tire = fields[metric_at].rpartition(".")
    if not (metric in TIRE_METRICS and tire in TIRE_POSITIONS):  # driving.event.odometer_km has none
        metric, tire = fields[metric_at], NO_TIRE
    fields[metric_at : metric_at + 1] = [metric, tire]  # tire follows metric
    return _csv(fields)


def _before_trip_fleets(table: str, value: bytes) -> bytes | None:
    """A trip_metrics record as jobs before migration 0016 wrote it (every fleet of a region in one
    row, no fleet column) in today's columns, with the fleet '*' that migration gave such rows."""
    fields = _one_column_short(table, value)
    if fields is None:
        return None
    fleet_at = WRITES[table].columns.index("fleet_id")
    return _csv([*fields[:fleet_at], ALL_FLEETS, *fields[fleet_at:]])


ALL_FLEETS = "*"
"""The fleet of trip metrics written before they were kept per fleet (migration 0016)."""
LEGACY_FORMS = {"readings": _before_tires, "aggregates": _before_tires, "trip_metrics": _before_trip_fleets}
"""Per store table, the record as older jobs wrote it in today's columns (None if it is not such a
record): what they left in the store topics then loads during an upgrade instead of becoming dead
letters."""


def _row(table: str, value: bytes) -> tuple:
    document = json.loads(value)
    if not isinstance(document, dict):
        raise ValueError("record is not a JSON object")
    if table == "alarms":
        document = AlertRecord.model_validate(document).model_dump(mode="json")
    values = tuple(document.get(column) for column in WRITES[table].columns)
    for column, field in zip(WRITES[table].columns, values, strict=True):
        if isinstance(field, dict | list):
            raise ValueError(f"{column}: a JSON {type(field).__name__} where a plain value belongs")
    return values


def _dead_letter(message: Message, exc: Exception) -> tuple:
    """A record the loader cannot apply, kept with the reason instead of stopping the pipeline."""
    payload = (message.value() or b"").decode("utf-8", "replace").replace("\x00", "\ufffd")  # text holds no NUL
    reason = str(exc).splitlines()[0][:500].replace("\x00", "\ufffd")
    digest = hashlib.sha256(f"malformed|{message.topic()}|{payload}".encode()).hexdigest()
    received = message.timestamp()[1] / 1000 if message.timestamp()[1] > 0 else time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(received)) + "+00"
    return (digest, "malformed", message.topic(), payload, reason, None, stamp)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m storage.loader", description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap-servers", required=True, help="Kafka bootstrap servers")
    p.add_argument("--database-url", required=True, help="PostgreSQL/TimescaleDB URL (migrated)")
    p.add_argument(
        "--group-id", default=DEFAULT_GROUP, help=f"consumer group and offset ledger key (default {DEFAULT_GROUP})"
    )
    p.add_argument("--batch-size", type=int, default=20_000, help="records per transaction at most (default 20000)")
    p.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port (0: off)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.batch_size <= 0:
        _parser().error(f"--batch-size must be > 0, got {args.batch_size}")
    jsonlog.configure(args.log_level)
    if args.metrics_port:
        start_http_server(args.metrics_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        loader = Loader(args.bootstrap_servers, args.database_url, args.group_id, batch_size=args.batch_size)
    except psycopg.OperationalError as exc:
        print(f"python -m storage.loader: error: cannot connect to the database: {exc}".strip(), file=sys.stderr)
        return 2
    except KafkaAuthError as exc:
        print(f"python -m storage.loader: error: {exc}", file=sys.stderr)
        return 2
    loader.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
