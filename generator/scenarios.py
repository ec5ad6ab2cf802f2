"""Scenarios and what they promise.

A condition scenario drives one source (a vehicle, a building zone, a heartbeat device) into a
condition an alarm must catch and back out of it, with magnitudes taken from the alarm rules in
`contracts.thresholds` (never literal thresholds). Perturbation scenarios damage a share of
ordinary events instead (malformed payloads, late and out-of-order event times); they never touch
a scenario's own source, so the promised alarms stay exact.

What a run promises is computed from what it really emits, so it is exact to the millisecond:

    from generator.simulator import expectations
    promised = expectations(config)          # dry run of a bounded config, nothing is sent
    promised.alerts      # [AlertExpectation(source_id, alert_type, raised_at, cleared_at, ...)]
    promised.silences    # [SilenceExpectation(device_id, last_seen, returned_at, timeout_s)]
    promised.malformed   # [MalformedExpectation(index, topic, key, reason, field)]
    promised.late, promised.out_of_order, promised.driving, promised.events_per_topic,
    promised.assignments (scenario -> source ids), promised.legacy_heartbeat_devices

A live run collects the same object as it goes (`Simulator.expectations()`; CLI `--expectations-out`).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Protocol

from contracts.events import DrivingEventType, ObjectClass, format_time
from contracts.records import AlertType
from contracts.thresholds import Rule
from generator.clock import from_ms
from generator.config import CONDITION_SCENARIOS, SimConfig
from generator.fleet import HeartbeatDevice, Vehicle, Zone

RAMP_ROUNDS = 10
HOLD_ROUNDS = 6
LENGTH_ROUNDS = 2 * RAMP_ROUNDS + HOLD_ROUNDS + 1
STAGGER_ROUNDS = 3
"""Shape of every condition scenario, in rounds: ramp into the condition, hold it, ramp out."""


# ---------------------------------------------------------------------------- what is promised


@dataclass(frozen=True)
class AlertExpectation:
    """`alert_type` raised on `source_id` by the reading at `raised_at`, cleared by the reading
    at `cleared_at` (None: still active when the run ended). `detail` narrows the source
    (tire position, zone). For device_inactive, `raised_at` is the earliest instant the device
    counts as silent (last heartbeat + timeout); a job evaluating every N s raises it up to N s later."""

    scenario: str
    source_id: str
    alert_type: AlertType
    raised_at: datetime
    cleared_at: datetime | None
    detail: str = ""


@dataclass(frozen=True)
class SilenceExpectation:
    device_id: str
    last_seen: datetime
    returned_at: datetime | None
    timeout_s: float


@dataclass(frozen=True)
class MalformedExpectation:
    index: int
    """Position of the payload in the run's output (0-based)."""
    topic: str
    key: str
    reason: str
    field: str | None
    """What contracts.parse_event names as the offending field (None: the payload as a whole)."""


@dataclass(frozen=True)
class ShiftedExpectation:
    """An event emitted with an event time earlier than the simulated clock (late or out of order)."""

    event_id: str
    topic: str
    source_id: str
    event_time: datetime
    emitted_at: datetime


@dataclass
class DrivingCounts:
    interventions: int = 0
    disengagements: int = 0


@dataclass
class Expectations:
    alerts: list[AlertExpectation] = field(default_factory=list)
    silences: list[SilenceExpectation] = field(default_factory=list)
    malformed: list[MalformedExpectation] = field(default_factory=list)
    late: list[ShiftedExpectation] = field(default_factory=list)
    out_of_order: list[ShiftedExpectation] = field(default_factory=list)
    driving: dict[str, DrivingCounts] = field(default_factory=dict)
    events_per_topic: dict[str, int] = field(default_factory=dict)
    assignments: dict[str, list[str]] = field(default_factory=dict)
    """Scenario name -> the source ids it drives."""
    legacy_heartbeat_devices: list[str] = field(default_factory=list)
    """Heartbeat devices sending the legacy {"event-id","device-id","time"} form."""

    @property
    def malformed_by_reason(self) -> dict[str, int]:
        return dict(Counter(item.reason for item in self.malformed))

    def alerts_for(self, source_id: str) -> list[AlertExpectation]:
        return [alert for alert in self.alerts if alert.source_id == source_id]

    def to_dict(self) -> dict:
        def convert(value):
            if isinstance(value, datetime):
                return format_time(value)
            if isinstance(value, dict):
                return {key: convert(item) for key, item in value.items()}
            if isinstance(value, list):
                return [convert(item) for item in value]
            return value

        document = convert(asdict(self))
        document["malformed_by_reason"] = self.malformed_by_reason
        return document


# ---------------------------------------------------------------------------- the scenarios


