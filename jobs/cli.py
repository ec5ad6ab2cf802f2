"""`python -m jobs <aggregates|alarms|inactivity|kpis|all> [options]`: run the stream jobs."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from contracts.kafka_auth import KafkaAuth
from contracts.thresholds import Thresholds
from contracts.topics import ALERTS_TOPIC, DEAD_LETTER_TOPIC, EVENT_TOPICS
from contracts.windows import TRIP_WINDOWS_S, parse_windows
from jobs import JOB_NAMES
from jobs.config import START_POSITIONS, JobConfig
from jobs.logs import setup_logging

log = logging.getLogger("jobs")


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float:
    """Seconds, or a Flink-style duration ("500ms", "30s", "2min") as the Helm chart passes it."""
    number, unit = text.strip(), "s"
    for suffix in sorted(_DURATION_UNITS, key=len, reverse=True):
        if number.endswith(suffix):
            number, unit = number.removesuffix(suffix).strip(), suffix
            break
    try:
        seconds = float(number) * _DURATION_UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds or a duration like 500ms, 30s, 2min; got {text!r}"
        ) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return seconds


def _checkpoint_uri(text: str) -> str:
    """A checkpoint location: a local path, or a URI of any filesystem Flink has a plugin for
    (file://, s3://, gs://, abfss://, hdfs://): JobManager and TaskManagers need no shared disk."""
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if not scheme.isalnum():
            raise argparse.ArgumentTypeError(f"not a URI: {text!r}")
        return text
    return Path(text).resolve().as_uri()


def _start_from(text: str) -> str:
    """group | earliest | latest | an ISO-8601 time or epoch milliseconds (backfill)."""
    if text in START_POSITIONS:
        return text
    if text.isdigit():
        return text
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {', '.join(START_POSITIONS)}, an ISO-8601 time or epoch milliseconds; got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return str(int(moment.timestamp() * 1000))


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated seconds, got {text!r}") from None
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"window sizes must be > 0, got {text!r}")
    return sizes


