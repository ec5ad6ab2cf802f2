"""Values every fleet-monitor chart shares, as the fleet-common library chart reads them (names,
labels, image, pod settings, ServiceAccount, NetworkPolicy, PodDisruptionBudget), and the types the
chart modules build on. The attribute docstrings are the descriptions in the schemas and READMEs."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Required

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

# An object of known keys only: a misspelt key fails `helm install` instead of being ignored.
STRICT = ConfigDict(extra="forbid", use_attribute_docstrings=True)
# (pydantic reads a TypedDict's attribute docstrings from that class only: the classes below that
# charts extend give their keys' descriptions as Field(description=...) instead.)
# An object of known keys that passes others through (e.g. to a config file).
OPEN = ConfigDict(extra="allow", use_attribute_docstrings=True)

NonEmptyStr = Annotated[str, Field(min_length=1)]
Quantity = Annotated[str | float, Field(description="Kubernetes quantity")]
VolumeSize = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(Mi|Gi|Ti)$")]
AccessMode = Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"]
Object = dict[str, Any]  # a Kubernetes object or map passed through as written
Objects = list[Any]  # a list of Kubernetes objects passed through as written


@with_config(STRICT)
class Image(TypedDict, total=False):
    repository: Required[NonEmptyStr]
    tag: Required[str]
    """Empty: the chart's appVersion."""
    pullPolicy: Required[Literal["Always", "IfNotPresent", "Never"]]


@with_config(STRICT)
class ResourceList(TypedDict, total=False):
    cpu: Required[Quantity]
    memory: Required[Quantity]


@with_config(STRICT)
class Resources(TypedDict, total=False):
    """Container requests and limits (the operator's `resources` key)."""

    requests: Required[ResourceList]
    limits: Required[ResourceList]


@with_config(STRICT)
class ServiceAccount(TypedDict, total=False):
    create: Annotated[bool, Field(description="Create the release's ServiceAccount (fleet-common.serviceAccount).")]
    name: Annotated[str, Field(description="Its name; empty: the release's full name (or `default` when not created).")]
    automountServiceAccountToken: Annotated[
        bool, Field(description="Mount its token into the pods (only charts that call the Kubernetes API need it).")
    ]


@with_config(STRICT)
class AnnotatedServiceAccount(ServiceAccount, total=False):
    annotations: Object
    """Annotations of the ServiceAccount (e.g. a cloud IAM role for object storage)."""


@with_config(STRICT)
class NetworkPolicy(TypedDict, total=False):
    enabled: Annotated[bool, Field(description="Render the NetworkPolicy (fleet-common.networkPolicy).")]
    allowExternal: Annotated[
        bool,
        Field(
            description="Admit ingress from anywhere instead of fleet-monitor pods (label app.kubernetes.io/part-of) only."
        ),
    ]
    extraIngressFrom: Annotated[
        Objects, Field(description="More NetworkPolicyPeers admitted besides fleet-monitor pods.")
    ]


@with_config(STRICT)
class Pdb(TypedDict, total=False):
    create: bool
    """Render a PodDisruptionBudget when replicaCount > 1 (fleet-common.pdb)."""
    maxUnavailable: int | str
    """Pods a voluntary disruption may take down at once (a number or a percentage)."""


@with_config(STRICT)
class Persistence(TypedDict, total=False):
    """Volume (the operator's `persistence.size` key)."""

    enabled: Required[bool]
    size: Required[VolumeSize]
    storageClass: str
    """Empty: the cluster's default StorageClass."""
    accessModes: Annotated[list[AccessMode], Field(min_length=1)]


@with_config(STRICT)
class Pod(TypedDict, total=False):
    """Keys of every chart: names and pod-level settings (fleet-common.names, fleet-common.pod.common)."""

    imagePullSecrets: Annotated[Objects, Field(description="Secrets to pull the image with (LocalObjectReferences).")]
    nameOverride: Annotated[
        str, Field(description="Replaces the chart name in object names and the app.kubernetes.io/name label.")
    ]
    fullnameOverride: Annotated[
        str,
        Field(
            description="Replaces the release's full name (<release>-<chart>, or the release when it names the chart)."
        ),
    ]
    podSecurityContext: Annotated[Object, Field(description="The pods' securityContext.")]
    containerSecurityContext: Annotated[Object, Field(description="The containers' securityContext.")]
    podAnnotations: Annotated[Object, Field(description="Annotations of the pods.")]
    nodeSelector: Annotated[Object, Field(description="The pods' nodeSelector.")]
    tolerations: Annotated[Objects, Field(description="The pods' tolerations.")]
    affinity: Annotated[Object, Field(description="The pods' affinity.")]


@with_config(STRICT)
class Component(Pod, total=False):
    """Keys of every component chart (the ones the operator installs per FleetMonitor)."""

    image: Required[
        Annotated[Image, Field(description="The container image (the operator's `image` key sets repository and tag).")]
    ]
    resources: Required[Resources]


Replicas = Annotated[int, Field(ge=0, description="Pods (the operator's `replicas` key).")]


@with_config(STRICT)
class KafkaAuth(TypedDict, total=False):
    """SASL_SSL as this component's user of the kafka release (charts/kafka auth.enabled); the operator
    turns it on with the kafka release's Secrets. Off: PLAINTEXT."""

    enabled: Required[bool]
    username: Required[NonEmptyStr]
    """The component's Kafka user (contracts/kafka_auth.py)."""
    mechanism: Required[Literal["SCRAM-SHA-512", "SCRAM-SHA-256"]]
    passwordSecret: Required[NonEmptyStr]
    """The kafka release's users Secret; key: the username."""
    caSecret: Required[NonEmptyStr]
    """Secret with the brokers' CA as ca.crt."""


@with_config(STRICT)
class PrometheusRule(TypedDict, total=False):
    """The chart's alert rules (rules/*.rules.yaml) as a PrometheusRule."""

    enabled: bool
    """Render it; needs the Prometheus Operator CRDs."""
    labels: Object
    """Labels the Prometheus instance selects rules by."""
