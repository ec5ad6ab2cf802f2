"""Values of charts/fleet-operator (scripts/chart-schemas.py writes its values.schema.json and README.md)."""

# ruff: noqa: N815  (the keys are the charts' values keys, camelCase as Helm's convention)

from __future__ import annotations

from typing import Annotated, Literal, Required

from pydantic import Field, with_config
from typing_extensions import TypedDict

from chart_values.common import STRICT, NonEmptyStr, Object, Objects, Pod


@with_config(STRICT)
class OperatorImage(TypedDict, total=False):
    """The operator image (operator/Dockerfile: kopf, pyhelm3, helm and the charts)."""

    repository: Required[NonEmptyStr]
    tag: str
    """Empty: the chart's appVersion."""
    pullPolicy: Literal["Always", "IfNotPresent", "Never"]


@with_config(STRICT)
class Peering(TypedDict, total=False):
    enabled: bool
    name: NonEmptyStr


@with_config(STRICT)
class Operator(TypedDict, total=False):
    """The operator's settings; each one unset keeps the operator's own default (`python -m fleet_operator --help`)."""

    helmTimeout: Annotated[str, Field(pattern=r"^[0-9]+(s|m|h)$")]
    """helm --timeout per operation (FLEET_HELM_TIMEOUT)."""
    readyTimeoutSeconds: Annotated[int, Field(ge=1)]
    """How long one stage may take to become ready before a retry (FLEET_READY_TIMEOUT_S)."""
    healIntervalSeconds: Annotated[int, Field(ge=5)]
    """Self-healing interval: topics and releases (FLEET_HEAL_INTERVAL_S)."""
    flinkRest: NonEmptyStr
    """Flink REST URL template for savepoints, with {release} and {namespace} (FLEET_FLINK_REST)."""
    extraEnv: Objects


@with_config(STRICT)
class Metrics(TypedDict, total=False):
    enabled: bool
    port: Annotated[int, Field(ge=1, le=65535)]


@with_config(STRICT)
class Health(TypedDict, total=False):
    port: Annotated[int, Field(ge=1, le=65535)]


@with_config(STRICT)
class OperatorServiceAccount(TypedDict, total=False):
    """The operator's ServiceAccount: its token is always mounted (the operator calls the API server)."""

    create: bool
    name: str
    annotations: Object


@with_config(STRICT)
class Values(Pod, total=False):
    image: Required[OperatorImage]
    replicaCount: Required[Annotated[int, Field(ge=0, le=3)]]
    """One active instance: kopf peering lets only the highest-priority operator work; the Recreate strategy keeps an upgrade from running two at once."""
    peering: Required[Peering]
    watchNamespaces: list[Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]]
    """Namespaces holding FleetMonitor resources. Empty = all namespaces (a ClusterRole); otherwise a Role per namespace, which is the least privilege."""
    operator: Required[Operator]
    metrics: Metrics
    health: Health
    resources: Required[Object]
    """The operator container's requests and limits."""
    serviceAccount: OperatorServiceAccount
