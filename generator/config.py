"""What one simulator run looks like: fleet size, families, rate, clock, seed and scenarios."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import TypeAdapter, ValidationError

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


@dataclass(frozen=True)
class SimConfig:
    vehicles: int = 10
    sites: int = 2
    zones: int = 3
    devices_per_zone: int = 2
    heartbeat_devices: int = 10
    legacy_heartbeat_share: float = 0.3
    """Share of heartbeat devices that send the legacy {"event-id","device-id","time"} form."""
    families: tuple[str, ...] = FAMILIES
    rate: float = 5.0
    """Events per second: the simulated clock advances 1/rate per event, and pacing follows it."""
    start: datetime = field(default_factory=now_utc_ms)
    seed: int = 0
    count: int | None = None
    """Stop after this many events (None: no limit)."""
    duration_s: float | None = None
    """Stop once the simulated clock has advanced this far (None: no limit)."""
    fleet_id: str = "default"
    scenarios: tuple[str, ...] = SCENARIOS
    scenario_start_round: int = 5
    """Rounds of normal running before the first scenario begins (each round every source reports once)."""
    scenario_period_rounds: int = 0
    """Repeat the condition scenarios every this many rounds (0: once)."""
    silence_s: float | None = None
    """How long the silent device stays quiet, simulated seconds (None: twice the inactivity timeout)."""
    malformed_share: float = 0.01
    late_share: float = 0.005
    lateness_s: float = 120.0
    out_of_order_share: float = 0.02
    jitter_s: float = 3.0
    thresholds: Thresholds = field(default_factory=Thresholds)

    def __post_init__(self) -> None:
        problems = []
        for name in ("vehicles", "sites", "zones", "devices_per_zone", "heartbeat_devices"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.rate > 0:
            problems.append(f"rate must be > 0 events/s, got {self.rate}")
        for name in ("legacy_heartbeat_share", "malformed_share", "late_share", "out_of_order_share"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.malformed_share + self.late_share + self.out_of_order_share > 1:
            problems.append("malformed, late and out-of-order shares add up to more than 1")
        if self.count is not None and self.count < 0:
            problems.append(f"count must be >= 0, got {self.count}")
        if self.duration_s is not None and self.duration_s < 0:
            problems.append(f"duration must be >= 0 s, got {self.duration_s}")
        if self.start.tzinfo is None:
            problems.append("start must carry a timezone (e.g. 2026-01-01T00:00:00Z)")
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
