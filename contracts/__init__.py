"""fleet-monitor event contracts: the one definition of every event, topic and threshold.

The generator, the Flink jobs, the API and the operator import from here; nothing else defines
an event's fields, a topic name or an alarm threshold. Being the one package every image ships, it
also holds what every program shares: JSON logs (jsonlog), Kafka client security (kafka_auth) and
how settings are read and their errors worded (settings).
"""

from contracts.events import (
    EVENT_MODELS,
    SCHEMA_VERSION,
    BuildingReading,
    DeviceHeartbeat,
    DrivingEvent,
    Event,
    PerceptionEvent,
    TireReading,
    Trip,
    VehicleTelemetry,
)
from contracts.parsing import ContractError, parse_event, parse_event_dict
from contracts.records import AggregateRecord, AlertRecord, AlertSeverity, AlertStatus, AlertType
from contracts.topics import ALERTS_TOPIC, DEAD_LETTER_TOPIC, EVENT_TOPICS, topic_for

__all__ = [
    "ALERTS_TOPIC",
    "DEAD_LETTER_TOPIC",
    "EVENT_MODELS",
    "EVENT_TOPICS",
    "SCHEMA_VERSION",
    "AggregateRecord",
    "AlertRecord",
    "AlertSeverity",
    "AlertStatus",
    "AlertType",
    "BuildingReading",
    "ContractError",
    "DeviceHeartbeat",
    "DrivingEvent",
    "Event",
    "PerceptionEvent",
    "TireReading",
    "Trip",
    "VehicleTelemetry",
    "parse_event",
    "parse_event_dict",
    "topic_for",
]
