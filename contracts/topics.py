"""Kafka topic names, defined once. Every event family has its own topic, keyed by source_id."""

from __future__ import annotations

EVENT_TOPICS: dict[str, str] = {
    "tire.reading": "fleet.tire-readings",
    "vehicle.telemetry": "fleet.vehicle-telemetry",
    "perception.event": "fleet.perception-events",
    "driving.event": "fleet.driving-events",
    "building.reading": "fleet.building-readings",
    "device.heartbeat": "fleet.device-heartbeats",
    "trip": "fleet.trips",
}
ALERTS_TOPIC = "fleet.alerts"
DEAD_LETTER_TOPIC = "fleet.dead-letters"

STORE_TOPICS: dict[str, str] = {
    table: f"fleet.store.{table.replace('_', '-')}"
    for table in ("readings", "aggregates", "source_state", "driving_kpis", "trip_metrics", "device_inactivity")
}
"""The jobs' table outputs, written transactionally by Flink and upserted into the database by
the loader (storage.loader); alarms and dead letters reach it through their own topics."""

ALL_TOPICS: tuple[str, ...] = (*EVENT_TOPICS.values(), ALERTS_TOPIC, DEAD_LETTER_TOPIC, *STORE_TOPICS.values())


def topic_for(schema_name: str) -> str:
    try:
        return EVENT_TOPICS[schema_name]
    except KeyError:
        raise KeyError(f"no topic for unknown event schema {schema_name!r}") from None
