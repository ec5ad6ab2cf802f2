"""Values of charts/flink-job (scripts/chart-schemas.py writes its values.schema.json and README.md)."""

# ruff: noqa: N815  (the keys are the charts' values keys, camelCase as Helm's convention)

from __future__ import annotations

from typing import Annotated, Literal, Required

from pydantic import Field, with_config
from typing_extensions import TypedDict

from chart_values.common import (
    STRICT,
    AnnotatedServiceAccount,
    Component,
    KafkaAuth,
    NetworkPolicy,
    NonEmptyStr,
    Object,
    Objects,
    Pdb,
    Persistence,
    PrometheusRule,
    Replicas,
    Resources,
)


@with_config(STRICT)
class Job(TypedDict, total=False):
    name: Required[Literal["aggregates", "alarms", "inactivity", "kpis"]]
    """The stream job this release runs (jobs/)."""
    parallelism: Required[Annotated[int, Field(ge=1)]]
    checkpointInterval: Required[Annotated[str, Field(pattern=r"^[0-9]+ ?(ms|s|min|h)$")]]
    """Flink duration. The sinks commit their Kafka transactions on each checkpoint, so what a job writes (alarms included) becomes visible to read_committed consumers at most this late."""
    upgradeMode: Literal["savepoint", "last-state", "stateless"]
    """Read by the operator: savepoint | last-state | stateless"""
    initialSavepointPath: str
    """Set by the operator to restore from a savepoint"""
    allowNonRestoredState: bool
    alarmOutOfOrderness: Annotated[float, Field(ge=0)] | Annotated[str, Field(pattern=r"^([0-9]+(\.[0-9]+)?)?$")]
    """Seconds the alarm rules wait for disorder; empty = the watermark bound"""
    tripWindows: Annotated[str, Field(pattern=r"^(60|300|900|3600|86400)(,(60|300|900|3600|86400))*$")]
    """Seconds of the trip metric windows (kpis job), comma-separated, each one of contracts.windows.WINDOWS"""
    extraArgs: list[str]


@with_config(STRICT)
class Kafka(TypedDict, total=False):
    bootstrapServers: Required[NonEmptyStr]
    consumerGroup: str
    """Consumer group and transactional-id prefix of the job; empty = the release's full name"""
    auth: KafkaAuth


@with_config(STRICT)
class JobManager(TypedDict, total=False):
    resources: Required[Resources]
    javaOpts: str
    """JVM options of the JobManager alone (Flink's env.java.opts.jobmanager). It plans the job once, at start (the table planner, cold code), then only coordinates: the quick JIT tier alone plans it sooner. TaskManagers keep the full JIT."""


@with_config(STRICT)
class CheckpointsS3(TypedDict, total=False):
    existingSecret: str
    """Secret with an access key for s3:// (MinIO, or S3 without a pod identity); empty = the pod's identity. Endpoint and path-style access go in flinkConfiguration (s3.endpoint, s3.path.style.access)."""
    accessKeyIdKey: NonEmptyStr
    secretAccessKeyKey: NonEmptyStr


@with_config(STRICT)
class Checkpoints(TypedDict, total=False):
    uri: Annotated[str, Field(pattern=r"^([a-z][a-z0-9+.-]*://.+)?$")]
    """Checkpoint/savepoint/HA storage URI (s3://bucket/prefix, gs://, abfss://, hdfs://, file://); empty = the volume under persistence"""
    s3: CheckpointsS3


@with_config(STRICT)
class HighAvailability(TypedDict, total=False):
    enabled: Required[bool]


@with_config(STRICT)
class Rest(TypedDict, total=False):
    serviceType: Literal["ClusterIP", "NodePort", "LoadBalancer"]


@with_config(STRICT)
class Metrics(TypedDict, total=False):
    prometheusRule: PrometheusRule


@with_config(STRICT)
class Values(Component, total=False):
    replicaCount: Required[Replicas]
    """TaskManagers: replicaCount and resources are the operator's common keys."""
    serviceAccount: AnnotatedServiceAccount
    networkPolicy: NetworkPolicy
    pdb: Pdb
    job: Job
    kafka: Kafka
    """The jobs read and write Kafka only (exactly once: Kafka transactions committed on checkpoints); the loader (charts/loader) moves what they commit into the database."""
    taskSlots: Annotated[int, Field(ge=1)]
    jobManager: JobManager
    stateBackend: Literal["rocksdb", "hashmap"]
    checkpoints: Checkpoints
    """Checkpoints, savepoints and HA metadata: JobManager and TaskManagers all write them, so they belong on object storage, which needs no shared disk: checkpoints.uri, e.g. s3://bucket/flink (the release's name is appended, so the jobs of one environment can share a bucket prefix)."""
    persistence: Required[Persistence]
    """Volume for checkpoints when checkpoints.uri is empty (the operator's `persistence.size` key); ReadWriteOnce pins the release to one node."""
    highAvailability: HighAvailability
    rest: Rest
    flinkConfiguration: Object
    """Extra config.yaml entries; they win over the chart's"""
    logLevel: Literal["DEBUG", "INFO", "WARN", "ERROR"]
    extraEnv: Objects
    thresholds: Object
    """The contracts.thresholds.Thresholds document (validated by the chart tests)"""
    metrics: Metrics
    kafkaJobsGroupPrefix: NonEmptyStr
    """Generated from contracts/kafka_auth.py: with kafka.auth, the consumer group must start with it"""
