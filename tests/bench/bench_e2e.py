"""End-to-end benchmark on the services `make run` starts: the simulator produces to Kafka at the
target rate (paced, so simulated time is wall time), the Flink jobs (JobManager and TaskManager
processes on the chart's default job settings) process it into Kafka, the loader into
PostgreSQL, the alert shipper and the API serve the alarms. The first `--warmup` seconds (JIT compilation, the
first checkpoints) are not measured; the next `--seconds` are the measurement window.

Figures over the window: events/s generated and read by the jobs (their sources' record counts,
from the Flink REST API, so every event counts, heartbeats too), the backlog (generated - read)
at its start and end, the readings' freshness (now - newest reading's event time in the
database), and alarm latency from the breaching event's time to the alarm first appearing in the
API. Rates are least-squares slopes over samples every 2 s. Keeps pace: the jobs read >= 98 % of
what was generated and the backlog grew by less than two seconds' worth; sustained: keeps pace
with at most five seconds' worth left at the end. Baseline: the generator's own rate over the
same window.

    python -m tests.bench.bench_e2e [--quick] [--rate N] [--warmup S] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from contracts.topics import EVENT_TOPICS
from devstack.flink_rest import events_read, events_read_by_source
from devstack.run import BrokerService, LocalPlatform
from devstack.services import (
    AlertShipperService,
    ApiService,
    JobsService,
    LoaderService,
    MigrationsService,
    PostgresService,
    RunDir,
    SimulatorService,
)
from generator.config import SimConfig
from generator.simulator import Simulator
from generator.sinks import KafkaSink
from jobs.tables import short
from tests.bench import utc_stamp

RESULTS = Path(__file__).parent / "results"
TARGET_RATE, TARGET_P99_S = 20_000, 2.0
SAMPLE_S = 2.0
SUSTAINED_SHARE = 0.98
CAUGHT_UP_S = 5.0


def _config(rate: float, seconds: float):
    return SimConfig(rate=rate, duration_s=seconds, scenario_period_rounds=60, start=datetime.now(UTC))


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)


def _watch_alarms(api: ApiService, seen: dict, stop: threading.Event) -> None:
    """First wall time each alarm appears in the API (polled every 200 ms)."""
    request = urllib.request.Request(api.url + "/alarms?limit=100", headers=api.headers)
    while not stop.wait(0.2):
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                items = json.load(response)["items"]
        except OSError:
            continue
        now = time.time()
        for item in items:
            first_seen = datetime.fromisoformat(item["first_seen"].replace("Z", "+00:00")).timestamp()
            seen.setdefault(item["alert_id"], (now, first_seen))


@dataclass
class Sample:
    at: float  # monotonic
    generated: int
    read: int | None
    freshness_s: float | None
    backlog_by_topic: dict[str, int] | None


def _sample(sim: SimulatorService, jobs: JobsService, conn: psycopg.Connection) -> Sample:
    (freshness,) = conn.execute("SELECT extract(epoch FROM now() - max(time))::float FROM readings").fetchone()
    # Per topic: what the simulator has made so far (a batch ahead of what it has written).
    generated, sent = dict(sim.source.per_topic), sim.stats.sent
    by_source = events_read_by_source(jobs.rest_url)
    read = sum(by_source.values()) if by_source is not None else None
    backlog = None
    if by_source is not None:
        backlog = {
            topic: generated.get(topic, 0) - by_source.get(f"src_{short(family)}", 0)
            for family, topic in EVENT_TOPICS.items()
        }
    return Sample(time.monotonic(), sent, read, freshness, backlog)


def _drain(sim: SimulatorService, jobs: JobsService, timeout_s: float = 180) -> float | None:
    """Seconds after generation ended until the jobs had read everything (None: not within timeout)."""
    ended = time.monotonic()
    while time.monotonic() - ended < timeout_s:
        read = events_read(jobs.rest_url)
        if read is not None and read >= sim.stats.sent:
            return round(time.monotonic() - ended, 1)
        time.sleep(0.5)
    return None


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares rate: the REST counts lag by up to a refresh (2 s), the end points alone by that much."""
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)


def _window_figures(samples: list[Sample], start: float, end: float) -> dict:
    inside = [s for s in samples if start <= s.at <= end and s.read is not None]
    if len(inside) < 3:
        raise RuntimeError(f"only {len(inside)} samples with the jobs' counts in the measurement window")
    freshness = [s.freshness_s for s in inside if s.freshness_s is not None]
    return {
        "events_generated_per_s": round(_slope([(s.at, s.generated) for s in inside]), 1),
        "events_processed_per_s": round(_slope([(s.at, s.read) for s in inside]), 1),
        "backlog_at_start": inside[0].generated - inside[0].read,
        "backlog_at_end": inside[-1].generated - inside[-1].read,
        "backlog_by_topic_at_end": inside[-1].backlog_by_topic,
        "readings_freshness_p50_s": _percentile(freshness, 0.5),
        "readings_freshness_max_s": round(max(freshness), 2) if freshness else None,
    }