class World(Protocol):
    """What a scenario drives: the simulated sources, the planning random stream and the clock.
    generator.simulator.Simulator is one; scenarios know it only by this shape, so the simulator
    imports them and not the other way round."""

    vehicles: dict[str, Vehicle]
    zones: dict[str, Zone]
    heartbeats: dict[str, HeartbeatDevice]
    plan_rng: random.Random

    def now_ms(self) -> int: ...


@dataclass
class Scenario:
    name: str
    target: str
    """Source id the scenario drives (a zone id for co2-spike: all its devices)."""
    start_round: int
    period: int
    rule: Rule | None = None
    detail: str = ""

    def phase(self, round_index: int) -> int | None:
        offset = round_index - self.start_round
        if offset < 0:
            return None
        if self.period:
            offset %= self.period
        return offset if offset < LENGTH_ROUNDS else None

    def apply(self, sim: World, phase: int | None) -> None:
        raise NotImplementedError


def _ramp(phase: int, start: float, peak: float, end: float) -> float:
    """Ramp from start to peak, hold, ramp to end: the shape of every condition scenario."""
    if phase < RAMP_ROUNDS:
        return start + (peak - start) * (phase + 1) / RAMP_ROUNDS
    if phase < RAMP_ROUNDS + HOLD_ROUNDS:
        return peak
    return peak + (end - peak) * (phase - RAMP_ROUNDS - HOLD_ROUNDS + 1) / (RAMP_ROUNDS + 1)


class TireLeak(Scenario):
    """One tire loses air until its (hot) pressure is well under the low-pressure threshold, is
    then re-inflated in the workshop."""

    def apply(self, sim: World, phase: int | None) -> None:
        vehicle, tire = sim.vehicles[self.target], 0
        if phase is None:
            return
        if phase == 0:
            self._nominal = vehicle.tire_cold[tire]
        # Cold target such that even a 60 C tire reads 10% under the threshold.
        low = self.rule.threshold * 0.9 * 293.15 / 333.15
        if phase < RAMP_ROUNDS + HOLD_ROUNDS:
            vehicle.tire_cold[tire] = _ramp(phase, self._nominal, low, low)
        else:
            vehicle.tire_cold[tire] = self._nominal


class Overheating(Scenario):
    """One tire heats 10 C past the temperature threshold, then cools 10 C below its clear level."""

    def apply(self, sim: World, phase: int | None) -> None:
        vehicle = sim.vehicles[self.target]
        if phase is None:
            vehicle.tire_temp_override[0] = None
            return
        if phase == 0:
            self._base = vehicle.tire_temp[0]
        peak, cool = self.rule.threshold + 10.0, min(self._base, self.rule.clear - 10.0)
        vehicle.tire_temp_override[0] = round(_ramp(phase, self._base, peak, cool), 1)


class Speeding(Scenario):
    """The driver creeps 15 km/h over the limit and then back to 10 km/h under it."""

    def apply(self, sim: World, phase: int | None) -> None:
        vehicle = sim.vehicles[self.target]
        if phase is None:
            vehicle.speed_over_override = None
            return
        peak = self.rule.threshold + 15.0
        vehicle.speed_over_override = _ramp(phase, self.rule.clear - 5.0, peak, self.rule.clear - 5.0)


class BatteryDrain(Scenario):
    """A failing cell drains the battery 5 points under the low-battery threshold, then the
    vehicle charges to 10 points over the clear level."""

    def apply(self, sim: World, phase: int | None) -> None:
        vehicle = sim.vehicles[self.target]
        if phase is None:
            if vehicle.battery_override is not None:
                vehicle.battery_override, vehicle.charging = None, False
            return
        if phase == 0:
            self._start = max(vehicle.battery, self.rule.clear + 10.0)
        low, charged = self.rule.threshold - 5.0, self.rule.clear + 10.0
        vehicle.battery_override = _ramp(phase, self._start, low, charged)
        vehicle.charging = phase >= RAMP_ROUNDS  # standing still while it recovers


class CollisionRisk(Scenario):
    """A pedestrian ahead closes in at 10 m/s down to half the time-to-collision threshold, then
    the vehicle pulls away."""

    def apply(self, sim: World, phase: int | None) -> None:
        vehicle = sim.vehicles[self.target]
        if phase is None:
            vehicle.perception_override = None
            return
        closing_mps = 10.0
        if phase < RAMP_ROUNDS + HOLD_ROUNDS:
            ttc = _ramp(phase, self.rule.clear * 2.0, self.rule.threshold * 0.5, self.rule.threshold * 0.5)
            vehicle.perception_override = (ObjectClass.PEDESTRIAN, ttc * closing_mps, -closing_mps)
        else:
            distance = 5.0 + 3.0 * (phase - RAMP_ROUNDS - HOLD_ROUNDS + 1)
            vehicle.perception_override = (ObjectClass.PEDESTRIAN, distance, 3.0)


