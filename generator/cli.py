"""fleet-generator: simulate a fleet (vehicles, building sensors, heartbeat devices) or replay a
trip file, into Kafka, rolled JSON-lines files or stdout.

examples:
  fleet-generator --count 20 --seed 7 --start 2026-01-01T00:00:00Z          # to stdout
  fleet-generator --output kafka --bootstrap 127.0.0.1:9092 --rate 1000 --duration 60
  fleet-generator --output files --out-dir /tmp/events --max-speed --count 100000 \\
      --expectations-out /tmp/expected.json
  fleet-generator --replay trips.csv --speedup 60 --output kafka --bootstrap 127.0.0.1:9092
  fleet-generator --replay seed-004.json --map fare_usd=fare --source-id taxi-1 --max-speed

Every option is also read from the environment (GENERATOR_<OPTION>, e.g. GENERATOR_RATE=200); a
flag wins over the variable. Kafka SASL/TLS comes from KAFKA_* (contracts.kafka_auth).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode

from contracts.kafka_auth import KafkaAuth, KafkaAuthError
from contracts.settings import cli_config, parse, usage_error
from contracts.thresholds import Thresholds
from generator.config import SimConfig
from generator.pipeline import PipelinedSimulator
from generator.replay import ALIASES, DEFAULT_SOURCE_ID, FIELDS, ColumnMap, ReplayError, TripReplay
from generator.runner import Metrics, RunStats, run, setup_logging
from generator.simulator import Simulator
from generator.sinks import JsonlFileSink, KafkaSink, StdoutSink

log = logging.getLogger("generator")


# ---------------------------------------------------------------------------- the settings


def _pairs(value: Any) -> dict[str, str]:
    """KEY=VALUE pairs. A repeated flag reaches here comma-joined, so a part without '=' continues
    the value before it (librdkafka lists such as debug=broker,topic keep their commas)."""
    if isinstance(value, dict):
        return value
    pairs: dict[str, str] = {}
    last = None
    for part in str(value).split(","):
        key, sep, item = part.partition("=")
        if sep and key.strip():
            last = key.strip()
            pairs[last] = item.strip()
        elif last is not None and part.strip():
            pairs[last] += "," + part.strip()
        elif part.strip():
            raise ValueError(f"expected KEY=VALUE, got {part!r}")
    return pairs


Pairs = Annotated[dict[str, str], NoDecode, BeforeValidator(_pairs)]


class RunOptions(SimConfig):
    """The simulation and how a run is observed: the options devstack.run offers too. The thresholds
    are a file here (the simulation reads them once loaded)."""

    thresholds: Path | None = Field(None, description="thresholds YAML/JSON (contracts.thresholds format)")
    validate_events: bool = Field(
        False, alias="validate", description="build and validate every event with its contract model (slow)"
    )
    pipeline: bool = Field(False, description="generate in a child process (high rates; same output)")
    metrics_address: str = Field("0.0.0.0", description="address --metrics-port binds (0.0.0.0, so probes reach it)")
    metrics_port: Annotated[int, Field(ge=0, le=65535)] | None = Field(
        None, description="serve Prometheus metrics on this port"
    )
    progress_interval: Annotated[float, Field(gt=0.0)] = Field(5.0, description="seconds between progress lines")
    expectations_out: Path | None = Field(None, description="write what the scenarios promise (JSON) at the end")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class GeneratorSettings(BaseSettings, RunOptions):
    """The command line (and GENERATOR_* environment) of fleet-generator."""

    model_config = cli_config("GENERATOR_", "fleet-generator")

    max_speed: bool = Field(False, description="send as fast as possible; the clock still uses --rate")
    output: Literal["stdout", "kafka", "files"] = Field("stdout", description="where events go")
    bootstrap: str | None = Field(None, description="Kafka bootstrap servers (with --output kafka)")
    producer_config: Pairs = Field(default_factory=dict, description="extra librdkafka KEY=VALUE (repeatable)")
    out_dir: Path | None = Field(None, description="directory for --output files (one folder per topic)")
    roll_lines: Annotated[int, Field(ge=1)] = Field(100_000, description="lines per file")
    roll_seconds: Annotated[float, Field(gt=0.0)] = Field(1.0, description="roll files at least this often, seconds")
    replay: Path | None = Field(
        None, description="replay trips from a .csv, .jsonl or .json file instead of simulating"
    )
    speedup: Annotated[float, Field(gt=0.0)] = Field(1.0, description="replay speed factor (1 = recorded speed)")
    map: Pairs = Field(
        default_factory=dict,
        description="COLUMN=FIELD: read the file's COLUMN as the trip FIELD (repeatable; built in: "
        + ", ".join(f"{column}={field}" for column, field in ALIASES.items())
        + "); FIELD one of "
        + ", ".join(FIELDS),
    )
    source_id: str = Field(DEFAULT_SOURCE_ID, description="source_id of replayed rows that name none")


def parse_settings(argv: list[str] | None = None) -> GeneratorSettings:
    """The settings of `argv`; exits with status 2 naming the bad flag."""
    return parse(GeneratorSettings, argv, __doc__)


def sim_config(options: RunOptions) -> SimConfig:
    """The simulation part of a program's settings, its thresholds file loaded."""
    values = {name: getattr(options, name) for name in SimConfig.model_fields}
    return SimConfig(**{**values, "thresholds": Thresholds.load(options.thresholds)})


def install_stop_handlers(stop: threading.Event) -> None:
    """Ctrl-C and SIGTERM ask the run loop to stop; it then flushes the sink and reports."""

    def handler(signum, _frame):
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def make_simulator(options: RunOptions) -> Simulator | PipelinedSimulator:
    """Raises ValueError when the thresholds file is bad."""
    config = sim_config(options)
    if options.pipeline:
        return PipelinedSimulator(config, options.validate_events)
    return Simulator(config, validate=options.validate_events)


def run_simulation(args: GeneratorSettings, sink, stop: threading.Event, source) -> RunStats:
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


def _sink(args: GeneratorSettings):
    """Raises ValueError naming what --output needs."""
    if args.output == "kafka":
        if not args.bootstrap:
            raise ValueError("--output kafka needs --bootstrap HOST:PORT")
        auth = KafkaAuth.from_env()  # SASL/TLS from KAFKA_* (contracts.kafka_auth); --producer-config wins
        return KafkaSink(args.bootstrap, {**auth.librdkafka(), **args.producer_config})
    if args.output == "files":
        if not args.out_dir:
            raise ValueError("--output files needs --out-dir DIR")
        return JsonlFileSink(args.out_dir, args.roll_lines, args.roll_seconds)
    return StdoutSink()


def _replay(args: GeneratorSettings) -> TripReplay:
    columns = ColumnMap(args.map)
    start = args.start if "start" in args.model_fields_set else None  # unset: the recorded times
    return TripReplay(args.replay, args.speedup, start, args.fleet_id, source_id=args.source_id, columns=columns)


def main(argv: list[str] | None = None) -> int:
    args = parse_settings(argv)
    setup_logging(args.log_level)
    try:
        source = _replay(args) if args.replay else make_simulator(args)
        sink = _sink(args)
    except (ReplayError, KafkaAuthError, ValueError, OSError) as exc:
        usage_error(GeneratorSettings, str(exc))
    stop = threading.Event()
    install_stop_handlers(stop)
    try:
        stats = run_simulation(args, sink, stop, source)
    except BrokenPipeError:
        return 0  # stdout reader went away (e.g. `| head`)
    log.info("summary", extra=stats.to_dict())
    return 1 if stats.errors else 0