def verdict(figures: dict) -> tuple[bool, bool]:
    """(keeps pace, sustained) from a window's figures."""
    generated, processed = figures["events_generated_per_s"], figures["events_processed_per_s"]
    keeps_pace = processed >= SUSTAINED_SHARE * generated and (
        figures["backlog_at_end"] - figures["backlog_at_start"] < 2 * generated
    )
    # Keeping pace behind a standing backlog (left from the warm-up) is not sustaining the rate.
    return keeps_pace, keeps_pace and figures["backlog_at_end"] <= CAUGHT_UP_S * generated


def _measure(work: RunDir, rate: float, warmup: float, seconds: float) -> dict:
    broker, postgres = BrokerService(work.broker), PostgresService()

    def bootstrap() -> str:
        return broker.broker.bootstrap

    jobs, api = JobsService(work, bootstrap), ApiService(work, postgres)
    started = time.monotonic()
    loader, shipper = LoaderService(work, bootstrap, postgres), AlertShipperService(bootstrap, postgres)
    with LocalPlatform([(broker, postgres), (jobs, MigrationsService(postgres)), (loader, shipper, api)]):
        jobs.wait_submitted()
        startup_s = time.monotonic() - started
        print(
            f"bench e2e: jobs running after {startup_s:.0f} s; {rate:g}/s for {warmup:g} + {seconds:g} s",
            file=sys.stderr,
        )
        seen: dict = {}
        stop = threading.Event()
        watcher = threading.Thread(target=_watch_alarms, args=(api, seen, stop), daemon=True)
        watcher.start()
        sim = SimulatorService(lambda: Simulator(_config(rate, warmup + seconds)), lambda: KafkaSink(bootstrap()))
        generation_started, wall_started = time.monotonic(), time.time()
        sim.start()
        samples = []
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            while not sim.finished():
                samples.append(_sample(sim, jobs, conn))
                last = samples[-1]
                print(
                    f"bench e2e: generated {last.generated:,}, jobs read {last.read}, readings {last.freshness_s} s old",
                    file=sys.stderr,
                )
                time.sleep(SAMPLE_S)
            samples.append(_sample(sim, jobs, conn))
        drain_s = _drain(sim, jobs)
        time.sleep(5)  # the alarms of the last events reach the API
        stop.set()
        watcher.join()
        sim.stop()
    window = (generation_started + warmup, generation_started + warmup + seconds)
    figures = _window_figures(samples, *window)
    in_window = wall_started + warmup, wall_started + warmup + seconds
    latencies = [wall - first for wall, first in seen.values() if in_window[0] <= first <= in_window[1]]
    figures |= {
        "drained_s_after_generation": drain_s,
        "alarm_latency_p50_s": _percentile(latencies, 0.5),
        "alarm_latency_p99_s": _percentile(latencies, 0.99),
        "alarms_measured": len(latencies),
        "startup_s": round(startup_s, 1),
    }
    return figures


def run(
    quick: bool = False, rate: float | None = None, seconds: float | None = None, warmup: float | None = None
) -> dict:
    default_rate, default_seconds, default_warmup = (1_000, 20, 10) if quick else (TARGET_RATE, 60, 60)
    rate, seconds = rate or default_rate, seconds or default_seconds
    warmup = default_warmup if warmup is None else warmup
    # The run's files (about 0.4 GB at 20k/s for two minutes) go with it.
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as base:
        figures = _measure(RunDir.create(Path(base)), rate, warmup, seconds)
    by_topic = figures.pop("backlog_by_topic_at_end")  # in the JSON, not the table
    generated, processed = figures["events_generated_per_s"], figures["events_processed_per_s"]
    keeps_pace, sustained = verdict(figures)
    met_by = {
        "events_processed_per_s": sustained and processed >= SUSTAINED_SHARE * TARGET_RATE,
        "alarm_latency_p99_s": figures["alarm_latency_p99_s"] is not None
        and figures["alarm_latency_p99_s"] < TARGET_P99_S,
    }
    return {
        "component": "e2e",
        "figures": figures | {"keeps_pace": keeps_pace, "sustained": sustained},
        "baseline": {"events_processed_per_s": generated},
        "ratios": {"events_processed_per_s": round(processed / generated, 3)},
        "targets": {
            "events_processed_per_s": f">= {TARGET_RATE:,}/s sustained on 2 cores",
            "alarm_latency_p99_s": f"< {TARGET_P99_S} s",
        },
        "met_by": met_by,
        "met": all(met_by.values()),
        "quick": quick,
        "rate_asked": rate,
        "warmup_s": warmup,
        "window_s": seconds,
        "backlog_by_topic_at_end": by_topic,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1k events/s, 10 s warm-up, 20 s window")
    parser.add_argument("--rate", type=_positive, help=f"events/s the simulator writes (default {TARGET_RATE})")
    parser.add_argument("--warmup", type=_non_negative, help="seconds generated before the window (default 60)")
    parser.add_argument("--seconds", type=_positive, help="seconds of the measurement window (default 60)")
    parser.add_argument(
        "--out", type=Path, help="results file (default results/e2e.json; another rate: e2e-<rate>.json)"
    )
    args = parser.parse_args(argv)
    result = run(args.quick, args.rate, args.seconds, args.warmup)
    result["measured_at"] = utc_stamp()
    default = (
        "e2e.json" if result["rate_asked"] == TARGET_RATE and not args.quick else f"e2e-{result['rate_asked']:g}.json"
    )
    RESULTS.mkdir(exist_ok=True)
    (args.out or RESULTS / default).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["met"] else 1


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
