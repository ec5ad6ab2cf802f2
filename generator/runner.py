"""The run loop: take batches from a source, pace them, hand them to a sink; progress lines,
Prometheus metrics and a clean stop (Ctrl-C / SIGTERM set `stop`; the sink is always flushed)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from contracts import jsonlog
from contracts.prometheus_names import GENERATOR_DELIVERY_ERRORS, GENERATOR_EVENTS, GENERATOR_RATE
from generator.sinks import Sink

log = logging.getLogger("generator")
PACING_SLICE_S = 0.01
"""Paced runs release events in slices of at most this much simulated time."""


class BatchSource(Protocol):
    per_topic: Counter

    def next_batch(self) -> list[tuple[str, str, str]]: ...

    def due_s(self, index: int) -> float:
        """Seconds after the start of the run at which event `index` is due."""


@dataclass
class RunStats:
    sent: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    per_topic: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    stopped_early: bool = False

    started_at: float | None = None  # time.monotonic() when the run began

    @property
    def rate(self) -> float:
        """Events per second of the run: so far while it runs, overall once it ended."""
        elapsed = self.elapsed_s or (time.monotonic() - self.started_at if self.started_at else 0.0)
        return self.sent / elapsed if elapsed > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "sent": self.sent,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed_s, 3),
            "rate_per_s": round(self.rate, 1),
            "per_topic": self.per_topic,
            "last_error": self.last_error,
            "stopped_early": self.stopped_early,
        }


def setup_logging(level: str = "INFO") -> None:
    jsonlog.configure(level)


class Metrics:
    """Prometheus metrics read from the run's plain counters at scrape time: nothing on the hot path."""

    def __init__(self, stats: RunStats, source: BatchSource, sink: Sink):
        self.stats, self.source, self.sink = stats, source, sink

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        events = CounterMetricFamily(GENERATOR_EVENTS, "Events handed to the sink, by topic.", labels=["topic"])
        for topic, count in sorted(self.source.per_topic.items()):
            events.add_metric([topic], count)
        yield events
        yield CounterMetricFamily(
            GENERATOR_DELIVERY_ERRORS, "Events the sink failed to deliver.", value=self.sink.errors
        )
        yield GaugeMetricFamily(GENERATOR_RATE, "Average send rate of this run.", value=self.stats.rate)

    def serve(self, port: int, address: str = "127.0.0.1"):
        from prometheus_client import start_http_server
        from prometheus_client.core import CollectorRegistry

        registry = CollectorRegistry()
        registry.register(self)
        return start_http_server(port, addr=address, registry=registry)


def run(
    source: BatchSource,
    sink: Sink,
    stop: threading.Event,
    *,
    paced: bool = True,
    progress_interval_s: float = 5.0,
    stats: RunStats | None = None,
) -> RunStats:
    """Send everything the source yields (or until `stop`), then close the sink."""
    stats = stats or RunStats()
    started = stats.started_at = time.monotonic()
    next_progress = started + progress_interval_s
    try:
        while not stop.is_set():
            batch = source.next_batch()
            if not batch:
                break
            if paced:
                _paced_write(source, sink, batch, stats=stats, started=started, stop=stop)
            else:
                sink.write(batch)
                stats.sent += len(batch)
            now = time.monotonic()
            if now >= next_progress:
                next_progress = now + progress_interval_s
                _progress(stats, sink, source, now - started)
        stats.stopped_early = stop.is_set()
    finally:
        if hasattr(source, "close"):
            source.close()
        sink.close()
        stats.elapsed_s = time.monotonic() - started
        stats.errors = sink.errors
        stats.last_error = getattr(sink, "last_error", None)
        stats.per_topic = dict(sorted(source.per_topic.items()))
    return stats


def _paced_write(source, sink, batch, *, stats: RunStats, started: float, stop: threading.Event) -> None:
    position = 0
    while position < len(batch):
        due = started + source.due_s(stats.sent)
        delay = due - time.monotonic()
        if delay > 0 and stop.wait(delay):
            return
        end = position + 1
        horizon = source.due_s(stats.sent) + PACING_SLICE_S
        while end < len(batch) and source.due_s(stats.sent + end - position) <= horizon:
            end += 1
        sink.write(batch[position:end])
        stats.sent += end - position
        position = end
        if hasattr(sink, "roll_aged"):
            sink.roll_aged()


def _progress(stats: RunStats, sink: Sink, source: BatchSource, elapsed: float) -> None:
    log.info(
        "progress",
        extra={
            "sent": stats.sent,
            "rate_per_s": round(stats.sent / elapsed, 1) if elapsed > 0 else 0.0,
            "errors": sink.errors,
            "per_topic": dict(sorted(source.per_topic.items())),
        },
    )