def _trip_windows(text: str) -> tuple[int, ...]:
    try:
        return parse_windows(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _topic_override(text: str) -> tuple[str, str]:
    family, sep, topic = text.partition("=")
    if not sep or family not in EVENT_TOPICS or not topic:
        raise argparse.ArgumentTypeError(f"expected FAMILY=TOPIC with FAMILY in {', '.join(EVENT_TOPICS)}")
    return family, topic


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs", description=__doc__)
    p.add_argument("job", choices=[*JOB_NAMES, "all"], help="pipeline to run; 'all' runs every one in one job")
    p.add_argument("--bootstrap-servers", required=True, help="Kafka bootstrap servers (sources and sinks)")
    p.add_argument("--group-id", default="fleet-monitor-jobs", help="Kafka consumer group of the sources")
    p.add_argument(
        "--start-from",
        type=_start_from,
        default="group",
        metavar="group|earliest|latest|TIME",
        help="where the sources start without a restore: the group's committed offsets (earliest for a new"
        " group; default), the topics' beginning or end, or an ISO-8601 time / epoch milliseconds (backfill)",
    )
    p.add_argument(
        "--bounded",
        action="store_true",
        help="read every topic up to its end offsets at start, then finish (tests, replays, benchmarks)",
    )
    p.add_argument(
        "--topic",
        action="append",
        type=_topic_override,
        default=[],
        metavar="FAMILY=TOPIC",
        help="override a family's topic (default from contracts.topics)",
    )
    p.add_argument("--alerts-topic", default=ALERTS_TOPIC, help="topic alarm records are written to, exactly once")
    p.add_argument("--dead-letter-topic", default=DEAD_LETTER_TOPIC, help="topic malformed and late events go to")
    p.add_argument(
        "--transactional-id-prefix",
        help="prefix of the sinks' Kafka transactional ids (default: the group id); unique per job",
    )
    p.add_argument("--thresholds", type=Path, help="thresholds YAML (contracts.thresholds.Thresholds.load)")
    p.add_argument(
        "--checkpoint-dir",
        type=_checkpoint_uri,
        help="checkpoint location: a path or a URI such as s3://bucket/fleet (default: a temporary directory)",
    )
    p.add_argument(
        "--checkpoint-interval",
        type=_duration,
        default=10.0,
        help="seconds or a duration like 30s (default 10); the sinks commit their Kafka transactions on it",
    )
    p.add_argument(
        "--restore",
        metavar="PATH|latest",
        help="restore from a checkpoint/savepoint path, or the latest checkpoint under a local --checkpoint-dir",
    )
    p.add_argument("--parallelism", type=_positive(int), default=1)
    p.add_argument("--window", type=_positive(int), default=60, help="aggregate window, seconds (default 60)")
    p.add_argument("--building-windows", type=_sizes, default=(300, 900), help="seconds, comma-separated")
    p.add_argument("--kpi-window", type=_positive(int), default=300, help="driving KPI window, seconds (default 300)")
    p.add_argument(
        "--trip-windows",
        type=_trip_windows,
        default=TRIP_WINDOWS_S,
        metavar="SECONDS[,SECONDS...]",
        help="windows trip metrics are written in, comma-separated seconds, each one of the sizes the API names"
        f" (contracts.windows; default {','.join(map(str, TRIP_WINDOWS_S))})",
    )
    p.add_argument("--out-of-orderness", type=float, default=5.0, help="watermark bound, seconds")
    p.add_argument("--allowed-lateness", type=float, default=0.0, help="extra seconds late events still count")
    p.add_argument(
        "--alarm-out-of-orderness",
        type=float,
        help="disorder the alarm rules wait for, seconds (default: the watermark bound). Shorter raises alarms"
        " sooner; a reading arriving later than that behind its family's newest skips the rules (it is still"
        " stored and aggregated)",
    )
    p.add_argument(
        "--idle-timeout",
        type=_positive(float),
        default=JobConfig.idle_timeout_s,
        help=f"seconds without input before a partition stops holding back the watermark (default {JobConfig.idle_timeout_s:g})",
    )
    p.add_argument(
        "--rest-port",
        type=_positive(int),
        help="REST API port of the local mini-cluster (default: Flink's choice); a cluster has its own rest.port",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def config_from(args: argparse.Namespace) -> JobConfig:
    from jobs.runner import latest_checkpoint

    if args.out_of_orderness < 0 or args.allowed_lateness < 0:
        raise ValueError("--out-of-orderness and --allowed-lateness must be >= 0")
    if args.alarm_out_of_orderness is not None and args.alarm_out_of_orderness < 0:
        raise ValueError("--alarm-out-of-orderness must be >= 0")
    checkpoint_dir = args.checkpoint_dir or Path(tempfile.mkdtemp(prefix="fleet-jobs-")).as_uri()
    restore = args.restore
    if restore == "latest":
        if not checkpoint_dir.startswith("file://"):
            raise ValueError("--restore latest needs a local --checkpoint-dir; give the checkpoint's URI instead")
        restore = latest_checkpoint(Path(checkpoint_dir.removeprefix("file://")))
        if restore is None:
            log.info("no checkpoint to restore from; starting fresh", extra={"checkpoint_dir": checkpoint_dir})
    if restore and args.bounded:
        # The connector's split enumerator, recreated from a checkpoint, never tells its readers that no
        # more splits come (FLINK-31006, open in 5.0.0-2.2): the sources read to their end and the job
        # then runs forever instead of finishing.
        raise ValueError(
            "--bounded cannot resume from a checkpoint: a restored bounded Kafka source never finishes"
            " (FLINK-31006); replay from the start without --restore"
        )
    return JobConfig(
        jobs=JOB_NAMES if args.job == "all" else (args.job,),
        bootstrap_servers=args.bootstrap_servers,
        checkpoint_dir=checkpoint_dir,
        group_id=args.group_id,
        topics={**EVENT_TOPICS, **dict(args.topic)},
        alerts_topic=args.alerts_topic,
        dead_letter_topic=args.dead_letter_topic,
        start_from=args.start_from,
        bounded=args.bounded,
        transactional_id_prefix=args.transactional_id_prefix,
        thresholds=Thresholds.load(args.thresholds),
        checkpoint_interval_s=args.checkpoint_interval,
        parallelism=args.parallelism,
        window_s=args.window,
        building_windows_s=args.building_windows,
        kpi_window_s=args.kpi_window,
        trip_windows_s=args.trip_windows,
        out_of_orderness_s=args.out_of_orderness,
        allowed_lateness_s=args.allowed_lateness,
        alarm_out_of_orderness_s=args.alarm_out_of_orderness,
        idle_timeout_s=args.idle_timeout,
        restore_from=restore,
        rest_port=args.rest_port,
        kafka_auth=KafkaAuth.from_env(),
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        config = config_from(args)
    except (ValueError, OSError) as exc:
        print(f"python -m jobs: error: {exc}", file=sys.stderr)
        return 2
    from jobs.runner import run

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    status = run(config, stop)
    return 0 if status in ("FINISHED", "CANCELED") else 1
