"""What a job run needs to know. `JobOptions` holds every tunable with its default and help, written
once: `jobs.cli.JobSettings` offers them as flags and JOBS_* variables, `JobConfig` (what the
pipelines read) adds what the command line resolves (topics, thresholds, checkpoint location)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_settings import NoDecode

from contracts.kafka_auth import KafkaAuth
from contracts.thresholds import Thresholds
from contracts.topics import ALERTS_TOPIC, DEAD_LETTER_TOPIC, EVENT_TOPICS, STORE_TOPICS
from contracts.windows import TRIP_WINDOWS_S, parse_windows

# Event families each job reads.
JOB_FAMILIES: dict[str, tuple[str, ...]] = {
    "aggregates": tuple(EVENT_TOPICS),
    "alarms": ("tire.reading", "vehicle.telemetry", "perception.event", "building.reading"),
    "inactivity": ("device.heartbeat",),
    "kpis": ("vehicle.telemetry", "driving.event", "trip"),
}
START_POSITIONS = ("group", "earliest", "latest")
"""Where the sources start without a restore: the consumer group's committed offsets (earliest
for a new group), the topics' beginning or end; or a timestamp (epoch milliseconds) for backfill."""

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}


def _duration(value: Any) -> float:
    """Seconds, or a Flink-style duration ("500ms", "30s", "2min") as the Helm chart passes it."""
    if isinstance(value, int | float):
        number, unit = str(value), "s"
    else:
        number, unit = str(value).strip(), "s"
        for suffix in sorted(_DURATION_UNITS, key=len, reverse=True):
            if number.endswith(suffix):
                number, unit = number.removesuffix(suffix).strip(), suffix
                break
    try:
        seconds = float(number) * _DURATION_UNITS[unit]
    except ValueError:
        raise ValueError(f"expected seconds or a duration like 500ms, 30s, 2min; got {value!r}") from None
    if seconds <= 0:
        raise ValueError(f"must be > 0, got {value!r}")
    return seconds


def _start_from(value: Any) -> str:
    """group | earliest | latest | an ISO-8601 time or epoch milliseconds (backfill)."""
    text = str(value)
    if text in START_POSITIONS or text.isdigit():
        return text
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"expected {', '.join(START_POSITIONS)}, an ISO-8601 time or epoch milliseconds; got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return str(int(moment.timestamp() * 1000))


def _sizes(value: Any) -> tuple[int, ...]:
    if not isinstance(value, str):
        return tuple(value)
    try:
        sizes = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise ValueError(f"expected comma-separated seconds, got {value!r}") from None
    if not sizes or min(sizes) <= 0:
        raise ValueError(f"window sizes must be > 0, got {value!r}")
    return sizes


def _trip_windows(value: Any) -> tuple[int, ...]:
    return parse_windows(value) if isinstance(value, str) else tuple(value)


Duration = Annotated[float, BeforeValidator(_duration)]
StartFrom = Annotated[str, BeforeValidator(_start_from)]
# NoDecode: the text reaches the validator as given ("300,900"), not as JSON.
Sizes = Annotated[tuple[int, ...], NoDecode, BeforeValidator(_sizes)]
TripWindows = Annotated[tuple[int, ...], NoDecode, BeforeValidator(_trip_windows)]


