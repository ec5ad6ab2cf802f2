"""Running the stream jobs in the tests: `python -m jobs` as a child process against a Kafka broker,
the loader (storage.loader) into a database of the test's own, and waiting for what lands there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from confluent_kafka import Consumer, TopicPartition

from contracts.topics import topic_for
from storage.loader import Loader
from storage.migrate import migrate_up

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 300.0
"""The default bound of every wait: generous, the machine is shared and has two cores."""


def new_database(server: str) -> str:
    """A fresh, migrated database on the server; returns its URL."""
    name = f"jobs_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    migrate_up(url)
    return url


def jobs_command(bootstrap: str, *extra: str, job: str = "all") -> list[str]:
    """`python -m jobs <job>` on the broker, checkpointing (so committing its output) every second."""
    return [
        sys.executable,
        "-m",
        "jobs",
        job,
        "--bootstrap-servers",
        bootstrap,
        "--checkpoint-interval",
        "1",
        "--log-level",
        "WARNING",
        *extra,
    ]


def bounded_command(bootstrap: str, checkpoint_dir: Path, *extra: str, job: str = "all") -> list[str]:
    """A replay: every topic from its beginning up to its end offsets at start, then the job ends
    (every window closes at the end of input, allowed lateness or not)."""
    return jobs_command(
        bootstrap, "--bounded", "--start-from", "earliest", "--checkpoint-dir", str(checkpoint_dir), *extra, job=job
    )


def run_jobs(command: list[str], timeout: float = 600, env: dict[str, str] | None = None) -> None:
    """Run a bounded job to its end; fails with the job's stderr when it does not finish cleanly
    (or in time: then the whole process group goes, the JVM with it). `env`: added variables
    (KAFKA_* of contracts.kafka_auth)."""
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_jobs(process, signal.SIGKILL)
        _, err = process.communicate()
        raise AssertionError(f"the job did not finish within {timeout:g} s: {err[-4000:]}") from None
    assert process.returncode == 0, err[-4000:]


def start_jobs(command: list[str], log_path: Path) -> subprocess.Popen:
    """Start a job in a session of its own (the JVM PyFlink launches goes with it); output to a log."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_jobs(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 60) -> None:
    """SIGTERM: the job cancels itself and exits; SIGKILL: the whole process group at once, as a
    crash. Either way nothing of the group is left afterwards (the JVM may outlive its parent)."""
    if sig == signal.SIGKILL:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    elif process.poll() is None:
        process.send_signal(sig)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout_s)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def load_all(bootstrap: str, url: str, group_id: str, timeout_s: float = WAIT_S) -> int:
    """Load everything committed on the broker into the database (after a bounded job finished)."""
    loader = Loader(bootstrap, url, group_id=group_id).start()
    try:
        return loader.catch_up(timeout_s)
    finally:
        loader.close()


class LoaderThread:
    """A Loader running (`Loader.run`) in a thread; `failure` holds what stopped it, if anything."""

    def __init__(self, bootstrap: str, url: str, group_id: str, **options):
        self.loader = Loader(bootstrap, url, group_id=group_id, **options)
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"loader-{group_id}", daemon=True)

    def _run(self) -> None:
        try:
            self.loader.run(self.stop)
        except BaseException as exc:  # reported by check()
            self.failure = exc

    def check(self) -> None:
        if self.failure is not None:
            raise AssertionError(f"the loader failed: {self.failure!r}") from self.failure
        assert self.thread.is_alive() or self.stop.is_set(), "the loader thread ended"


@contextmanager
def loading(bootstrap: str, url: str, group_id: str | None = None, **options) -> Iterator[LoaderThread]:
    """Load the broker's job output into the database while the block runs."""
    running = LoaderThread(bootstrap, url, group_id or f"loader-{uuid.uuid4().hex[:8]}", **options)
    running.thread.start()
    try:
        yield running
    finally:
        running.stop.set()
        running.thread.join(60)


