"""What one simulator run looks like: fleet size, families, rate, clock, seed and scenarios."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic_settings import NoDecode

from contracts.events import EVENT_MODELS, Identifier
from contracts.thresholds import Thresholds

FAMILIES: tuple[str, ...] = tuple(EVENT_MODELS)
"""Every event family by its contract schema name (tire.reading, vehicle.telemetry, ...)."""

CONDITION_SCENARIOS: tuple[str, ...] = (
    "tire-leak",
    "overheating",
    "speeding",
    "battery-drain",
    "collision-risk",
    "interventions",
    "co2-spike",
    "silent-device",
)
"""Scenarios that drive one source into a condition an alarm (or KPI) must catch, then back."""

PERTURBATIONS: tuple[str, ...] = ("malformed", "late", "out-of-order")
"""Scenarios that damage a share of ordinary events instead."""

SCENARIOS: tuple[str, ...] = CONDITION_SCENARIOS + PERTURBATIONS


def parse_families(text: str) -> tuple[str, ...]:
    """'all' or a comma-separated list of schema names; raises ValueError naming the unknown one."""
    if text.strip() == "all":
        return FAMILIES
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in FAMILIES]
    if unknown or not names:
        raise ValueError(f"unknown event family {unknown[0] if unknown else text!r}; known: {', '.join(FAMILIES)}")
    return names


def parse_scenarios(text: str) -> tuple[str, ...]:
    """'all', 'none' or a comma-separated list of scenario names."""
    text = text.strip()
    if text == "all":
        return SCENARIOS
    if text in ("none", ""):
        return ()
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}, all, none")
    return names


def now_utc_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _timestamp(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"expected an ISO 8601 time like 2026-01-01T00:00:00Z, got {value!r}") from None
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(f"time needs a timezone (e.g. a trailing Z), got {value.isoformat()!r}")
    return value


def _listed(parse):
    """A comma-separated flag or variable through `parse`; a tuple (from Python) through as given."""
    return BeforeValidator(lambda value: parse(value) if isinstance(value, str) else tuple(value))


Share = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0)]
Positive = Annotated[float, Field(gt=0.0)]


class SimConfig(BaseModel):
    """One simulator run. Each field is a flag of fleet-generator and devstack.run (its alias, when
    the name carries a unit: --duration for duration_s), default and help written only here."""

    model_config = ConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True)

    vehicles: Count = Field(10, description="vehicles")
    sites: Count = Field(2, description="building sites")
    zones: Count = Field(3, description="zones per site")
    devices_per_zone: Count = Field(2, description="building sensors per zone")
    heartbeat_devices: Count = Field(10, description="heartbeat devices")
    legacy_heartbeat_share: Share = Field(
        0.3, description='share of heartbeat devices sending the legacy {"event-id","device-id","time"} form'
    )
    families: Annotated[tuple[str, ...], NoDecode, _listed(parse_families)] = Field(
        FAMILIES, description=f"comma-separated event families or 'all': {', '.join(FAMILIES)}"
    )
    fleet_id: str = Field("default", description="fleet_id on every event")
    rate: Positive = Field(
        5.0,
        description="events per second, simulated and paced: the simulated clock advances 1/rate per event",
    )
    start: Annotated[datetime, BeforeValidator(_timestamp)] = Field(
        default_factory=now_utc_ms, description="simulated start time, ISO 8601 with zone (unset: now, UTC)"
    )
    seed: int = Field(0, description="random seed: same seed and --start, same bytes")
    count: Count | None = Field(None, description="stop after this many events (unset: no limit)")
    duration_s: Positive | None = Field(
        None,
        alias="duration",
        description="stop after this many simulated seconds (unset: run until Ctrl-C)",
    )
    scenarios: Annotated[tuple[str, ...], NoDecode, _listed(parse_scenarios)] = Field(
        SCENARIOS, description=f"comma-separated scenarios, 'all' or 'none': {', '.join(SCENARIOS)}"
    )
    scenario_start_round: Count = Field(
        5, description="normal rounds (each source reports once) before the first scenario"
    )
    scenario_period_rounds: Count = Field(
        0, alias="scenario_period", description="repeat the condition scenarios every N rounds (0: once)"
    )
    silence_s: Positive | None = Field(
        None,
        alias="silence",
        description="simulated seconds the silent device is quiet (unset: twice the inactivity timeout)",
    )
    malformed_share: Share = Field(0.01, description="share of malformed events")
    late_share: Share = Field(0.005, description="share of late events")
    lateness_s: Positive = Field(120.0, alias="lateness", description="how late late events are, seconds")
    out_of_order_share: Share = Field(0.02, description="share of out-of-order events")
    jitter_s: Positive = Field(3.0, alias="jitter", description="out-of-order jitter, seconds")
    thresholds: Thresholds = Field(default_factory=Thresholds)

    @model_validator(mode="after")
    def _consistent(self) -> SimConfig:
        problems = []
        if self.malformed_share + self.late_share + self.out_of_order_share > 1:
            problems.append("malformed, late and out-of-order shares add up to more than 1")
        if self.scenario_period_rounds and self.scenario_period_rounds < 60:
            problems.append("scenario period must be 0 (once) or at least 60 rounds, so scenarios do not overlap")
        try:
            TypeAdapter(Identifier).validate_python(self.fleet_id)
        except ValidationError:
            problems.append(f"fleet id {self.fleet_id!r} is not an identifier (letters, digits, . _ : -)")
        parse_families(",".join(self.families))
        parse_scenarios(",".join(self.scenarios) or "none")
        if not self.sources_in_families():
            problems.append("no sources: every selected family has zero vehicles/devices")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def wants(self, family: str) -> bool:
        return family in self.families

    def sources_in_families(self) -> int:
        vehicle_families = {"tire.reading", "vehicle.telemetry", "perception.event", "driving.event", "trip"}
        total = self.vehicles if vehicle_families & set(self.families) else 0
        if self.wants("building.reading"):
            total += self.sites * self.zones * self.devices_per_zone
        if self.wants("device.heartbeat"):
            total += self.heartbeat_devices
        return total