class Interventions(Scenario):
    """A bad stretch of road: three interventions and a disengagement (autopilot off after it)."""

    SCRIPT = {
        2: (DrivingEventType.INTERVENTION, "construction zone"),
        6: (DrivingEventType.INTERVENTION, "unprotected left turn"),
        8: (DrivingEventType.DISENGAGEMENT, "sensor degraded"),
        12: (DrivingEventType.INTERVENTION, "driver took over"),
    }

    def apply(self, sim: World, phase: int | None) -> None:
        if phase in self.SCRIPT:
            sim.vehicles[self.target].pending_driving.append(self.SCRIPT[phase])


class Co2Spike(Scenario):
    """A crowded meeting: one zone's CO2 rises 200 ppm over the threshold, then ventilation
    brings it 100 ppm under the clear level."""

    def apply(self, sim: World, phase: int | None) -> None:
        zone = sim.zones[self.target]
        if phase is None:
            zone.co2_override = None
            return
        peak, fresh = self.rule.threshold + 200.0, self.rule.clear - 100.0
        zone.co2_override = round(_ramp(phase, fresh, peak, fresh), 1)


class SilentDevice(Scenario):
    """A heartbeat device goes quiet for `silence_s` simulated seconds, then comes back."""

    silence_ms: int = 0

    def apply(self, sim: World, phase: int | None) -> None:
        if phase == 0:
            sim.heartbeats[self.target].silent_until_ms = sim.now_ms() + self.silence_ms


_SCENARIO_CLASSES: dict[str, tuple[type[Scenario], AlertType | None, str]] = {
    "tire-leak": (TireLeak, AlertType.TIRE_PRESSURE_LOW, "vehicle"),
    "overheating": (Overheating, AlertType.TIRE_TEMPERATURE_HIGH, "vehicle"),
    "speeding": (Speeding, AlertType.SPEEDING, "vehicle"),
    "battery-drain": (BatteryDrain, AlertType.BATTERY_LOW, "vehicle"),
    "collision-risk": (CollisionRisk, AlertType.COLLISION_RISK, "vehicle"),
    "interventions": (Interventions, None, "vehicle"),
    "co2-spike": (Co2Spike, AlertType.CO2_HIGH, "zone"),
    "silent-device": (SilentDevice, AlertType.DEVICE_INACTIVE, "heartbeat"),
}
SCENARIO_ALERTS: dict[str, AlertType | None] = {name: spec[1] for name, spec in _SCENARIO_CLASSES.items()}
"""Which alarm each condition scenario promises (interventions feed KPIs, not an alarm)."""

_FAMILY_OF_KIND = {
    "tire-leak": "tire.reading",
    "overheating": "tire.reading",
    "speeding": "vehicle.telemetry",
    "battery-drain": "vehicle.telemetry",
    "collision-risk": "perception.event",
    "interventions": "driving.event",
    "co2-spike": "building.reading",
    "silent-device": "device.heartbeat",
}


def build_scenarios(config: SimConfig, sim: World) -> list[Scenario]:
    """Assign each selected condition scenario a target, spreading them over distinct sources."""
    chosen = [name for name in CONDITION_SCENARIOS if name in config.scenarios]
    pools = {
        "vehicle": list(sim.vehicles),
        "zone": list(sim.zones),
        "heartbeat": list(sim.heartbeats),
    }
    for pool in pools.values():
        sim.plan_rng.shuffle(pool)
    used = Counter()
    scenarios = []
    for position, name in enumerate(chosen):
        cls, alert_type, kind = _SCENARIO_CLASSES[name]
        pool = pools[kind]
        if not pool or not config.wants(_FAMILY_OF_KIND[name]):
            continue  # nothing to drive: the family or its sources are not simulated
        target = pool[used[kind] % len(pool)]
        used[kind] += 1
        rule = None
        if alert_type is not None and alert_type != AlertType.DEVICE_INACTIVE:
            rule = config.thresholds.rule_for(alert_type, config.fleet_id, _rule_source(target, sim))
        scenario = cls(
            name=name,
            target=target,
            start_round=config.scenario_start_round + position * STAGGER_ROUNDS,
            period=config.scenario_period_rounds,
            rule=rule,
        )
        if isinstance(scenario, SilentDevice):
            timeout = config.thresholds.inactivity.timeout_s
            scenario.silence_ms = int((config.silence_s or 2 * timeout) * 1000)
        scenarios.append(scenario)
    return scenarios


def _rule_source(target: str, sim: World) -> str:
    zone = sim.zones.get(target)
    return zone.device_ids[0] if zone else target


# ---------------------------------------------------------------------------- the oracle


