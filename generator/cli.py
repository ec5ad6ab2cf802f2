"""fleet-generator: simulate a fleet (vehicles, building sensors, heartbeat devices) or replay a
trip file, into Kafka, rolled JSON-lines files or stdout.

examples:
  fleet-generator --count 20 --seed 7 --start 2026-01-01T00:00:00Z          # to stdout
  fleet-generator --output kafka --bootstrap 127.0.0.1:9092 --rate 1000 --duration 60
  fleet-generator --output files --out-dir /tmp/events --max-speed --count 100000 \\
      --expectations-out /tmp/expected.json
  fleet-generator --replay trips.csv --speedup 60 --output kafka --bootstrap 127.0.0.1:9092
  fleet-generator --replay seed-004.json --map fare_usd=fare --source-id taxi-1 --max-speed
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from datetime import datetime
from pathlib import Path

from contracts.kafka_auth import KafkaAuth, KafkaAuthError
from contracts.thresholds import Thresholds
from generator.config import FAMILIES, SCENARIOS, SimConfig, now_utc_ms, parse_families, parse_scenarios
from generator.pipeline import PipelinedSimulator
from generator.replay import ALIASES, DEFAULT_SOURCE_ID, FIELDS, ColumnMap, ReplayError, TripReplay
from generator.runner import Metrics, RunStats, run, setup_logging
from generator.simulator import Simulator
from generator.sinks import JsonlFileSink, KafkaSink, StdoutSink

log = logging.getLogger("generator")


# ---------------------------------------------------------------------------- argument types


def _number(kind, low=None, high=None, low_open=False):
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a{'n integer' if kind is int else ' number'}, got {text!r}"
            ) from None
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low}, got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {text}")
        return value

    return convert


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time like 2026-01-01T00:00:00Z, got {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"time needs a timezone (e.g. a trailing Z), got {text!r}")
    return value


def _listed(parse):
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


SHARE = _number(float, 0.0, 1.0)
COUNT = _number(int, 0)
POSITIVE = _number(float, 0.0, low_open=True)


# ---------------------------------------------------------------------------- the parser


def add_simulation_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulator's options (also offered by `python -m devstack.run`)."""
    fleet = parser.add_argument_group("fleet")
    fleet.add_argument("--vehicles", type=COUNT, default=10, help="vehicles (default 10)")
    fleet.add_argument("--sites", type=COUNT, default=2, help="building sites (default 2)")
    fleet.add_argument("--zones", type=COUNT, default=3, help="zones per site (default 3)")
    fleet.add_argument("--devices-per-zone", type=COUNT, default=2, help="building sensors per zone (default 2)")
    fleet.add_argument("--heartbeat-devices", type=COUNT, default=10, help="heartbeat devices (default 10)")
    fleet.add_argument(
        "--legacy-heartbeat-share",
        type=SHARE,
        default=0.3,
        help='share of heartbeat devices sending the legacy {"event-id","device-id","time"} form (default 0.3)',
    )
    fleet.add_argument(
        "--families",
        type=_listed(parse_families),
        default=FAMILIES,
        help=f"comma-separated event families or 'all' (default all): {', '.join(FAMILIES)}",
    )
    fleet.add_argument("--fleet-id", default="default", help="fleet_id on every event (default 'default')")

    clock = parser.add_argument_group("rate and clock")
    clock.add_argument("--rate", type=POSITIVE, default=5.0, help="events per second, simulated and paced (default 5)")
    clock.add_argument("--max-speed", action="store_true", help="send as fast as possible; the clock still uses --rate")
    clock.add_argument("--count", type=COUNT, help="stop after this many events")
    clock.add_argument(
        "--duration", type=POSITIVE, help="stop after this many simulated seconds (default: run until Ctrl-C)"
    )
    clock.add_argument("--seed", type=_number(int), default=0, help="random seed: same seed and --start, same bytes")
    clock.add_argument("--start", type=_timestamp, help="simulated start time, ISO 8601 with zone (default now, UTC)")

    scenarios = parser.add_argument_group("scenarios")
    scenarios.add_argument(
        "--scenarios",
        type=_listed(parse_scenarios),
        default=SCENARIOS,
        help=f"comma-separated scenarios, 'all' (default) or 'none': {', '.join(SCENARIOS)}",
    )
    scenarios.add_argument(
        "--scenario-start-round", type=COUNT, default=5, help="normal rounds before the first scenario"
    )
    scenarios.add_argument("--scenario-period", type=COUNT, default=0, help="repeat scenarios every N rounds (0: once)")
    scenarios.add_argument("--silence", type=POSITIVE, help="seconds the silent device is quiet (default 2x timeout)")
    scenarios.add_argument("--malformed-share", type=SHARE, default=0.01, help="share of malformed events (0.01)")
    scenarios.add_argument("--late-share", type=SHARE, default=0.005, help="share of late events (0.005)")
    scenarios.add_argument("--lateness", type=POSITIVE, default=120.0, help="how late late events are, s (120)")
    scenarios.add_argument("--out-of-order-share", type=SHARE, default=0.02, help="share of out-of-order events (0.02)")
    scenarios.add_argument("--jitter", type=POSITIVE, default=3.0, help="out-of-order jitter, s (3)")
    scenarios.add_argument("--thresholds", type=Path, help="thresholds YAML/JSON (contracts.thresholds format)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Observability options shared with devstack.run."""
    parser.add_argument(
        "--validate", action="store_true", help="build and validate every event with its contract model (slow)"
    )
    parser.add_argument("--pipeline", action="store_true", help="generate in a child process (high rates; same output)")
    parser.add_argument(
        "--metrics-address", default="0.0.0.0", help="address --metrics-port binds (0.0.0.0, so probes can reach it)"
    )
    parser.add_argument("--metrics-port", type=_number(int, 0, 65535), help="serve Prometheus metrics on this port")
    parser.add_argument("--progress-interval", type=POSITIVE, default=5.0, help="seconds between progress lines (5)")
    parser.add_argument("--expectations-out", type=Path, help="write what the scenarios promise (JSON) at the end")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleet-generator", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_simulation_arguments(parser)
    output = parser.add_argument_group("output")
    output.add_argument("--output", choices=["stdout", "kafka", "files"], default="stdout", help="where events go")
    output.add_argument("--bootstrap", help="Kafka bootstrap servers (with --output kafka)")
    output.add_argument("--producer-config", type=_key_value, action="append", default=[], help="extra KEY=VALUE")
    output.add_argument("--out-dir", type=Path, help="directory for --output files (one folder per topic)")
    output.add_argument("--roll-lines", type=_number(int, 1), default=100_000, help="lines per file (100000)")
    output.add_argument("--roll-seconds", type=POSITIVE, default=1.0, help="roll files at least this often, s (1)")
    replay = parser.add_argument_group("replay")
    replay.add_argument(
        "--replay", type=Path, help="replay trips from a .csv, .jsonl or .json file instead of simulating"
    )
    replay.add_argument("--speedup", type=POSITIVE, default=1.0, help="replay speed factor (1 = recorded speed)")
    aliases = ", ".join(f"{column}={field}" for column, field in ALIASES.items())
    replay.add_argument(
        "--map",
        type=_key_value,
        action="append",
        default=[],
        metavar="COLUMN=FIELD",
        help=f"read the file's COLUMN as the trip FIELD (repeatable; built in: {aliases}); FIELD one of "
        + ", ".join(FIELDS),
    )
    replay.add_argument(
        "--source-id",
        default=DEFAULT_SOURCE_ID,
        help=f"source_id of replayed rows that name none (default {DEFAULT_SOURCE_ID})",
    )
    add_run_arguments(parser)
    return parser


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """Raises ValueError with a readable message when the combination makes no sense."""
    thresholds = Thresholds.load(args.thresholds) if args.thresholds else Thresholds()
    return SimConfig(
        vehicles=args.vehicles,
        sites=args.sites,
        zones=args.zones,
        devices_per_zone=args.devices_per_zone,
        heartbeat_devices=args.heartbeat_devices,
        legacy_heartbeat_share=args.legacy_heartbeat_share,
        families=args.families,
        rate=args.rate,
        start=args.start or now_utc_ms(),
        seed=args.seed,
        count=args.count,
        duration_s=args.duration,
        fleet_id=args.fleet_id,
        scenarios=args.scenarios,
        scenario_start_round=args.scenario_start_round,
        scenario_period_rounds=args.scenario_period,
        silence_s=args.silence,
        malformed_share=args.malformed_share,
        late_share=args.late_share,
        lateness_s=args.lateness,
        out_of_order_share=args.out_of_order_share,
        jitter_s=args.jitter,
        thresholds=thresholds,
    )


def install_stop_handlers(stop: threading.Event) -> None:
    """Ctrl-C and SIGTERM ask the run loop to stop; it then flushes the sink and reports."""

    def handler(signum, _frame):
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def make_simulator(args) -> Simulator | PipelinedSimulator:
    """Raises ValueError when the options make no sense together."""
    config = config_from_args(args)
    return PipelinedSimulator(config, args.validate) if args.pipeline else Simulator(config, validate=args.validate)


def run_simulation(args, sink, stop: threading.Event, source) -> RunStats:
    """Run `source` into `sink`, with metrics and progress; writes the expectations if asked."""
    config = getattr(source, "config", None)
    if config is not None and config.count is None and config.duration_s is None:
        log.info("running until stopped (Ctrl-C)", extra={"rate_per_s": source.config.rate})
    stats = RunStats()
    server = None
    if args.metrics_port is not None:
        server = Metrics(stats, source, sink).serve(args.metrics_port, args.metrics_address)
        log.info(
            "metrics served", extra={"address": args.metrics_address, "port": args.metrics_port, "path": "/metrics"}
        )
    try:
        run(source, sink, stop, paced=not args.max_speed, progress_interval_s=args.progress_interval, stats=stats)
    finally:
        if server is not None:
            server[0].shutdown()
    if args.expectations_out and hasattr(source, "expectations"):
        args.expectations_out.write_text(json.dumps(source.expectations().to_dict(), indent=2) + "\n")
        log.info("expectations written", extra={"path": str(args.expectations_out)})
    return stats


def _sink(args, parser: argparse.ArgumentParser):
    if args.output == "kafka":
        if not args.bootstrap:
            parser.error("--output kafka needs --bootstrap HOST:PORT")
        try:  # SASL/TLS from KAFKA_* (contracts.kafka_auth); --producer-config wins
            auth = KafkaAuth.from_env()
        except KafkaAuthError as exc:
            parser.error(str(exc))
        return KafkaSink(args.bootstrap, {**auth.librdkafka(), **dict(args.producer_config)})
    if args.output == "files":
        if not args.out_dir:
            parser.error("--output files needs --out-dir DIR")
        return JsonlFileSink(args.out_dir, args.roll_lines, args.roll_seconds)
    return StdoutSink()


def _replay(args) -> TripReplay:
    columns = ColumnMap(dict(args.map))
    return TripReplay(args.replay, args.speedup, args.start, args.fleet_id, source_id=args.source_id, columns=columns)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        source = _replay(args) if args.replay else make_simulator(args)
    except (ReplayError, ValueError, OSError) as exc:
        parser.error(str(exc))
    sink = _sink(args, parser)
    stop = threading.Event()
    install_stop_handlers(stop)
    try:
        stats = run_simulation(args, sink, stop, source)
    except BrokenPipeError:
        return 0  # stdout reader went away (e.g. `| head`)
    log.info("summary", extra=stats.to_dict())
    return 1 if stats.errors else 0
