"""Values of charts/api (scripts/chart-schemas.py writes its values.schema.json and README.md)."""

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
    Objects,
    Pdb,
    PrometheusRule,
    Replicas,
    ServiceAccount,
)


@with_config(STRICT)
class Database(TypedDict, total=False):
    existingSecret: Required[NonEmptyStr]
    """The timescaledb release's Secret of the API's role (fleet_api)"""
    urlKey: NonEmptyStr


@with_config(STRICT)
class Auth(TypedDict, total=False):
    existingSecret: str
    """Empty: the chart generates an admin key for every fleet; its API_KEYS entry (the token's hash only) goes in Secret <fullname>-keys, the token in Secret <fullname>-admin-token (NOTES.txt). Else a Secret of yours holding API_KEYS (make entries with `python -m api.keys`)."""
    key: NonEmptyStr
    """The Secret key holding API_KEYS (comma-separated name:sha256hex:role:fleets)"""
    adminKeyName: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    """The generated key's name (acknowledged_by/cleared_by and the audit show it)"""
    readAuth: bool
    """API_READ_AUTH: data routes need a key; false opens reads to anyone the network admits"""
    metricsAuth: bool
    """API_METRICS_AUTH: true needs Prometheus to scrape with a key (annotations cannot)"""
    docsAuth: bool
    """API_DOCS_AUTH: true serves /openapi.json to key holders only and turns /docs off"""


@with_config(STRICT)
class Service(TypedDict, total=False):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"]


@with_config(STRICT)
class Metrics(TypedDict, total=False):
    prometheusRule: PrometheusRule


@with_config(STRICT)
class Limits(TypedDict, total=False):
    poolTimeoutSeconds: Annotated[float, Field(gt=0)] | None
    """API_POOL_TIMEOUT_S: wait this long for a database connection, then 503"""
    maxConcurrency: Annotated[int, Field(ge=1)] | None
    """API_MAX_CONCURRENCY: requests in flight per pod, then 503 (/health, /ready exempt)"""
    maxHeaderBytes: Annotated[int, Field(ge=1024)] | None
    """API_MAX_HEADER_BYTES: request line and headers, then 431"""


@with_config(STRICT)
class Values(Component, total=False):
    replicaCount: Required[Replicas]
    serviceAccount: ServiceAccount
    networkPolicy: NetworkPolicy
    pdb: Pdb
    database: Database
    """Secret of the timescaledb release."""
    auth: Auth
    service: Service
    extraEnv: Objects
    metrics: Metrics
    limits: Limits
    """Request limits (api/settings.py); null keeps the API's default."""
