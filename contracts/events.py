"""Event families and their versioned envelope.

Every event on the wire is one flat JSON object: the envelope fields (`schema`, `version`,
`event_id`, `source_id`, `event_time`, `fleet_id`) plus the family's own fields. Flat records
keep the Flink SQL tables that read them simple (one column per field).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

SCHEMA_VERSION = 1

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]


def format_time(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds and a Z: the one timestamp format on the wire."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_MILLIS_FROM = 100_000_000_000
"""The one rule telling epoch seconds from epoch milliseconds: a number below 1e11 is seconds
(1e11 s is the year 5138), from 1e11 on it is milliseconds (1e11 ms is 1973-03-03), so any time
a device sends today reads the same in either unit. Accepted from 0 up to LAST_EPOCH_MS; rounded
to the nearest millisecond (half up). The jobs' SQL (jobs.tables.epoch_sql) is built from these
constants and does the same IEEE double arithmetic; tests/integration/test_jobs_event_time.py
holds the two to the same answers."""
LAST_EPOCH_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z, the last instant RFC 3339 (and Flink's TIMESTAMP) can write."""
_NUMERIC_TEXT = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def epoch_millis(value: int | float) -> int | None:
    """Milliseconds since 1970 of an epoch number by the rule above; None out of range."""
    if (isinstance(value, float) and not math.isfinite(value)) or not 0 <= value <= LAST_EPOCH_MS:
        return None
    scaled = value * 1000 if value < EPOCH_MILLIS_FROM else value
    return scaled if isinstance(scaled, int) else math.floor(scaled + 0.5)


def _from_epoch(value: object) -> object:
    """An event time given as a JSON number (epoch seconds or milliseconds) as a datetime; text
    (RFC 3339) is left to pydantic. A number in a string is refused: text is RFC 3339 only."""
    if isinstance(value, bool):
        return value  # pydantic refuses it as no datetime
    if isinstance(value, int | float):
        millis = epoch_millis(value)
        if millis is None:
            raise ValueError(
                f"epoch time {value!r} is out of range: epoch seconds from 0 (below {EPOCH_MILLIS_FROM:.0e}) "
                f"or epoch milliseconds up to {LAST_EPOCH_MS} (9999-12-31)"
            )
        return EPOCH + timedelta(milliseconds=millis)
    if isinstance(value, str) and _NUMERIC_TEXT.fullmatch(value):
        raise ValueError(
            f"event time {value!r} is a number in a string: send RFC 3339 text "
            "(2026-01-01T00:00:00.000Z) or epoch seconds/milliseconds as a JSON number"
        )
    return value


EventTime = Annotated[
    AwareDatetime,
    BeforeValidator(_from_epoch),
    PlainSerializer(format_time, return_type=str, when_used="json"),
]
"""RFC 3339 text with a zone, or epoch seconds or milliseconds as a JSON number (EPOCH_MILLIS_FROM);
always written as RFC 3339 UTC with milliseconds."""


class Event(BaseModel):
    """The envelope every event family shares."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_name: ClassVar[str]
    """The family's wire name, e.g. `tire.reading`; set by each subclass."""

    schema_: str = Field(alias="schema", description="Event family name, e.g. tire.reading.")
    version: Literal[1] = Field(default=SCHEMA_VERSION, description="Contract version of the family.")
    event_id: Identifier = Field(description="Unique id of this event (producer-assigned).")
    source_id: Identifier = Field(description="Vehicle or device that produced the event; the Kafka key.")
    event_time: EventTime = Field(
        description="When the reading was taken (event time, UTC). Written as RFC 3339 UTC with milliseconds; "
        "read also as epoch seconds (a JSON number below 1e11) or epoch milliseconds (from 1e11 on)."
    )
    fleet_id: Identifier = Field(default="default", description="Fleet or site group the source belongs to.")

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def build(cls, **fields) -> Event:
        """Construct with the family's schema name filled in."""
        return cls(schema=cls.schema_name, **fields)


