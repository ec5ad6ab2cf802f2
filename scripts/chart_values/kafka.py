"""Values of charts/kafka (scripts/chart-schemas.py writes its values.schema.json and README.md)."""

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
    Pdb,
    Persistence,
    Replicas,
    Resources,
    ServiceAccount,
)


@with_config(STRICT)
class Replication(TypedDict, total=False):
    defaultReplicationFactor: Required[Annotated[int, Field(ge=1)]]
    """Capped at replicaCount"""
    minInsyncReplicas: Required[Annotated[int, Field(ge=1)]]
    """Capped at the replication factor"""


@with_config(STRICT)
class Kraft(TypedDict, total=False):
    existingSecret: str
    """Secret with key cluster-id; generated (and kept across upgrades) when empty"""


@with_config(STRICT)
class ProvisionTopics(TypedDict, total=False):
    enabled: bool
    resources: Resources


@with_config(STRICT)
class TopicDefaults(TypedDict, total=False):
    partitions: Required[Annotated[int, Field(ge=1)]]
    config: Object


@with_config(STRICT)
class TopicOverride(TypedDict, total=False):
    partitions: Annotated[int, Field(ge=1)]
    replicationFactor: Annotated[int, Field(ge=1)]
    """This topic's, capped at replicaCount (FleetMonitor spec.topics.overrides.<topic>.replicationFactor)"""
    config: Object


@with_config(STRICT)
class Auth(TypedDict, total=False):
    enabled: bool
    existingSecret: str
    """Secret with one password per user (keys: admin and each of authUsers); generated, kept across upgrades and uninstalls (admin's SCRAM credential is formatted into the brokers' volumes)."""


@with_config(STRICT)
class Tls(TypedDict, total=False):
    existingSecret: str
    """Secret with ca.crt, tls.crt and tls.key (a PKCS#8 PEM key; cert-manager: privateKey.encoding PKCS8) for the brokers. Empty: a CA and a certificate for the Services' names are generated and kept across upgrades; clients trust ca.crt of this Secret (<fullname>-tls)."""
    extraDnsNames: list[NonEmptyStr]
    """More names the brokers' certificate carries (an ingress, a port-forward's localhost)"""
    extraIpAddresses: list[NonEmptyStr]
    validityDays: Annotated[int, Field(ge=1)]


@with_config(STRICT)
class Acl(TypedDict, total=False):
    resource: Required[Literal["topic", "group", "transactional-id"]]
    names: Required[Annotated[list[NonEmptyStr], Field(min_length=1)]]
    pattern: Required[Literal["literal", "prefixed"]]
    operations: Required[
        Annotated[
            list[
                Literal[
                    "Read",
                    "Write",
                    "Create",
                    "Delete",
                    "Alter",
                    "Describe",
                    "DescribeConfigs",
                    "AlterConfigs",
                    "IdempotentWrite",
                ]
            ],
            Field(min_length=1),
        ]
    ]


@with_config(STRICT)
class Values(Component, total=False):
    replicaCount: Required[Replicas]
    serviceAccount: ServiceAccount
    networkPolicy: NetworkPolicy
    pdb: Pdb
    clusterDomain: str
    persistence: Required[Persistence]
    heapOpts: str
    """Empty: -Xms/-Xmx half of resources.limits.memory (the rest is page cache); at most 60% if set"""
    replication: Replication
    """Topics and the internal ones (consumer offsets, transaction state) alike."""
    logRetentionHours: Annotated[int, Field(ge=1)]
    extraConfig: Object
    kraft: Kraft
    provisionTopics: ProvisionTopics
    topicDefaults: TopicDefaults
    topicOverrides: dict[str, TopicOverride]
    """{<topic>: {partitions: N, replicationFactor: N, config: {...}}}"""
    topics: Annotated[
        list[Annotated[str, Field(pattern=r"^[a-zA-Z0-9._-]{1,249}$")]], Field(json_schema_extra={"uniqueItems": True})
    ]
    transactionMaxTimeoutMs: Annotated[int, Field(ge=600000)]
    """Kafka's transaction.max.timeout.ms; at least the jobs' producers' 600000 ms transaction timeout"""
    auth: Auth
    """SASL_SSL with SCRAM-SHA-512 users and ACLs (docs/security.md "Kafka authentication"); off: PLAINTEXT, no ACLs. Clients on 9092 log in as one of `authUsers` below; the brokers and the provisioning Job log in as `admin`, the only super user (controller listener: SASL_SSL PLAIN, from the config)."""
    tls: Tls
    authUsers: Annotated[
        dict[str, list[Acl]],
        Field(json_schema_extra={"propertyNames": {"pattern": "^[a-z][a-z0-9-]*$", "not": {"const": "admin"}}}),
    ]
    """User -> ACL entries (generated from contracts/kafka_auth.py)"""
