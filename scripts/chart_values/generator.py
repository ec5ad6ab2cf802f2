"""Values of charts/generator (scripts/chart-schemas.py writes its values.schema.json and README.md)."""

# ruff: noqa: N815  (the keys are the charts' values keys, camelCase as Helm's convention)

from __future__ import annotations

from typing import Annotated, Required

from pydantic import Field, with_config
from typing_extensions import TypedDict

from chart_values.common import STRICT, Component, KafkaAuth, NetworkPolicy, NonEmptyStr, Pdb, Replicas, ServiceAccount


@with_config(STRICT)
class Kafka(TypedDict, total=False):
    bootstrapServers: Required[NonEmptyStr]
    consumerGroup: NonEmptyStr
    auth: KafkaAuth


@with_config(STRICT)
class Simulation(TypedDict, total=False):
    rate: Required[Annotated[float, Field(gt=0)]]
    """Events per second"""
    vehicles: Required[Annotated[int, Field(ge=1)]]
    extraArgs: list[str]


@with_config(STRICT)
class Values(Component, total=False):
    replicaCount: Required[Replicas]
    serviceAccount: ServiceAccount
    networkPolicy: NetworkPolicy
    pdb: Pdb
    kafka: Kafka
    simulation: Simulation
