"""End-to-end benchmark on the services `make run` starts: the simulator writes files at the target
rate (paced, so simulated time is wall time), the Flink jobs process them into PostgreSQL, the
alert shipper and the API serve the alarms. Figures: events/s generated and processed (every
event becomes readings or a dead letter) and alarm latency from the triggering event's time to
the alarm first appearing in the API. Baseline: the generator's rate into files alone.

    python -m tests.bench.bench_e2e [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from devstack.run import BrokerService, LocalPlatform
from devstack.services import (
    AlertShipperService,
    ApiService,
    JobsService,
    MigrationsService,
    PostgresService,
    RunDir,
    SimulatorService,
)
from generator.cli import build_parser, config_from_args
from generator.simulator import Simulator
from generator.sinks import JsonlFileSink
from tests.bench import utc_stamp

RESULTS = Path(__file__).parent / "results"
TARGET_RATE, TARGET_P99_S = 20_000, 3.0


def _config(rate: float, seconds: float):
    args = build_parser().parse_args(["--rate", str(rate), "--duration", str(seconds), "--scenario-period", "60"])
    args.start = datetime.now(UTC)
    return config_from_args(args)


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _watch_alarms(api_url: str, seen: dict, stop: threading.Event) -> None:
    """First wall time each alarm appears in the API (polled every 200 ms)."""
    while not stop.wait(0.2):
        try:
            with urllib.request.urlopen(api_url + "/alarms?limit=100", timeout=5) as response:
                items = json.load(response)["items"]
        except OSError:
            continue
        now = time.time()
        for item in items:
            seen.setdefault(item["alert_id"], (now, item["first_seen"]))


def run(quick: bool = False, rate: float | None = None, seconds: float | None = None) -> dict:
    default_rate, default_seconds = (1_000, 30) if quick else (TARGET_RATE, 60)
    rate, seconds = rate or default_rate, seconds or default_seconds
    work = RunDir.create(Path(tempfile.mkdtemp(prefix="bench-e2e-")))
    broker, postgres = BrokerService(), PostgresService()

    def bootstrap() -> str:
        return broker.broker.bootstrap

    jobs, api = JobsService(work, postgres, bootstrap), ApiService(work, postgres)
    started = time.monotonic()
    services = [broker, postgres, MigrationsService(postgres), AlertShipperService(bootstrap, postgres), jobs, api]
    with LocalPlatform(services):
        planning_s = jobs.wait_submitted()
        startup_s = time.monotonic() - started
        print(f"bench e2e: jobs running after {planning_s:.0f} s; generating {rate}/s for {seconds} s", file=sys.stderr)
        seen: dict = {}
        stop = threading.Event()
        watcher = threading.Thread(target=_watch_alarms, args=(api.url, seen, stop), daemon=True)
        watcher.start()
        sim = SimulatorService(Simulator(_config(rate, seconds)), JsonlFileSink(work.input, max_age_s=0.5))
        generation_started = time.monotonic()
        sim.start()
        while not sim.finished():
            time.sleep(5)
            print(f"bench e2e: generated {sim.stats.sent:,}", file=sys.stderr)
        generated_s = time.monotonic() - generation_started
        processed, done_at = _wait_processed(postgres.url, sim.stats.sent)
        stop.set()
        watcher.join()
        sim.stop()
    processed_s = done_at - generation_started
    latencies = [
        wall - datetime.fromisoformat(first.replace("Z", "+00:00")).timestamp() for wall, first in seen.values()
    ]
    figures = {
        "events_generated_per_s": round(sim.stats.sent / generated_s, 1),
        "events_processed_per_s": round(processed / processed_s, 1),
        "events_processed": processed,
        "alarm_latency_p50_s": _percentile(latencies, 0.5),
        "alarm_latency_p99_s": _percentile(latencies, 0.99),
        "alarms_seen": len(latencies),
        "startup_s": round(startup_s, 1),
    }
    met = (
        figures["events_processed_per_s"] >= TARGET_RATE
        and figures["alarm_latency_p99_s"] is not None
        and figures["alarm_latency_p99_s"] < TARGET_P99_S
    )
    return {
        "component": "e2e",
        "figures": figures,
        "baseline": {"events_processed_per_s": figures["events_generated_per_s"]},
        "ratios": {
            "events_processed_per_s": round(figures["events_processed_per_s"] / figures["events_generated_per_s"], 3)
        },
        "targets": {
            "events_processed_per_s": f">= {TARGET_RATE:,}/s on 2 cores",
            "alarm_latency_p99_s": f"< {TARGET_P99_S} s",
        },
        "met": met,
        "quick": quick,
        "rate_asked": rate,
        "seconds_asked": seconds,
    }


def _wait_processed(url: str, sent: int, settle_s: float = 15) -> tuple[int, float]:
    """(events accounted for, when the last one was): readings' distinct events + dead letters,
    polled until the count stops growing for `settle_s` or reaches everything sent. Heartbeats
    without a timeout (all of the simulator's: ~10 % of events) write no row of their own, so the
    count, and the rate from it, stays that much below what was processed."""
    last, changed_at = -1, time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            (count,) = conn.execute(
                "SELECT (SELECT count(DISTINCT (source_id, event_id)) FROM readings) + (SELECT count(*) FROM dead_letters)"
            ).fetchone()
            if count != last:
                last, changed_at = count, time.monotonic()
                print(f"bench e2e: processed {count:,} of {sent:,}", file=sys.stderr)
            if count >= sent or time.monotonic() - changed_at > settle_s:
                return count, changed_at
            time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1k events/s for 30 s instead of 20k/s for 60 s")
    parser.add_argument("--rate", type=float, help="events/s the simulator writes (default 20000)")
    parser.add_argument("--seconds", type=float, help="seconds of generation (default 60)")
    args = parser.parse_args(argv)
    result = run(args.quick, args.rate, args.seconds)
    RESULTS.mkdir(exist_ok=True)
    result["measured_at"] = utc_stamp()
    (RESULTS / "e2e.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
