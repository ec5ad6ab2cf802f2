"""Values of charts/loader (scripts/chart-schemas.py writes its values.schema.json and README.md)."""

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
    Object,
    Objects,
    Pdb,
    PrometheusRule,
    Replicas,
    ServiceAccount,
)


@with_config(STRICT)
class EgressPeers(TypedDict, total=False):
    port: Required[Annotated[int, Field(ge=1, le=65535)]]
    to: Required[list[Object]]
    """NetworkPolicyPeers"""


@with_config(STRICT)
class NetworkPolicyEgress(TypedDict, total=False):
    enabled: bool
    """Restrict the pods' egress to DNS, Kafka, the database and extraEgress."""
    kafka: EgressPeers
    """The brokers: their port and peers."""
    database: EgressPeers
    """The database: its port and peers."""
    extraEgress: list[Object]
    """NetworkPolicyEgressRules"""


@with_config(STRICT)
class EgressNetworkPolicy(NetworkPolicy, total=False):
    egress: NetworkPolicyEgress
    """Egress only to DNS, the Kafka brokers and the database (pods of this namespace by label); a broker or database elsewhere needs its peers here (NetworkPolicyPeer lists) or in extraEgress."""


@with_config(STRICT)
class Kafka(TypedDict, total=False):
    bootstrapServers: Required[NonEmptyStr]
    consumerGroup: Required[NonEmptyStr]
    """Consumer group and the key of its offsets in the database (loader_offsets)"""
    auth: KafkaAuth


@with_config(STRICT)
class Database(TypedDict, total=False):
    existingSecret: Required[NonEmptyStr]
    """The timescaledb release's Secret of the writer role (fleet_writer)"""
    urlKey: Required[NonEmptyStr]


@with_config(STRICT)
class Metrics(TypedDict, total=False):
    port: Required[Annotated[int, Field(ge=1, le=65535)]]
    """Prometheus metrics (fleet_loader_*) at /metrics; the probes use it too"""
    prometheusRule: PrometheusRule


@with_config(STRICT)
class Values(Component, total=False):
    replicaCount: Required[Replicas]
    """Replicas share the consumer group (the partitions are split between them); the upserts absorb the batch a rebalance can replay. One keeps up with the reference load."""
    serviceAccount: ServiceAccount
    networkPolicy: EgressNetworkPolicy
    pdb: Pdb
    kafka: Required[Kafka]
    database: Required[Database]
    """Secret of the timescaledb release."""
    batchSize: Annotated[int, Field(ge=1)]
    """Records per database transaction at most"""
    logLevel: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    extraArgs: list[str]
    extraEnv: Objects
    metrics: Required[Metrics]
