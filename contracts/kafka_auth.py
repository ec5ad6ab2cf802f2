"""Kafka client authentication and the brokers' users, defined once.

Every client process (simulator, jobs, loader, alert shipper) reads the same KAFKA_* environment
variables, which the charts fill from the kafka chart's Secrets; `KafkaAuth` maps them to
librdkafka's settings (confluent-kafka) and to the Java client's properties (the Flink Kafka
connector). Unset, a client speaks PLAINTEXT as before (`make run`).

`USERS` is what each component may do on the brokers; scripts/sync-chart-config.py writes it into
charts/kafka/values.yaml, whose provisioning Job turns it into SCRAM users and ACLs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from contracts.topics import ALERTS_TOPIC, DEAD_LETTER_TOPIC, EVENT_TOPICS, STORE_TOPICS

# The environment variables, their one spelling.
SECURITY_PROTOCOL_ENV = "KAFKA_SECURITY_PROTOCOL"
SASL_MECHANISM_ENV = "KAFKA_SASL_MECHANISM"
USERNAME_ENV = "KAFKA_SASL_USERNAME"
PASSWORD_ENV = "KAFKA_SASL_PASSWORD"
CA_FILE_ENV = "KAFKA_SSL_CA_FILE"

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
DEFAULT_MECHANISM = "SCRAM-SHA-512"

_LOGIN_MODULES = {
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
}
FLINK_SHADED_PREFIX = "org.apache.flink.kafka.shaded."
"""flink-sql-connector-kafka relocates the Kafka client: its JAAS login modules carry this prefix."""


class KafkaAuthError(ValueError):
    pass


@dataclass(frozen=True)
class KafkaAuth:
    protocol: str = "PLAINTEXT"
    mechanism: str = DEFAULT_MECHANISM
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    """PEM file of the CA that signed the brokers' certificates (None: the system's CAs)."""
    ca_pem: str | None = None
    """The same as text, for a client that reads it from a Secret (the operator); librdkafka only."""

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise KafkaAuthError(f"{SECURITY_PROTOCOL_ENV}={self.protocol!r}: expected one of {', '.join(PROTOCOLS)}")
        if self.sasl:
            if self.mechanism not in MECHANISMS:
                raise KafkaAuthError(
                    f"{SASL_MECHANISM_ENV}={self.mechanism!r}: expected one of {', '.join(MECHANISMS)}"
                )
            missing = [
                name for name, value in ((USERNAME_ENV, self.username), (PASSWORD_ENV, self.password)) if not value
            ]
            if missing:
                raise KafkaAuthError(f"{self.protocol} needs {' and '.join(missing)} (the component's Kafka user)")
        if self.ca_file and self.ca_pem:
            raise KafkaAuthError(f"give the CA as a file ({CA_FILE_ENV}) or as text, not both")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KafkaAuth:
        """The process's settings; every variable unset or empty means PLAINTEXT."""
        env = os.environ if environ is None else environ
        return cls(
            protocol=env.get(SECURITY_PROTOCOL_ENV) or "PLAINTEXT",
            mechanism=env.get(SASL_MECHANISM_ENV) or DEFAULT_MECHANISM,
            username=env.get(USERNAME_ENV) or None,
            password=env.get(PASSWORD_ENV) or None,
            ca_file=env.get(CA_FILE_ENV) or None,
        )

    def env(self) -> dict[str, str]:
        """The variables that hand these settings to a child process (from_env's inverse)."""
        if self.ca_pem:
            raise KafkaAuthError("a CA given as text cannot be passed on as a file path; write it to a file")
        values = {
            SECURITY_PROTOCOL_ENV: self.protocol,
            SASL_MECHANISM_ENV: self.mechanism if self.sasl else None,
            USERNAME_ENV: self.username if self.sasl else None,
            PASSWORD_ENV: self.password if self.sasl else None,
            CA_FILE_ENV: self.ca_file if self.tls else None,
        }
        return {name: value for name, value in values.items() if value}

    def librdkafka(self) -> dict[str, str]:
        """confluent-kafka settings (merge them into a Producer/Consumer/AdminClient config)."""
        config = {"security.protocol": self.protocol}
        if self.sasl:
            config |= {"sasl.mechanism": self.mechanism, "sasl.username": self.username, "sasl.password": self.password}
        if self.tls and self.ca_file:
            config["ssl.ca.location"] = self.ca_file
        if self.tls and self.ca_pem:
            config["ssl.ca.pem"] = self.ca_pem
        return config

    def java(self, login_module_prefix: str = "") -> dict[str, str]:
        """Kafka Java client properties; `login_module_prefix` is FLINK_SHADED_PREFIX for the
        Flink connector. The CA goes in as a PEM truststore (Kafka clients 2.7+)."""
        if self.ca_pem:
            raise KafkaAuthError("the Java client reads its CA from a file: give ca_file")
        config = {"security.protocol": self.protocol}
        if self.sasl:
            module = login_module_prefix + _LOGIN_MODULES[self.mechanism]
            config |= {
                "sasl.mechanism": self.mechanism,
                "sasl.jaas.config": f'{module} required username="{_jaas_quote(self.username)}" '
                f'password="{_jaas_quote(self.password)}";',
            }
        if self.tls and self.ca_file:
            config |= {"ssl.truststore.type": "PEM", "ssl.truststore.location": self.ca_file}
        return config

    def __repr__(self) -> str:  # never the password, in logs or tracebacks
        return f"KafkaAuth(protocol={self.protocol!r}, mechanism={self.mechanism!r}, username={self.username!r})"


