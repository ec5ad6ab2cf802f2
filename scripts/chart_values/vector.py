"""Values of charts/vector (scripts/chart-schemas.py writes its values.schema.json and README.md)."""

# ruff: noqa: N815  (the keys are the charts' values keys, camelCase as Helm's convention)

from __future__ import annotations

from typing import Annotated, Literal, Required

from pydantic import Field, with_config
from typing_extensions import TypedDict

from chart_values.common import (
    STRICT,
    Component,
    KafkaAuth,
    NetworkPolicy,
    NonEmptyStr,
    Pdb,
    Persistence,
    PrometheusRule,
    Replicas,
    ServiceAccount,
)


@with_config(STRICT)
class Kafka(TypedDict, total=False):
    bootstrapServers: Required[NonEmptyStr]
    consumerGroup: NonEmptyStr
    auth: KafkaAuth


@with_config(STRICT)
class Database(TypedDict, total=False):
    existingSecret: Required[NonEmptyStr]
    """The timescaledb release's Secret of the writer role (fleet_writer)"""
    urlKey: NonEmptyStr


@with_config(STRICT)
class SinkBatch(TypedDict, total=False):
    maxEvents: Annotated[int, Field(ge=1)]
    timeoutSecs: Annotated[float, Field(gt=0)]


@with_config(STRICT)
class Sink(TypedDict, total=False):
    table: NonEmptyStr
    poolSize: Annotated[int, Field(ge=1)]
    batch: SinkBatch


@with_config(STRICT)
class Buffer(TypedDict, total=False):
    maxSizeBytes: Required[Annotated[int, Field(ge=268435488)]]
    """Vector's minimum disk buffer size"""


@with_config(STRICT)
class Metrics(TypedDict, total=False):
    prometheusRule: PrometheusRule


@with_config(STRICT)
class Values(Component, total=False):
    replicaCount: Required[Replicas]
    """Replicas share the Kafka consumer group"""
    serviceAccount: ServiceAccount
    networkPolicy: NetworkPolicy
    pdb: Pdb
    persistence: Required[Persistence]
    kafka: Kafka
    database: Database
    """Secret of the timescaledb release."""
    sink: Sink
    buffer: Buffer
    logLevel: Literal["trace", "debug", "info", "warn", "error"]
    alertsTopic: NonEmptyStr
    metrics: Metrics
