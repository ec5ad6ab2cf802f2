"""Records the pipeline produces: alarms, window aggregates and dead letters."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.events import EventTime, Identifier, TirePosition


class AlertType(StrEnum):
    TIRE_PRESSURE_LOW = "tire_pressure_low"
    TIRE_TEMPERATURE_HIGH = "tire_temperature_high"
    SPEEDING = "speeding"
    BATTERY_LOW = "battery_low"
    COLLISION_RISK = "collision_risk"
    CO2_HIGH = "co2_high"
    TEMPERATURE_HIGH = "temperature_high"
    HUMIDITY_HIGH = "humidity_high"
    DEVICE_INACTIVE = "device_inactive"


class AlertSeverity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertStatus(StrEnum):
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


class AlertRecord(BaseModel):
    """One alarm: a condition on a source. The same (source_id, alert_type) updates one open
    alarm (count, last_seen) until it clears; `alert_id` is deterministic per incident so every
    writer can upsert it idempotently."""

    model_config = ConfigDict(extra="forbid")

    alert_id: Identifier
    alert_type: AlertType
    severity: AlertSeverity
    status: AlertStatus
    source_id: Identifier
    fleet_id: Identifier = "default"
    first_seen: EventTime
    last_seen: EventTime
    cleared_at: EventTime | None = None
    count: int = Field(ge=1)
    value: float | None = Field(default=None, description="The reading that raised or last updated it.")
    threshold: float | None = None
    message: str = Field(default="", max_length=1024)


class AggregateRecord(BaseModel):
    """avg/min/max/count of one metric of one source (and tire) over one event-time window."""

    model_config = ConfigDict(extra="forbid")

    source_id: Identifier
    schema_name: str
    metric: str = Field(description="contracts.metrics.METRICS, e.g. pressure_kpa")
    tire: TirePosition | Literal[""] = Field(
        default="", description="The tire position of a tire metric; empty for every other family's metrics."
    )
    window_start: EventTime
    window_end: EventTime
    avg: float
    min: float
    max: float
    count: int = Field(ge=1)


class DeadLetter(BaseModel):
    """A payload the pipeline could not use, kept whole with the reason."""

    model_config = ConfigDict(extra="forbid")

    topic: str
    payload: str
    error: str
    field: str | None = None
    received_at: EventTime