def rows(url: str, query: str, params: tuple | None = None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        return conn.execute(query, params).fetchall()


def wait_for(
    ready: Callable[[], object],
    what: str,
    timeout_s: float = WAIT_S,
    *,
    process: subprocess.Popen | None = None,
    loader: LoaderThread | None = None,
    interval_s: float = 0.2,
) -> float:
    """Poll `ready()` until it is true; fails early when the job process or the loader has ended.
    Returns the seconds it took."""
    started = time.monotonic()
    while not ready():
        if process is not None:
            assert process.poll() is None, f"the job ended (exit code {process.returncode}) while waiting for {what}"
        if loader is not None:
            loader.check()
        assert time.monotonic() - started < timeout_s, f"{what}: not within {timeout_s:g} s"
        time.sleep(interval_s)
    return time.monotonic() - started


def wait_rows(url: str, query: str, want: list[tuple], timeout_s: float = WAIT_S, **alive) -> float:
    """Wait until `query` returns exactly `want`; the failure shows what it returned last."""
    last: list = []

    def matches() -> bool:
        last[:] = rows(url, query)
        return last == want

    try:
        return wait_for(matches, query, timeout_s, **alive)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last result {last!r}, wanted {want!r}") from None


def wait_snapshot(
    url: str, queries: dict[str, str], want: dict[str, list], timeout_s: float = WAIT_S, **alive
) -> float:
    """Wait until snapshot(url, queries) equals `want`; the failure names, per query, a few rows
    missing and a few extra in the last one taken."""
    last: dict[str, list] = {}

    def matches() -> bool:
        last.update(snapshot(url, queries))
        return last == want

    try:
        return wait_for(matches, "the wanted rows", timeout_s, **alive)
    except AssertionError as exc:
        differences = {
            name: {
                "missing": sorted(set(want[name]) - set(last.get(name, [])), key=repr)[:3],
                "extra": sorted(set(last.get(name, [])) - set(want[name]), key=repr)[:3],
            }
            for name in queries
            if last.get(name) != want[name]
        }
        raise AssertionError(f"{exc}; differences {differences!r}") from None


def read_committed(bootstrap: str, topics: Iterable[str], timeout_s: float = 60) -> dict[str, list[bytes]]:
    """Every record a read_committed consumer sees in the topics, read to their ends, per topic."""
    topics = list(topics)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    try:
        metadata = consumer.list_topics(timeout=10).topics
        partitions = [TopicPartition(t, p, 0) for t in topics for p in metadata[t].partitions]
        ends = {
            (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
            for tp in partitions
        }
        consumer.assign(partitions)
        records: dict[str, list[bytes]] = {topic: [] for topic in topics}
        deadline = time.monotonic() + timeout_s
        while True:
            positions = consumer.position([TopicPartition(t, p) for t, p in ends])
            if all(
                tp.offset >= ends[(tp.topic, tp.partition)] or ends[(tp.topic, tp.partition)] == 0 for tp in positions
            ):
                return records
            assert time.monotonic() < deadline, f"reading {topics} to their ends took more than {timeout_s:g} s"
            for message in consumer.consume(1000, timeout=0.5):
                if not message.error():
                    records[message.topic()].append(message.value())
    finally:
        consumer.close()


def _producer(bootstrap: str):
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})


def _send(producer, topic: str, value: bytes, partition: int = 0) -> None:
    while True:
        try:
            producer.produce(topic, value=value, partition=partition)
            break
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.1)
    producer.poll(0)


def produce(bootstrap: str, topic: str, values: Iterable[bytes], partition: int = 0) -> int:
    """Send raw records to one partition of a topic, in order (plain, not transactional)."""
    producer = _producer(bootstrap)
    sent = 0
    for value in values:
        _send(producer, topic, value, partition)
        sent += 1
    assert producer.flush(60) == 0, f"records to {topic} not delivered within 60 s"
    return sent


def loaded_records(url: str, group_id: str) -> dict[str, int]:
    """Per topic, the records the loader group applied (loader_offsets.records, summed over partitions)."""
    found = rows(url, "SELECT topic, sum(records) FROM loader_offsets WHERE group_id = %s GROUP BY 1", (group_id,))
    return {topic: int(count) for topic, count in found}


def snapshot(url: str, queries: dict[str, str]) -> dict[str, list]:
    """Each named query's rows, sorted; doubles rounded to 9 decimals because a restored window
    sums its values in another order (1040.1499999999999 vs 1040.15)."""

    def rounded(row: tuple) -> tuple:
        return tuple(round(value, 9) if isinstance(value, float) else value for value in row)

    return {name: sorted(map(rounded, rows(url, query)), key=repr) for name, query in queries.items()}


def produce_lines(bootstrap: str, pairs: Iterable[tuple[str, str]]) -> int:
    """Send (family, line) pairs to the families' topics, in order, into partition 0."""
    producer = _producer(bootstrap)
    sent = 0
    for family, line in pairs:
        _send(producer, topic_for(family), line.encode())
        sent += 1
    assert producer.flush(60) == 0, "events not delivered within 60 s"
    return sent


class Streamer:
    """Sends (family, line) pairs to the families' topics at a steady rate from a thread, as a
    live fleet would: `start()`, then `join()` once all of them should be out."""

    def __init__(self, bootstrap: str, pairs: list[tuple[str, str]], rate: float):
        self.bootstrap, self.pairs, self.rate = bootstrap, pairs, rate
        self.sent = 0
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="streamer", daemon=True)

    def start(self) -> Streamer:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            producer = _producer(self.bootstrap)
            started = time.monotonic()
            for family, line in self.pairs:
                _send(producer, topic_for(family), line.encode())
                self.sent += 1
                ahead = started + self.sent / self.rate - time.monotonic()
                if ahead > 0.01:
                    time.sleep(ahead)  # pacing, not waiting for a condition
            assert producer.flush(60) == 0, "events not delivered within 60 s"
        except BaseException as exc:  # reported by join()
            self.failure = exc

    def join(self, timeout_s: float = WAIT_S) -> None:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"not all events sent within {timeout_s:g} s ({self.sent} sent)"
        if self.failure is not None:
            raise AssertionError(f"sending events failed: {self.failure!r}") from self.failure
        assert self.sent == len(self.pairs)


def duplicates(values: Iterable) -> dict:
    """The values seen more than once, with how often."""
    return {value: n for value, n in Counter(values).items() if n > 1}
