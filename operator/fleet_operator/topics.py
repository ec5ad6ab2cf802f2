"""Self-healing of the Kafka topics through the Kafka admin API (confluent-kafka)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from contracts.kafka_auth import KafkaAuth
from fleet_operator.metrics import TOPICS_CREATED


@dataclass
class TopicReport:
    missing: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)


def _heal(bootstrap: str, wanted: dict[str, dict], create: bool, auth: KafkaAuth) -> TopicReport:
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000, **auth.librdkafka()})
    existing = admin.list_topics(timeout=10).topics
    report = TopicReport()
    for name, declared in wanted.items():
        if name not in existing:
            report.missing.append(name)
        elif len(existing[name].partitions) < declared["partitions"]:
            report.drift.append(f"{name}: {len(existing[name].partitions)} partitions, want {declared['partitions']}")
    if create and report.missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=wanted[name]["partitions"],
                    replication_factor=wanted[name]["replicationFactor"],
                    config=wanted[name]["config"],
                )
                for name in report.missing
            ]
        )
        for name, future in futures.items():
            try:
                future.result(timeout=15)
            except KafkaException as error:
                if "TOPIC_ALREADY_EXISTS" not in str(error):
                    raise
            report.created.append(name)
            TOPICS_CREATED.inc()
    return report


async def heal_topics(
    bootstrap: str, wanted: dict[str, dict], create: bool = True, auth: KafkaAuth | None = None
) -> TopicReport:
    """`auth`: the operator's Kafka user on a kafka release with auth.enabled (model.kafka_secrets)."""
    return await asyncio.to_thread(_heal, bootstrap, wanted, create, auth or KafkaAuth())
