"""`make run`: the platform on this machine. Starts the real services (for now the Kafka-protocol
broker with every topic), runs the fleet simulator into it with progress lines, and stops
everything cleanly on Ctrl-C, SIGTERM or the end of --duration.

    python -m devstack.run --duration 60 --rate 200
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from typing import Protocol

from contracts.topics import ALL_TOPICS
from devstack.broker import Broker

log = logging.getLogger("devstack.run")


class Service(Protocol):
    """One local service: started in order, stopped in reverse."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


class BrokerService:
    name = "broker"

    def __init__(self, partitions: int = 3):
        self.partitions = partitions
        self.broker = Broker()

    def start(self) -> None:
        self.broker.start()
        self.broker.create_topics(ALL_TOPICS, partitions=self.partitions)
        log.info("broker ready", extra={"bootstrap": self.broker.bootstrap, "topics": list(ALL_TOPICS)})

    def stop(self) -> None:
        self.broker.stop()


class LocalPlatform:
    """Starts services in order and always stops the started ones in reverse, even when a later
    one fails to start. The end-to-end issue adds PostgreSQL, migrations, Flink jobs and the API."""

    def __init__(self, services: list[Service]):
        self.services = services
        self._started: list[Service] = []

    def __enter__(self) -> LocalPlatform:
        try:
            for service in self.services:
                log.info("starting", extra={"service": service.name})
                service.start()
                self._started.append(service)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        while self._started:
            service = self._started.pop()
            try:
                service.stop()
                log.info("stopped", extra={"service": service.name})
            except Exception:
                log.exception("stopping failed", extra={"service": service.name})


def build_parser() -> argparse.ArgumentParser:
    from generator.cli import add_run_arguments, add_simulation_arguments

    parser = argparse.ArgumentParser(
        prog="python -m devstack.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--partitions", type=int, default=3, help="partitions per topic (default 3)")
    add_simulation_arguments(parser)
    add_run_arguments(parser)
    parser.set_defaults(max_speed=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    from generator.cli import install_stop_handlers, make_simulator, run_simulation
    from generator.runner import setup_logging
    from generator.sinks import KafkaSink

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.partitions < 1:
        parser.error(f"--partitions must be >= 1, got {args.partitions}")
    setup_logging(args.log_level)
    try:
        simulator = make_simulator(args)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    stop = threading.Event()
    install_stop_handlers(stop)
    broker = BrokerService(args.partitions)
    with LocalPlatform([broker]):
        if stop.is_set():
            return 0
        sink = KafkaSink(broker.broker.bootstrap)
        stats = run_simulation(args, sink, stop, simulator)
    summary = stats.to_dict()
    log.info("summary", extra=summary)
    print(_table(summary), file=sys.stderr)
    return 1 if stats.errors else 0


def _table(summary: dict) -> str:
    lines = [f"{'topic':<28} {'events':>10}"]
    lines += [f"{topic:<28} {count:>10,}" for topic, count in summary["per_topic"].items()]
    lines.append(
        f"sent {summary['sent']:,} in {summary['elapsed_s']:.1f} s ({summary['rate_per_s']:,.1f}/s), "
        f"delivery errors {summary['errors']}" + (f" (last: {summary['last_error']})" if summary["last_error"] else "")
    )
    return "\n".join(lines) + ("\n" + json.dumps({"stopped_early": True}) if summary["stopped_early"] else "")


if __name__ == "__main__":
    sys.exit(main())