class TirePosition(StrEnum):
    FRONT_LEFT = "FL"
    FRONT_RIGHT = "FR"
    REAR_LEFT = "RL"
    REAR_RIGHT = "RR"
    REAR_LEFT_INNER = "RLI"
    REAR_RIGHT_INNER = "RRI"


class TireReading(Event):
    schema_name: ClassVar[str] = "tire.reading"
    schema_: Literal["tire.reading"] = Field(alias="schema")
    tire_position: TirePosition
    pressure_kpa: float = Field(ge=0, le=1500, description="Inflation pressure, kPa.")
    temperature_c: float = Field(ge=-60, le=250, description="Tire temperature, Celsius.")


class AutopilotState(StrEnum):
    OFF = "off"
    STANDBY = "standby"
    ENGAGED = "engaged"


class VehicleTelemetry(Event):
    schema_name: ClassVar[str] = "vehicle.telemetry"
    schema_: Literal["vehicle.telemetry"] = Field(alias="schema")
    speed_kmh: float = Field(ge=0, le=400)
    speed_limit_kmh: float | None = Field(default=None, ge=0, le=400, description="Posted limit here, if known.")
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    battery_pct: float = Field(ge=0, le=100)
    odometer_km: float = Field(ge=0)
    autopilot_state: AutopilotState


class ObjectClass(StrEnum):
    CAR = "car"
    TRUCK = "truck"
    PEDESTRIAN = "pedestrian"
    CYCLIST = "cyclist"
    ANIMAL = "animal"
    OBSTACLE = "obstacle"
    UNKNOWN = "unknown"


class PerceptionEvent(Event):
    schema_name: ClassVar[str] = "perception.event"
    schema_: Literal["perception.event"] = Field(alias="schema")
    object_class: ObjectClass
    distance_m: float = Field(ge=0, le=1000)
    relative_speed_mps: float = Field(ge=-150, le=150, description="Negative when the object is closing in.")


class DrivingEventType(StrEnum):
    INTERVENTION = "intervention"
    DISENGAGEMENT = "disengagement"


class DrivingEvent(Event):
    schema_name: ClassVar[str] = "driving.event"
    schema_: Literal["driving.event"] = Field(alias="schema")
    event_type: DrivingEventType
    odometer_km: float = Field(ge=0)
    reason: str | None = Field(default=None, max_length=256)


class BuildingReading(Event):
    schema_name: ClassVar[str] = "building.reading"
    schema_: Literal["building.reading"] = Field(alias="schema")
    site_id: Identifier
    zone_id: Identifier
    co2_ppm: float = Field(ge=0, le=40000)
    temperature_c: float = Field(ge=-50, le=80)
    humidity_pct: float = Field(ge=0, le=100)
    occupancy: int = Field(ge=0, le=100000)


class DeviceHeartbeat(Event):
    """Liveness ping. Seed devices send the legacy wire form `{"event-id","device-id","time"}`,
    which `contracts.parsing` accepts and normalises to this envelope."""

    schema_name: ClassVar[str] = "device.heartbeat"
    schema_: Literal["device.heartbeat"] = Field(alias="schema")
    timeout_s: float | None = Field(default=None, gt=0, le=86400, description="Per-device silence timeout.")


class Trip(Event):
    """A completed trip; source_id is the vehicle, event_time the trip's end."""

    schema_name: ClassVar[str] = "trip"
    schema_: Literal["trip"] = Field(alias="schema")
    trip_id: Identifier
    region_id: Identifier
    fare: float = Field(ge=0, le=100000)
    duration_s: float = Field(ge=0, le=7 * 86400)
    distance_km: float = Field(ge=0, le=10000)


EVENT_MODELS: dict[str, type[Event]] = {
    model.schema_name: model
    for model in (
        TireReading,
        VehicleTelemetry,
        PerceptionEvent,
        DrivingEvent,
        BuildingReading,
        DeviceHeartbeat,
        Trip,
    )
}