class ExpectationTracker:
    """Evaluates the scenario sources' emitted readings against their rules (with hysteresis)
    as they are emitted, so the promises match the output exactly."""

    def __init__(self, config: SimConfig, scenarios: list[Scenario], zones: dict):
        self.config = config
        self.result = Expectations()
        self.watch: dict[str, list[tuple[Scenario, AlertType, Rule | None]]] = {}
        self._open: dict[tuple[str, AlertType, str], int] = {}
        self._last_heartbeat: dict[str, int] = {}
        self.timeout_ms = int(config.thresholds.inactivity.timeout_s * 1000)
        for scenario in scenarios:
            sources = zones[scenario.target].device_ids if scenario.name == "co2-spike" else [scenario.target]
            self.result.assignments.setdefault(scenario.name, []).extend(sources)
            alert_type = SCENARIO_ALERTS[scenario.name]
            if alert_type is not None:
                for source in sources:
                    rule = None
                    if alert_type != AlertType.DEVICE_INACTIVE:
                        rule = config.thresholds.rule_for(alert_type, config.fleet_id, source)
                    self.watch.setdefault(source, []).append((scenario, alert_type, rule))

    def observe(self, family: str, source_id: str, ms: int, fields: tuple) -> None:
        for scenario, alert_type, rule in self.watch[source_id]:
            if alert_type == AlertType.DEVICE_INACTIVE:
                if family == "device.heartbeat":
                    self._heartbeat(scenario, source_id, ms)
                continue
            reading = _metric(alert_type, family, fields, self.config.thresholds.speed_limit_kmh)
            if reading is None:
                continue
            value, detail = reading
            key = (source_id, alert_type, detail)
            if key not in self._open and rule.breached(value):
                self._open[key] = ms
            elif key in self._open and rule.recovered(value):
                self._close(scenario.name, key, ms)

    def _close(self, scenario: str, key: tuple[str, AlertType, str], cleared_ms: int | None) -> None:
        raised_ms = self._open.pop(key)
        source_id, alert_type, detail = key
        cleared = from_ms(cleared_ms) if cleared_ms is not None else None
        self.result.alerts.append(
            AlertExpectation(scenario, source_id, alert_type, from_ms(raised_ms), cleared, detail)
        )

    def _heartbeat(self, scenario: Scenario, device_id: str, ms: int) -> None:
        last = self._last_heartbeat.get(device_id)
        if last is not None and ms - last > self.timeout_ms:
            self._silence(scenario.name, device_id, last, ms)
        self._last_heartbeat[device_id] = ms

    def _silence(self, scenario: str, device_id: str, last: int, returned: int | None) -> None:
        returned_at = from_ms(returned) if returned is not None else None
        timeout_s = self.timeout_ms / 1000
        self.result.silences.append(SilenceExpectation(device_id, from_ms(last), returned_at, timeout_s))
        self.result.alerts.append(
            AlertExpectation(
                scenario, device_id, AlertType.DEVICE_INACTIVE, from_ms(last + self.timeout_ms), returned_at
            )
        )

    def finish(self, now_ms: int, scenario_of: dict[str, str]) -> Expectations:
        """Close the books at the end of the run: open alarms stay open (cleared_at None)."""
        for key in list(self._open):
            self._close(scenario_of.get(key[0], ""), key, None)
        for device_id, last in self._last_heartbeat.items():
            if now_ms - last > self.timeout_ms:
                self._silence(scenario_of.get(device_id, ""), device_id, last, None)
        self._last_heartbeat.clear()
        self.result.alerts.sort(key=lambda alert: (alert.raised_at, alert.source_id, alert.alert_type))
        return self.result


def _metric(alert_type: AlertType, family: str, fields: tuple, default_limit: float) -> tuple[float, str] | None:
    """The rule's metric from one event's fields (see contracts.thresholds.DERIVED_METRICS)."""
    if family == "tire.reading" and alert_type == AlertType.TIRE_PRESSURE_LOW:
        return fields[1], str(fields[0])
    if family == "tire.reading" and alert_type == AlertType.TIRE_TEMPERATURE_HIGH:
        return fields[2], str(fields[0])
    if family == "vehicle.telemetry" and alert_type == AlertType.SPEEDING:
        limit = fields[1] if fields[1] is not None else default_limit
        return fields[0] - limit, ""
    if family == "vehicle.telemetry" and alert_type == AlertType.BATTERY_LOW:
        return fields[4], ""
    if family == "perception.event" and alert_type == AlertType.COLLISION_RISK:
        distance, relative = fields[1], fields[2]
        return (distance / -relative if relative < 0 else math.inf), ""
    if family == "building.reading" and alert_type == AlertType.CO2_HIGH:
        return fields[2], str(fields[1])
    return None