def _jaas_quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


# --- the brokers' users and what each may do (least privilege) ---------------------------------

ADMIN_USER = "admin"
"""The brokers' own user (inter-broker and controller listeners) and the provisioning Job's: a super user."""
JOBS_GROUP_PREFIX = "fleet-monitor-job"
"""The jobs' consumer groups and transactional ids start with it: the flink-job chart names them
after the release (fleet-monitor-job-alarms, its sinks fleet-monitor-job-alarms-<sink>), `make run`
uses fleet-monitor-jobs."""
LOADER_GROUP = "fleet-loader"
OPERATOR_USER = "operator"
COMPONENT_USERS = {"generator": "generator", "flink-job": "jobs", "loader": "loader", "vector": "vector"}
"""chart -> the user its pods log in as (the operator sets it up; each chart's kafka.auth.username)."""
VECTOR_GROUP = "fleet-monitor-vector"

_EVENTS = list(EVENT_TOPICS.values())
_JOB_OUTPUTS = [ALERTS_TOPIC, DEAD_LETTER_TOPIC, *STORE_TOPICS.values()]


def _acl(resource: str, names: list[str], *operations: str, pattern: str = "literal") -> dict:
    return {"resource": resource, "names": list(names), "pattern": pattern, "operations": list(operations)}


def _topics(names: list[str], *operations: str) -> dict:
    return _acl("topic", names, *operations)


def _prefixed(resource: str, prefix: str, *operations: str) -> dict:
    return _acl(resource, [prefix], *operations, pattern="prefixed")


USERS: dict[str, list[dict]] = {
    # The simulator: writes its event topics (an idempotent producer needs no more since Kafka 3.0).
    "generator": [_topics(_EVENTS, "Write", "Describe")],
    # The Flink jobs: read the events in their groups; write alarms, dead letters and the store
    # topics in transactions (exactly once), whose ids share the groups' prefix.
    "jobs": [
        _topics(_EVENTS, "Read", "Describe"),
        _prefixed("group", JOBS_GROUP_PREFIX, "Read"),
        _topics(_JOB_OUTPUTS, "Write", "Describe"),
        _prefixed("transactional-id", JOBS_GROUP_PREFIX, "Write", "Describe"),
    ],
    # The loader: reads what the jobs commit.
    "loader": [_topics(_JOB_OUTPUTS, "Read", "Describe"), _acl("group", [LOADER_GROUP], "Read")],
    # Vector (and devstack's alert shipper, its stand-in): reads the alerts.
    "vector": [_topics([ALERTS_TOPIC], "Read", "Describe"), _acl("group", [VECTOR_GROUP], "Read")],
    # The operator's self-healing: sees which topics exist. The kafka chart's topics Job (as admin)
    # creates and grows them; the operator re-runs that Job through a release upgrade.
    OPERATOR_USER: [_topics(list((*EVENT_TOPICS.values(), *_JOB_OUTPUTS)), "Describe")],
}
"""user -> ACL entries: resource (topic, group, transactional-id), names, pattern (literal or
prefixed: each name is a prefix), operations (kafka-acls.sh spelling)."""
