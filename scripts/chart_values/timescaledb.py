"""Values of charts/timescaledb (scripts/chart-schemas.py writes its values.schema.json and README.md)."""

# ruff: noqa: N815  (the keys are the charts' values keys, camelCase as Helm's convention)

from __future__ import annotations

from typing import Annotated, Required

from pydantic import Field, with_config
from typing_extensions import TypedDict

from chart_values.common import (
    STRICT,
    Component,
    NetworkPolicy,
    NonEmptyStr,
    Object,
    Pdb,
    Persistence,
    Resources,
    ServiceAccount,
)


@with_config(STRICT)
class Auth(TypedDict, total=False):
    username: Required[NonEmptyStr]
    database: Required[NonEmptyStr]
    existingSecret: str
    """The bootstrap superuser (the migration Job's only). keys: username password database host port sslmode database-url; generated when empty. Clients use the per-role Secrets <fullname>-{owner,writer,api,grafana} (templates/role-secrets.yaml, storage/roles.py)."""


@with_config(STRICT)
class Tls(TypedDict, total=False):
    enabled: Required[bool]
    existingSecret: str
    """A kubernetes.io/tls Secret; a self-signed one is generated when empty"""
    ca: str
    """PEM of the CA that signed tls.existingSecret's certificate: clients use sslmode=verify-full"""


@with_config(STRICT)
class Postgresql(TypedDict, total=False):
    parameters: Object


@with_config(STRICT)
class MigrationsImage(TypedDict, total=False):
    repository: Required[NonEmptyStr]
    tag: Required[NonEmptyStr]
    pullPolicy: str


@with_config(STRICT)
class Migrations(TypedDict, total=False):
    enabled: bool
    image: MigrationsImage
    backoffLimit: Annotated[int, Field(ge=0)]
    activeDeadlineSeconds: Annotated[int, Field(ge=1)]
    resources: Resources
    containerSecurityContext: Object
    """The api image's user"""


@with_config(STRICT)
class Values(Component, total=False):
    replicaCount: Required[Annotated[int, Field(ge=0, le=1)]]
    """One primary; no streaming replication in this chart."""
    serviceAccount: ServiceAccount
    networkPolicy: NetworkPolicy
    pdb: Pdb
    clusterDomain: str
    persistence: Required[Persistence]
    auth: Auth
    tls: Tls
    postgresql: Postgresql
    retention: dict[str, Annotated[str, Field(pattern=r"^[0-9]+ ?(hours?|days?|weeks?|months?|years?)$")]]
    """Retention per table, handed to the migration CLI (`--retention table=period`)."""
    migrations: Migrations
