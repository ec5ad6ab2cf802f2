"""What a job run needs to know, gathered from the command line (jobs.cli)."""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.kafka_auth import KafkaAuth
from contracts.thresholds import Thresholds
from contracts.topics import ALERTS_TOPIC, DEAD_LETTER_TOPIC, EVENT_TOPICS, STORE_TOPICS
from contracts.windows import TRIP_WINDOWS_S

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


@dataclass
class JobConfig:
    jobs: tuple[str, ...]
    bootstrap_servers: str
    checkpoint_dir: str
    """A URI Flink's filesystems understand: file:///..., s3://bucket/path, ..."""
    group_id: str = "fleet-monitor-jobs"
    topics: dict[str, str] = field(default_factory=lambda: dict(EVENT_TOPICS))
    alerts_topic: str = ALERTS_TOPIC
    dead_letter_topic: str = DEAD_LETTER_TOPIC
    store_topics: dict[str, str] = field(default_factory=lambda: dict(STORE_TOPICS))
    start_from: str = "group"
    """One of START_POSITIONS, or epoch milliseconds."""
    bounded: bool = False
    """Read each topic up to its end offsets at start, then finish (tests, replays, benchmarks)."""
    transactional_id_prefix: str | None = None
    """Prefix of the sinks' Kafka transactional ids (default: the group id); unique per job."""
    thresholds: Thresholds = field(default_factory=Thresholds)
    checkpoint_interval_s: float = 10.0
    parallelism: int = 1
    window_s: int = 60
    building_windows_s: tuple[int, ...] = (300, 900)
    kpi_window_s: int = 300
    """The driving KPIs' window."""
    trip_windows_s: tuple[int, ...] = TRIP_WINDOWS_S
    """The windows trip metrics are written in, each one of contracts.windows.WINDOWS."""
    out_of_orderness_s: float = 5.0
    allowed_lateness_s: float = 0.0
    alarm_out_of_orderness_s: float | None = None
    """Disorder the alarm rules wait for (None: the watermark delay). Alarms come out that long after
    their reading instead of after the watermark. The bound is counted per partition, as the
    watermark is (jobs.tables.shifted_clock): a reading that far behind the newest of its own
    partition skips the rules (Flink counts it in the alarm operator's numLateRecordsDropped) but
    is still stored, aggregated and checked against the watermark like any other; a partition
    that resumes behind the others (after an outage, a restore) holds the alarms back instead."""
    idle_timeout_s: float = 30.0
    """A partition without input holds back the watermark of every operator it feeds until marked
    idle. Idleness is measured in the source task's time, so a short timeout also fires on a
    partition whose records are fetched but not yet emitted (a backlog at start or after a
    restore): at 1 s, `make run` turned 1,372 of its first 5,465 events late, at 30 s none.
    Too short the other way: a partition idle during a broker outage that resumes after the others
    has its first events late, so it must exceed a partition's quiet gap plus the longest outage
    (a replicated topic fails over in seconds; the single local broker restarts in ~22 s)."""
    restore_from: str | None = None
    metrics_port: str = "9249-9299"
    rest_port: int | None = None
    """The Flink REST API's port of the local mini-cluster (job status, per-operator record counts)."""
    kafka_auth: KafkaAuth = field(default_factory=KafkaAuth)
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
