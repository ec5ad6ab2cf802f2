"""Values of charts/grafana (scripts/chart-schemas.py writes its values.schema.json and README.md)."""

# ruff: noqa: N815  (the keys are the charts' values keys, camelCase as Helm's convention)

from __future__ import annotations

from typing import Annotated, Literal, Required

from pydantic import Field, with_config
from typing_extensions import TypedDict

from chart_values.common import (
    STRICT,
    Component,
    NetworkPolicy,
    NonEmptyStr,
    Object,
    Objects,
    Pdb,
    Persistence,
    Replicas,
    ServiceAccount,
)


@with_config(STRICT)
class Admin(TypedDict, total=False):
    user: NonEmptyStr
    existingSecret: str
    """Keys admin-user, admin-password; generated when empty"""


@with_config(STRICT)
class Database(TypedDict, total=False):
    existingSecret: Required[NonEmptyStr]


@with_config(STRICT)
class Datasource(TypedDict, total=False):
    uid: NonEmptyStr
    maxOpenConns: Annotated[int, Field(ge=1)]


@with_config(STRICT)
class Prometheus(TypedDict, total=False):
    uid: NonEmptyStr
    url: Annotated[str, Field(pattern=r"^https?://")]


@with_config(STRICT)
class Service(TypedDict, total=False):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"]


@with_config(STRICT)
class Values(Component, total=False):
    replicaCount: Required[Replicas]
    """One replica, enforced: Grafana keeps users, sessions and annotations in SQLite on a ReadWriteOnce volume, which a second pod can neither attach nor safely share (without the volume each pod would have its own users and sessions). Dashboards and datasources are provisioned from this chart, so a restart (Recreate) loses nothing; Grafana is not in the data path, and an external database only for a second replica is not worth its coupling."""
    serviceAccount: ServiceAccount
    networkPolicy: NetworkPolicy
    pdb: Pdb
    persistence: Required[Persistence]
    admin: Admin
    database: Database
    """The timescaledb release's Secret of the read-only role (fleet_grafana: SELECT only, read-only transactions, a statement timeout): host port username password database sslmode sslrootcert. The datasource connects with its sslmode, so it follows the database's TLS setting (tls.enabled, tls.ca for verify-full) as the other clients' database-url does."""
    datasource: Datasource
    thresholds: Object
    """The contracts.thresholds.Thresholds document (as charts/flink-job's): defaults.<alert>.threshold sets the dashboards' threshold lines"""
    prometheus: Prometheus
    service: Service
    extraEnv: Objects
