"""Which of the contracts' topics are missing on the broker (Kafka admin API, confluent-kafka).

The topics are the kafka chart's: its topics Job (a post-install/upgrade hook) creates them and
converges partitions and config on every install or upgrade of the kafka release, on either deploy
path (a FleetMonitor through this operator, or `helm install charts/kafka`). The operator only
looks: when one is missing, the healer upgrades the kafka release so that Job runs again
(handlers.heal_once). So the operator needs Describe on the topics and nothing more."""

from __future__ import annotations

import asyncio

from confluent_kafka.admin import AdminClient

from contracts.kafka_auth import KafkaAuth


def _missing(bootstrap: str, names: tuple[str, ...], auth: KafkaAuth) -> list[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000, **auth.librdkafka()})
    existing = admin.list_topics(timeout=10).topics
    return [name for name in names if name not in existing]


async def missing_topics(bootstrap: str, names: tuple[str, ...], auth: KafkaAuth | None = None) -> list[str]:
    """`auth`: the operator's Kafka user on a kafka release with auth.enabled (model.kafka_secrets)."""
    return await asyncio.to_thread(_missing, bootstrap, names, auth or KafkaAuth())
