"""Where events go: Kafka, rolled JSON-lines files, or stdout. Every sink takes batches of
(topic, key, payload) tuples, counts what it could not deliver, and flushes cleanly on close."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from pathlib import Path
from typing import Protocol

from confluent_kafka import KafkaError, Producer

from contracts.topics import EVENT_TOPICS


class Sink(Protocol):
    errors: int

    def write(self, batch: list[tuple[str, str, str]]) -> None: ...

    def close(self) -> None: ...


class KafkaSink:
    """Keyed, idempotent producer. Keys hash with Kafka's Java partitioner (murmur2), so a key
    lands on the same partition as from any Java client; per-key order holds."""

    def __init__(self, bootstrap: str, extra_config: dict[str, str] | None = None, flush_timeout_s: float = 30.0):
        self.errors = 0
        self.last_error: str | None = None
        self.flush_timeout_s = flush_timeout_s
        config = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "queue.buffering.max.messages": 1_000_000,
            "delivery.report.only.error": True,  # reports cost a Python call each: only for failures
            "on_delivery": self._delivered,
            "error_cb": self._client_error,
            "log.connection.close": False,  # idle disconnects are routine, not worth a stderr line
        }
        config.update(extra_config or {})
        self.producer_config_for_benchmark = {k: v for k, v in config.items() if not callable(v)}
        self.producer = Producer(config)
        self._produce, self._poll = self.producer.produce, self.producer.poll

    def _delivered(self, error: KafkaError | None, _message) -> None:
        if error is not None:
            self.errors += 1
            self.last_error = str(error)

    def _client_error(self, error: KafkaError) -> None:
        self.last_error = str(error)
        if error.fatal():
            self.errors += 1

    def write(self, batch: list[tuple[str, str, str]]) -> None:
        produce = self._produce
        for topic, key, payload in batch:
            try:
                produce(topic, payload, key)
            except BufferError:  # local queue full: let librdkafka drain, then retry once
                self._poll(0.05)
                produce(topic, payload, key)
        self._poll(0)

    def close(self) -> None:
        """Flush; whatever is still undelivered after the timeout counts as an error."""
        remaining = self.producer.flush(self.flush_timeout_s)
        self.producer = self._produce = self._poll = None  # disconnect now, not at garbage collection
        if remaining:
            self.errors += remaining
            self.last_error = f"{remaining} messages undelivered after {self.flush_timeout_s:.0f} s flush"


class JsonlFileSink:
    """`<out_dir>/<topic>/<topic>-<seq:06d>.jsonl`, one raw payload per line. Each file is written
    under a hidden name ('.' prefix) in the same directory and renamed when rolled (by line
    count or age), so a continuously monitoring reader only ever sees complete files."""

    def __init__(self, out_dir: Path, max_lines: int = 100_000, max_age_s: float = 1.0):
        if max_lines < 1 or max_age_s <= 0:
            raise ValueError("file roll needs max_lines >= 1 and max_age_s > 0")
        self.errors = 0
        self.out_dir = Path(out_dir)
        self.max_lines, self.max_age_s = max_lines, max_age_s
        self.files_written = 0
        self._open: dict[str, tuple[object, Path, int, float]] = {}
        self._lines: dict[str, int] = {}
        self._seq: dict[str, int] = {}
        for topic in EVENT_TOPICS.values():
            directory = self.out_dir / topic
            directory.mkdir(parents=True, exist_ok=True)
            self._seq[topic] = _next_sequence(directory, topic)

    def write(self, batch: list[tuple[str, str, str]]) -> None:
        for topic, _key, payload in batch:
            entry = self._open.get(topic) or self._start(topic)
            entry[0].write(payload + "\n")
            self._lines[topic] += 1
            if self._lines[topic] >= self.max_lines:
                self._roll(topic)
        self.roll_aged()

    def roll_aged(self) -> None:
        now = time.monotonic()
        for topic in [topic for topic, entry in self._open.items() if now - entry[3] >= self.max_age_s]:
            self._roll(topic)

    def _start(self, topic: str):
        seq = self._seq[topic]
        self._seq[topic] = seq + 1
        final = self.out_dir / topic / f"{topic}-{seq:06d}.jsonl"
        hidden = final.with_name(f".{final.name}.inprogress")
        entry = (open(hidden, "w", encoding="utf-8"), final, seq, time.monotonic())  # noqa: SIM115
        self._open[topic], self._lines[topic] = entry, 0
        return entry

    def _roll(self, topic: str) -> None:
        handle, final, _seq, _opened = self._open.pop(topic)
        handle.close()
        os.rename(handle.name, final)  # atomic within one directory
        self.files_written += 1

    def close(self) -> None:
        for topic in list(self._open):
            self._roll(topic)


def _next_sequence(directory: Path, topic: str) -> int:
    """Continue after existing files, so a restarted run never overwrites what a reader has seen."""
    pattern = re.compile(rf"^{re.escape(topic)}-(\d+)\.jsonl$")
    numbers = [int(match.group(1)) for name in os.listdir(directory) if (match := pattern.match(name))]
    return max(numbers, default=-1) + 1


class StdoutSink:
    """One raw payload per line, for pipes and eyeballs."""

    def __init__(self, stream=None):
        self.errors = 0
        self.stream = stream or sys.stdout

    def write(self, batch: list[tuple[str, str, str]]) -> None:
        try:
            self.stream.write("".join(payload + "\n" for _topic, _key, payload in batch))
        except BrokenPipeError:
            self.errors += len(batch)
            raise

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.stream.flush()


class NullSink:
    """Discards everything (dry runs, expectations, benchmarks of generation alone)."""

    errors = 0

    def write(self, batch) -> None:
        pass

    def close(self) -> None:
        pass