class JobOptions(BaseModel):
    """The tunables of a job run. A field's alias is its flag (`--window`) and variable (JOBS_WINDOW)."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    group_id: str = Field("fleet-monitor-jobs", description="Kafka consumer group of the sources")
    alerts_topic: str = Field(ALERTS_TOPIC, description="topic alarm records are written to, exactly once")
    dead_letter_topic: str = Field(DEAD_LETTER_TOPIC, description="topic malformed and late events go to")
    start_from: StartFrom = Field(
        "group",
        description="where the sources start without a restore: group (the group's committed offsets, earliest"
        " for a new group), earliest, latest, or an ISO-8601 time / epoch milliseconds (backfill)",
    )
    bounded: bool = Field(
        False, description="read every topic up to its end offsets at start, then finish (tests, replays, benchmarks)"
    )
    transactional_id_prefix: str | None = Field(
        None, description="prefix of the sinks' Kafka transactional ids (unset: the group id); unique per job"
    )
    checkpoint_interval_s: Duration = Field(
        1.0,
        alias="checkpoint_interval",
        description="seconds or a Flink duration like 30s; the sinks commit their Kafka transactions on each"
        " checkpoint, so what a job writes (alarms included) is visible to read_committed consumers at most this"
        " late. charts/flink-job's job.checkpointInterval must equal it (tests/unit/test_charts_config.py)",
    )
    parallelism: int = Field(1, gt=0, description="parallelism of every operator")
    window_s: int = Field(60, gt=0, alias="window", description="aggregate window, seconds")
    building_windows_s: Sizes = Field((300, 900), alias="building_windows", description="seconds, comma-separated")
    kpi_window_s: int = Field(300, gt=0, alias="kpi_window", description="driving KPI window, seconds")
    trip_windows_s: TripWindows = Field(
        TRIP_WINDOWS_S,
        alias="trip_windows",
        description="windows trip metrics are written in, comma-separated seconds, each one of the sizes the API"
        " names (contracts.windows)",
    )
    out_of_orderness_s: float = Field(5.0, alias="out_of_orderness", description="watermark bound, seconds")
    allowed_lateness_s: float = Field(
        0.0, alias="allowed_lateness", description="extra seconds late events still count"
    )
    alarm_out_of_orderness_s: float | None = Field(
        None,
        alias="alarm_out_of_orderness",
        description="disorder the alarm rules wait for, seconds (unset: the watermark bound). Shorter raises"
        " alarms sooner; a reading arriving later than that behind its family's newest skips the rules (it is"
        " still stored and aggregated)",
    )
    """Alarms come out that long after their reading instead of after the watermark. The bound is
    counted per partition, as the watermark is (jobs.tables.shifted_clock): a reading that far behind
    the newest of its own partition skips the rules (Flink counts it in the alarm operator's
    numLateRecordsDropped) but is still stored, aggregated and checked against the watermark like any
    other; a partition that resumes behind the others (after an outage, a restore) holds the alarms back."""
    idle_timeout_s: float = Field(
        30.0,
        gt=0,
        alias="idle_timeout",
        description="seconds without input before a partition stops holding back the watermark",
    )
    """A partition without input holds back the watermark of every operator it feeds until marked
    idle. Idleness is measured in the source task's time, so a short timeout also fires on a
    partition whose records are fetched but not yet emitted (a backlog at start or after a
    restore): at 1 s, `make run` turned 1,372 of its first 5,465 events late, at 30 s none.
    Too short the other way: a partition idle during a broker outage that resumes after the others
    has its first events late, so it must exceed a partition's quiet gap plus the longest outage
    (a replicated topic fails over in seconds; the single local broker restarts in ~22 s)."""
    rest_port: int | None = Field(
        None,
        gt=0,
        description="REST API port of the local mini-cluster (unset: Flink's choice): job status, per-operator"
        " record counts; a cluster has its own rest.port",
    )


class JobConfig(JobOptions):
    """JobOptions plus what the command line resolves."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    jobs: tuple[str, ...]
    bootstrap_servers: str
    checkpoint_dir: str
    """A URI Flink's filesystems understand: file:///..., s3://bucket/path, ..."""
    topics: dict[str, str] = Field(default_factory=lambda: dict(EVENT_TOPICS))
    store_topics: dict[str, str] = Field(default_factory=lambda: dict(STORE_TOPICS))
    thresholds: Thresholds = Field(default_factory=Thresholds)
    restore_from: str | None = None
    metrics_port: str = "9249-9299"
    kafka_auth: KafkaAuth = Field(default_factory=KafkaAuth)
    """SASL/TLS of the sources and sinks (KAFKA_* of the process that builds the job)."""

    @property
    def families(self) -> tuple[str, ...]:
        wanted = {family for job in self.jobs for family in JOB_FAMILIES[job]}
        return tuple(family for family in EVENT_TOPICS if family in wanted)

    @property
    def transactional_prefix(self) -> str:
        return self.transactional_id_prefix or self.group_id

    @property
    def watermark_delay_s(self) -> float:
        # Allowed lateness is realised as extra watermark delay: every window result is then
        # emitted once and final, which keeps the outputs append-only and their upserts idempotent.
        return self.out_of_orderness_s + self.allowed_lateness_s

    @property
    def alarm_delay_s(self) -> float:
        if self.alarm_out_of_orderness_s is None:
            return self.watermark_delay_s
        return min(self.alarm_out_of_orderness_s, self.watermark_delay_s)


def checkpoint_uri(value: Any) -> str:
    """A checkpoint location: a local path, or a URI of any filesystem Flink has a plugin for
    (file://, s3://, gs://, abfss://, hdfs://): JobManager and TaskManagers need no shared disk."""
    text = str(value)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if not scheme.isalnum():
            raise ValueError(f"not a URI: {text!r}")
        return text
    return Path(text).resolve().as_uri()
