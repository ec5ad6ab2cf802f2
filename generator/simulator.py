"""The simulation engine: one round at a time, every source reports once per round.

`next_batch()` returns the round's output as (topic, key, payload) tuples, ready for any sink.
Event k carries event_time `start + k / rate` and event_id `e<seed>-<k>`, so the same config
gives byte-identical output. Perturbations draw from their own random stream: turning them on
changes only the perturbed events.

Speed: each source's events go through a `Channel`, a format string derived from the contract
model with the source's constant fields baked in (see encoding.Template.bind). The hot path is a
single %-format per event (the event time's text is made once per millisecond); anything unusual
(a scenario's source, a perturbed event, --validate) first goes through `_emit_special`, which
builds the full field set.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter

from contracts.events import AutopilotState, DrivingEventType
from contracts.topics import EVENT_TOPICS
from generator.clock import SimClock, from_ms
from generator.config import SimConfig
from generator.encoding import Template, legacy_heartbeat, reference_json
from generator.fleet import HeartbeatDevice, Vehicle, Zone
from generator.scenarios import (
    DrivingCounts,
    Expectations,
    ExpectationTracker,
    MalformedExpectation,
    ShiftedExpectation,
)
from generator.scenarios import build_scenarios as _build_scenarios

ENVELOPE = ("event_id", "source_id", "event_time", "fleet_id")
FAMILY_FIELDS: dict[str, tuple[str, ...]] = {
    "tire.reading": ("tire_position", "pressure_kpa", "temperature_c"),
    "vehicle.telemetry": (
        "speed_kmh",
        "speed_limit_kmh",
        "latitude",
        "longitude",
        "battery_pct",
        "odometer_km",
        "autopilot_state",
    ),
    "perception.event": ("object_class", "distance_m", "relative_speed_mps"),
    "driving.event": ("event_type", "odometer_km", "reason"),
    "building.reading": ("site_id", "zone_id", "co2_ppm", "temperature_c", "humidity_pct", "occupancy"),
    "device.heartbeat": ("timeout_s",),
    "trip": ("trip_id", "region_id", "fare", "duration_s", "distance_km"),
}
ONE_DECIMAL_FIELDS = frozenset(
    {
        "pressure_kpa",
        "temperature_c",
        "speed_kmh",
        "battery_pct",
        "odometer_km",
        "distance_m",
        "relative_speed_mps",
        "co2_ppm",
        "humidity_pct",
        "duration_s",
        "distance_km",
    }
)
"""Float fields sent with one decimal (the template rounds them); the rest are rounded by the caller."""
ALWAYS_PRESENT = frozenset({"speed_limit_kmh"})
"""Optional in the contract, but every simulated vehicle knows its limit: formatted as a float."""
TEMPLATES = {
    family: Template(family, ENVELOPE + fields, ONE_DECIMAL_FIELDS & set(fields), ALWAYS_PRESENT & set(fields))
    for family, fields in FAMILY_FIELDS.items()
}
OPTIONAL_FIELDS = frozenset({"reason", "timeout_s"})

PERTURBABLE = frozenset({"tire.reading", "vehicle.telemetry", "perception.event", "building.reading", "trip"})
"""Driving events and heartbeats stay intact: their counts and gaps are promised exactly."""
MALFORMED_REASONS = ("not_json", "missing_field", "wrong_type", "out_of_range", "unknown_schema")
CORRUPTED_FIELD = {
    "tire.reading": "pressure_kpa",
    "vehicle.telemetry": "speed_kmh",
    "perception.event": "distance_m",
    "building.reading": "co2_ppm",
    "trip": "fare",
}


class Channel:
    """One source's stream of one family: topic, key and a format string with its constants."""

    __slots__ = (
        "_optional_at",
        "constants",
        "family",
        "format",
        "format_needs_encoding",
        "key",
        "legacy",
        "slow",
        "topic",
        "variables",
    )

    def __init__(self, family: str, source_id: str, fleet_id: str, id_prefix: str, *, constants: dict, legacy=False):
        self.family, self.key, self.topic, self.legacy = family, source_id, EVENT_TOPICS[family], legacy
        self.constants = {"source_id": source_id, "fleet_id": fleet_id, **constants}
        self.variables = tuple(name for name in FAMILY_FIELDS[family] if name not in constants)
        self.slow = False
        encoded = {name: _encode(name, value) for name, value in self.constants.items()}
        if legacy:  # the legacy heartbeat's own wire form (integer epoch seconds), built the same way
            self.format = '{"event-id":"' + id_prefix + '%d","device-id":"' + source_id + '","time":%s}'
        else:
            self.format = TEMPLATES[family].bind(id_prefix, encoded)
        self._optional_at = tuple(i for i, name in enumerate(self.variables) if name in OPTIONAL_FIELDS)
        self.format_needs_encoding = bool(self._optional_at)

    def fields(self, values: tuple) -> tuple:
        """The family's full field tuple (FAMILY_FIELDS order) from this channel's variable values."""
        merged = dict(zip(self.variables, values, strict=True))
        return tuple(merged[name] if name in merged else self.constants[name] for name in FAMILY_FIELDS[self.family])

    def encode(self, values: tuple) -> list:
        """Values with the optional fields encoded as the format expects (null, a number, a string)."""
        encoded = list(values)
        for i in self._optional_at:
            encoded[i] = _encode(self.variables[i], encoded[i])
        return encoded


