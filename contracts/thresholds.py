"""Alarm rules and their thresholds: defaults in DEFAULT_RULES, overridable per fleet and per source.

Thresholds are configuration. `Thresholds.load()` reads a YAML/JSON document of the form

    defaults:   {co2_high: {threshold: 1200}}
    fleets:     {fleet-a: {tire_pressure_low: {threshold: 210, clear: 220}}}
    sources:    {vehicle-0007: {speeding: {threshold: 5}}}
    inactivity: {timeout_s: 60, check_interval_s: 30}

and `rule_for(alert_type, fleet_id, source_id)` resolves source > fleet > defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.records import AlertSeverity, AlertType

Comparison = Literal["<", ">"]


class Rule(BaseModel):
    """Raise when `value op threshold`; clear only once the value is back past `clear`
    (hysteresis, so a value hovering at the threshold does not flap)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_type: AlertType
    schema_name: str = Field(description="Event family the rule reads.")
    metric: str = Field(description="Field of the event, or a derived metric named in DERIVED_METRICS.")
    op: Comparison
    threshold: float
    clear: float
    severity: AlertSeverity

    @model_validator(mode="after")
    def _clear_is_inside_bounds(self) -> Rule:
        inside = self.clear >= self.threshold if self.op == "<" else self.clear <= self.threshold
        if not inside:
            side = "at or above" if self.op == "<" else "at or below"
            raise ValueError(f"{self.alert_type}: clear ({self.clear}) must be {side} threshold ({self.threshold})")
        return self

    def breached(self, value: float) -> bool:
        return value < self.threshold if self.op == "<" else value > self.threshold

    def recovered(self, value: float) -> bool:
        return value >= self.clear if self.op == "<" else value <= self.clear


DEFAULT_SPEED_LIMIT_KMH = 120.0
"""Limit assumed where telemetry carries no posted limit."""

DERIVED_METRICS: dict[str, str] = {
    "speed_over_limit_kmh": "speed_kmh - coalesce(speed_limit_kmh, DEFAULT_SPEED_LIMIT_KMH)",
    "time_to_collision_s": "distance_m / -relative_speed_mps while closing (relative_speed_mps < 0), else no risk",
}

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        alert_type=AlertType.TIRE_PRESSURE_LOW,
        schema_name="tire.reading",
        metric="pressure_kpa",
        op="<",
        threshold=200,
        clear=210,
        severity=AlertSeverity.CRITICAL,
    ),
    Rule(
        alert_type=AlertType.TIRE_TEMPERATURE_HIGH,
        schema_name="tire.reading",
        metric="temperature_c",
        op=">",
        threshold=90,
        clear=85,
        severity=AlertSeverity.WARNING,
    ),
    Rule(
        alert_type=AlertType.SPEEDING,
        schema_name="vehicle.telemetry",
        metric="speed_over_limit_kmh",
        op=">",
        threshold=0,
        clear=-5,
        severity=AlertSeverity.WARNING,
    ),
    Rule(
        alert_type=AlertType.BATTERY_LOW,
        schema_name="vehicle.telemetry",
        metric="battery_pct",
        op="<",
        threshold=15,
        clear=20,
        severity=AlertSeverity.WARNING,
    ),
    Rule(
        alert_type=AlertType.COLLISION_RISK,
        schema_name="perception.event",
        metric="time_to_collision_s",
        op="<",
        threshold=2.0,
        clear=3.0,
        severity=AlertSeverity.CRITICAL,
    ),
    Rule(
        alert_type=AlertType.CO2_HIGH,
        schema_name="building.reading",
        metric="co2_ppm",
        op=">",
        threshold=1000,
        clear=900,
        severity=AlertSeverity.WARNING,
    ),
    Rule(
        alert_type=AlertType.TEMPERATURE_HIGH,
        schema_name="building.reading",
        metric="temperature_c",
        op=">",
        threshold=30,
        clear=29,
        severity=AlertSeverity.WARNING,
    ),
    Rule(
        alert_type=AlertType.HUMIDITY_HIGH,
        schema_name="building.reading",
        metric="humidity_pct",
        op=">",
        threshold=80,
        clear=75,
        severity=AlertSeverity.INFO,
    ),
)


class RuleOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float | None = None
    clear: float | None = None
    severity: AlertSeverity | None = None


class Inactivity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(default=60, gt=0)
    check_interval_s: float = Field(default=30, gt=0, le=30)


OverrideSet = dict[AlertType, RuleOverride]


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: OverrideSet = Field(default_factory=dict)
    fleets: dict[str, OverrideSet] = Field(default_factory=dict)
    sources: dict[str, OverrideSet] = Field(default_factory=dict)
    inactivity: Inactivity = Field(default_factory=Inactivity)
    speed_limit_kmh: float = Field(default=DEFAULT_SPEED_LIMIT_KMH, gt=0)

    @model_validator(mode="after")
    def _every_override_is_consistent(self) -> Thresholds:
        # Resolving every layer runs Rule's own check that clear sits inside the threshold.
        for fleet in [None, *self.fleets]:
            self.rules(fleet_id=fleet)
        for source in self.sources:
            self.rules(source_id=source)
        return self

    @classmethod
    def load(cls, path: str | Path | None) -> Thresholds:
        """Read a thresholds file (YAML or JSON); None gives the defaults."""
        if path is None:
            return cls()
        document = yaml.safe_load(Path(path).read_text()) or {}
        return cls.model_validate(document)

    def rule_for(self, alert_type: AlertType, fleet_id: str | None = None, source_id: str | None = None) -> Rule:
        base = _DEFAULTS_BY_TYPE[AlertType(alert_type)]
        layers = [self.defaults, self.fleets.get(fleet_id or "", {}), self.sources.get(source_id or "", {})]
        changes: dict = {}
        for layer in layers:
            override = layer.get(base.alert_type)
            if override is not None:
                changes.update(override.model_dump(exclude_none=True))
        if not changes:
            return base
        if "threshold" in changes and "clear" not in changes:
            changes["clear"] = changes["threshold"] + (base.clear - base.threshold)
        return Rule.model_validate(base.model_dump() | changes)

    def rules(self, fleet_id: str | None = None, source_id: str | None = None) -> list[Rule]:
        return [self.rule_for(rule.alert_type, fleet_id, source_id) for rule in DEFAULT_RULES]


_DEFAULTS_BY_TYPE: dict[AlertType, Rule] = {rule.alert_type: rule for rule in DEFAULT_RULES}