def _encode(name: str, value):
    if name in OPTIONAL_FIELDS:
        if value is None:
            return "null"
        return json.dumps(value) if isinstance(value, str) else repr(value)
    return value


class Simulator:
    def __init__(self, config: SimConfig, validate: bool = False):
        self.config = config
        self.validate = validate
        self.rng = random.Random(config.seed)
        self.plan_rng = random.Random(f"plan-{config.seed}")
        self.perturb_rng = random.Random(f"perturb-{config.seed}")
        self.clock = SimClock(config.start, config.rate)
        self.index = 0
        self.round = 0
        self.per_topic: Counter[str] = Counter()
        self.limit = _limit(config)
        self.done = self.limit == 0
        self._id_prefix = f"e{config.seed}-"
        self._build_sources()
        self.scenarios = _build_scenarios(config, self)
        self.tracker = ExpectationTracker(config, self.scenarios, self.zones)
        self._build_channels()
        self._shares = self._perturbation_shares()
        self._round_start_ms = self.clock.start_ms
        self._stamp, self._stamp_until = "", 0  # event time text, valid for indices below _stamp_until
        self._next_perturbation = self._schedule_perturbation(-1)
        self._out: list[tuple[str, str, str]] = []
        self._records: list[tuple[Channel, tuple]] = []

    # ------------------------------------------------------------------ set-up

    def _build_sources(self) -> None:
        config = self.config
        vehicle_families = {"tire.reading", "vehicle.telemetry", "perception.event", "driving.event", "trip"}
        vehicles = config.vehicles if vehicle_families & set(config.families) else 0
        self.vehicles = {v.id: v for v in (Vehicle(i, self.rng) for i in range(vehicles))}
        self.zones: dict[str, Zone] = {}
        if config.wants("building.reading"):
            for site in range(config.sites):
                for zone in range(config.zones):
                    built = Zone(site, zone, config.devices_per_zone)
                    self.zones[built.id] = built
        self.heartbeats: dict[str, HeartbeatDevice] = {}
        if config.wants("device.heartbeat"):
            legacy_count = round(config.heartbeat_devices * config.legacy_heartbeat_share)
            legacy = set(self.plan_rng.sample(range(config.heartbeat_devices), legacy_count))
            for i in range(config.heartbeat_devices):
                device = HeartbeatDevice(i, i in legacy)
                self.heartbeats[device.id] = device

    def _build_channels(self) -> None:
        def channel(family: str, source_id: str, constants: dict | None = None, legacy: bool = False) -> Channel:
            built = Channel(
                family, source_id, self.config.fleet_id, self._id_prefix, constants=constants or {}, legacy=legacy
            )
            # Driving events are rare and counted per vehicle, so they always take the special path;
            # so do legacy heartbeats, whose time is their own (whole epoch seconds).
            built.slow = self.validate or source_id in self.tracker.watch or family == "driving.event" or legacy
            return built

        self.channels: dict[str, dict[str, Channel]] = {}
        for vehicle in self.vehicles.values():
            self.channels[vehicle.id] = {
                family: channel(family, vehicle.id)
                for family in ("vehicle.telemetry", "perception.event", "driving.event", "trip")
            }
            self.channels[vehicle.id]["tires"] = [
                channel("tire.reading", vehicle.id, {"tire_position": code}) for code in vehicle.tire_codes
            ]
        for zone in self.zones.values():
            for device_id in zone.device_ids:
                constants = {"site_id": zone.site_id, "zone_id": zone.id}
                self.channels[device_id] = {"building.reading": channel("building.reading", device_id, constants)}
        for device in self.heartbeats.values():
            heartbeat = channel("device.heartbeat", device.id, {"timeout_s": None}, device.legacy)
            self.channels[device.id] = {"device.heartbeat": heartbeat}

    def _perturbation_shares(self) -> tuple[float, float, float]:
        """Cumulative thresholds for one uniform draw: malformed, then late, then out-of-order."""
        chosen = self.config.scenarios
        malformed = self.config.malformed_share if "malformed" in chosen else 0.0
        late = malformed + (self.config.late_share if "late" in chosen else 0.0)
        shifted = late + (self.config.out_of_order_share if "out-of-order" in chosen else 0.0)
        return malformed, late, shifted

    # ------------------------------------------------------------------ running

    def now_ms(self) -> int:
        return self.clock.ms_at(self.index)

    def due_s(self, index: int) -> float:
        """Wall seconds after the start at which event `index` is due in a paced run."""
        return index / self.config.rate

    def next_batch(self) -> list[tuple[str, str, str]]:
        """The next round's (topic, key, payload) tuples; empty once the run is complete."""
        if self.done:
            return []
        self._out = []
        now = self.now_ms()
        dt_s = (now - self._round_start_ms) / 1000.0 if self.round else 0.0
        self._round_start_ms = now
        for scenario in self.scenarios:
            scenario.apply(self, scenario.phase(self.round))
        self._records = []
        self._vehicles(dt_s)
        self._buildings(now)
        self._heartbeats()
        self.round += 1
        self._render(self._records)
        self.per_topic.update([topic for topic, _, _ in self._out])
        return self._out

    def _vehicles(self, dt_s: float) -> None:
        rng, emit = self.rng, self._records.append
        telemetry, tires, perception, trips = (
            self.config.wants(family) for family in ("vehicle.telemetry", "tire.reading", "perception.event", "trip")
        )
        for vehicle in self.vehicles.values():
            vehicle.step(dt_s, rng)
            channels = self.channels[vehicle.id]
            if telemetry:
                fields = (
                    vehicle.speed,
                    vehicle.limit,
                    round(vehicle.latitude, 5),
                    round(vehicle.longitude, 5),
                    vehicle.battery,
                    vehicle.odometer,
                    vehicle.autopilot,  # a StrEnum: formats as its value
                )
                emit((channels["vehicle.telemetry"], fields))
            if tires:
                self._records += zip(channels["tires"], vehicle.tire_readings(), strict=True)
            if perception:
                object_class, distance, relative = vehicle.perception(rng)
                emit((channels["perception.event"], (object_class, distance, relative)))
            self._driving(vehicle, channels["driving.event"])
            if vehicle.trip_due(dt_s) and trips:
                trip_id, region, fare, duration, distance = vehicle.finish_trip()
                emit((channels["trip"], (trip_id, region, round(fare, 2), duration, distance)))

    def _driving(self, vehicle: Vehicle, channel: Channel) -> None:
        if self.rng.random() < 0.002 and vehicle.autopilot == AutopilotState.ENGAGED:
            vehicle.pending_driving.append((DrivingEventType.INTERVENTION, "driver took over"))
        if not self.config.wants("driving.event"):
            vehicle.pending_driving.clear()
            return
        for event_type, reason in vehicle.pending_driving:
            if event_type == DrivingEventType.DISENGAGEMENT:
                vehicle.autopilot = AutopilotState.OFF
            self._records.append((channel, (event_type.value, vehicle.odometer, reason)))
        vehicle.pending_driving.clear()

    def _buildings(self, now_ms: int) -> None:
        rng, emit = self.rng, self._records.append
        hour = (now_ms // 1000 % 86400) / 3600.0
        for zone in self.zones.values():
            zone.step(hour, rng)
            for device_id in zone.device_ids:
                fields = (zone.co2(rng), zone.temperature(rng), zone.humidity(rng), zone.occupancy)
                emit((self.channels[device_id]["building.reading"], fields))

    def _heartbeats(self) -> None:
        for device in self.heartbeats.values():
            if device.silent_until_ms is not None:
                if self.clock.ms_at(self.index + len(self._records)) < device.silent_until_ms:
                    continue
                device.silent_until_ms = None
            self._records.append((self.channels[device.id]["device.heartbeat"], ()))

    # ------------------------------------------------------------------ emitting one event

    def _render(self, records: list[tuple[Channel, tuple]]) -> None:
        """Number, time-stamp and format the round's events. The hot loop: locals only, and one
        comparison per event (`checkpoint`) for the rare work: a new millisecond's time text, the
        next perturbation, the end of the run."""
        append = self._out.append
        index, limit, stamp, stamp_until = self.index, self.limit, self._stamp, self._stamp_until
        next_special = self._next_perturbation
        checkpoint = min(stamp_until, next_special, limit)
        for channel, values in records:
            event_stamp = stamp
            if index >= checkpoint or channel.slow:
                if index >= limit:
                    break
                if index >= stamp_until:
                    stamp, stamp_until = self.clock.stamp(index)
                    event_stamp = stamp
                if channel.slow or index >= next_special:
                    event_stamp = self._emit_special(channel, values, index, stamp)
                    next_special = self._next_perturbation
                checkpoint = min(stamp_until, next_special, limit)
                if event_stamp is None:  # already out (malformed copy or --validate)
                    index += 1
                    continue
            encoded = channel.encode(values) if channel.format_needs_encoding else values
            append((channel.topic, channel.key, channel.format % (index, event_stamp, *encoded)))
            index += 1
        self.index, self._stamp, self._stamp_until = index, stamp, stamp_until
        if index >= limit:
            self.done = True

    def _emit_special(self, channel: Channel, values: tuple, index: int, stamp: str) -> str | None:
        """Scenario sources (observed by the oracle), perturbed events and --validate runs. Takes
        and returns the event time text for the fast path; None when the event is already out."""
        family, source_id = channel.family, channel.key
        if not (channel.slow or family in PERTURBABLE):
            return stamp  # the next perturbation waits for an event that can take it
        ms = regular_ms = self.clock.ms_at(index)
        if channel.legacy:  # a seed device's clock counts whole seconds (seed 003): the event's time is that
            ms = regular_ms = ms - ms % 1000
        fields = channel.fields(values)
        event_id = f"{self._id_prefix}{index}"
        if family == "driving.event":
            self._count_driving(source_id, fields[0])
        if source_id in self.tracker.watch:
            self.tracker.observe(family, source_id, ms, TEMPLATES[family].wire_values(fields))
        elif index >= self._next_perturbation and family in PERTURBABLE:
            self._next_perturbation = self._schedule_perturbation(index)
            roll = self.perturb_rng.random() * self._shares[2]
            if roll < self._shares[0]:
                valid = self._payload(channel, values, index, ms)
                self._out.append((channel.topic, source_id, self._malformed(index, channel, valid)))
                return None
            ms = self._shift(roll < self._shares[1], event_id, channel.topic, source_id, ms)
        if not self.validate:
            if channel.legacy:
                return str(ms // 1000)
            return stamp if ms == regular_ms else self.clock.text(ms)
        self._out.append((channel.topic, source_id, self._payload(channel, values, index, ms)))
        return None

    def _payload(self, channel: Channel, values: tuple, index: int, ms: int) -> str:
        """One event's JSON: through the contract model with --validate, else the channel's format."""
        if not self.validate:
            encoded = channel.encode(values) if channel.format_needs_encoding else values
            return channel.format % (index, self.clock.text(ms), *encoded)
        event_id = f"{self._id_prefix}{index}"
        if channel.legacy:
            return legacy_heartbeat(event_id, channel.key, ms // 1000)
        return reference_json(
            channel.family, self._as_dict(channel.family, event_id, channel.key, ms, channel.fields(values))
        )

    def _count_driving(self, vehicle_id: str, event_type: str) -> None:
        counts = self.tracker.result.driving.setdefault(vehicle_id, DrivingCounts())
        if event_type == DrivingEventType.INTERVENTION:
            counts.interventions += 1
        else:
            counts.disengagements += 1

    def _schedule_perturbation(self, index: int) -> float:
        """Index of the next perturbed event: geometric gaps give each event the configured share
        at one random draw per perturbation instead of one per event."""
        share = self._shares[2]
        if share <= 0:
            return math.inf
        if share >= 1:
            return index + 1
        return index + 1 + int(math.log(1.0 - self.perturb_rng.random()) / math.log(1.0 - share))

    def _as_dict(self, family: str, event_id: str, source_id: str, ms: int, fields: tuple) -> dict:
        envelope = (event_id, source_id, from_ms(ms), self.config.fleet_id)
        return dict(zip(TEMPLATES[family].fields, TEMPLATES[family].wire_values(envelope + fields), strict=True))

    def _shift(self, late: bool, event_id: str, topic: str, source_id: str, ms: int) -> int:
        if late:
            shifted = ms - int(self.config.lateness_s * 1000)
        else:
            shifted = ms - 1 - int(self.perturb_rng.random() * self.config.jitter_s * 1000)
        record = ShiftedExpectation(event_id, topic, source_id, from_ms(shifted), from_ms(ms))
        (self.tracker.result.late if late else self.tracker.result.out_of_order).append(record)
        return shifted

    def _malformed(self, index: int, channel: Channel, valid: str) -> str:
        """A damaged copy of a valid payload; the record names what contracts.parse_event objects to."""
        reason = self.perturb_rng.choice(MALFORMED_REASONS)
        document = json.loads(valid)
        field: str | None = CORRUPTED_FIELD[channel.family]
        if reason == "not_json":
            payload, field = valid[: len(valid) // 2], None
        else:
            if reason == "missing_field":
                del document[field]
            elif reason == "wrong_type":
                document[field] = "n/a"
            elif reason == "out_of_range":
                document[field] = -1e9
            else:
                document["schema"], field = "unknown.family", "schema"
            payload = json.dumps(document, separators=(",", ":"))
        self.tracker.result.malformed.append(MalformedExpectation(index, channel.topic, channel.key, reason, field))
        return payload

    # ------------------------------------------------------------------ results

    def expectations(self) -> Expectations:
        """What this run has promised so far (call at the end of the run)."""
        scenario_of = {source: name for name, sources in self.tracker.result.assignments.items() for source in sources}
        result = self.tracker.finish(self.now_ms(), scenario_of)
        result.events_per_topic = {topic: self.per_topic.get(topic, 0) for topic in EVENT_TOPICS.values()}
        result.legacy_heartbeat_devices = sorted(device.id for device in self.heartbeats.values() if device.legacy)
        return result


def expectations(config: SimConfig) -> Expectations:
    """What a bounded run of `config` promises, from a dry run (nothing is sent anywhere)."""
    if config.count is None and config.duration_s is None:
        raise ValueError("expectations need a bounded run: set count or duration_s")
    simulator = Simulator(config)
    while simulator.next_batch():
        pass
    return simulator.expectations()


def _limit(config: SimConfig) -> float:
    limits = [math.inf]
    if config.count is not None:
        limits.append(config.count)
    if config.duration_s is not None:
        # Event k is at start + k/rate: the events strictly inside the duration.
        limits.append(math.ceil(config.duration_s * config.rate))
    return min(limits)
