"""Deterministic sample data sets, built with the contract models and produced to the families'
Kafka topics: for the tests, the benchmark and trying the jobs by hand. Every alarm family gets one incident
(raise, a reading hovering in the hysteresis band, clear); lines are shuffled out of order within
a bound, a few are late beyond it, and a few are malformed."""

from __future__ import annotations

import json
import random
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from contracts import (
    BuildingReading,
    DeviceHeartbeat,
    DrivingEvent,
    PerceptionEvent,
    TireReading,
    Trip,
    VehicleTelemetry,
    topic_for,
)

START = datetime(2024, 1, 1, tzinfo=UTC)
MALFORMED = ["not json", '{"schema": "tire.reading"}', '{"schema": "nope", "event_id": "x"}']


@dataclass
class SampleSet:
    """Lines per family in file order; `late`/`malformed` hold the (family, line) pairs that are
    late beyond the watermark bound or malformed by construction."""

    lines: dict[str, list[str]] = field(default_factory=dict)
    late: set[tuple[str, str]] = field(default_factory=set)
    malformed: set[tuple[str, str]] = field(default_factory=set)

    def produce(self, bootstrap_servers: str, partition: int = 0) -> int:
        """Send every family's lines to its topic, in order, into one partition (so the order the
        jobs read is the order built); returns how many."""
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True, "linger.ms": 20})
        sent = 0
        for family, lines in self.lines.items():
            topic = topic_for(family)
            for line in lines:
                while True:
                    try:
                        producer.produce(topic, value=line.encode(), partition=partition)
                        break
                    except BufferError:  # the local queue is full: let deliveries drain it
                        producer.poll(0.1)
                producer.poll(0)
                sent += 1
        if producer.flush(60):
            raise RuntimeError("sample events not delivered within 60 s")
        return sent

    def in_time_order(self) -> list[tuple[str, str]]:
        """Every (family, line), the families interleaved by event time as a live fleet sends them,
        each family's lines in their own order (a line out of order or malformed keeps its place)."""
        keyed = []
        for rank, (family, lines) in enumerate(self.lines.items()):
            newest = ""
            for index, line in enumerate(lines):
                with suppress(ValueError, KeyError, TypeError):
                    newest = max(newest, json.loads(line)["event_time"])
                keyed.append((newest, rank, index, family, line))
        return [(family, line) for *_, family, line in sorted(keyed)]


def _profile(step: int, incident: range, breach: float, band: float, normal: float) -> float:
    """Normal, then breaching during the incident, one reading in the band, then normal again."""
    if step in incident:
        return breach
    if step == incident.stop:
        return band
    return normal


def build(steps: int = 72, vehicles: int = 2, seed: int = 7, late: int = 2, malformed: int = 2) -> SampleSet:
    """`steps` readings 5 s apart per source (72 -> 6 minutes)."""
    rng = random.Random(seed)
    at = [START + timedelta(seconds=5 * step) for step in range(steps)]
    incident = range(steps // 3, steps // 3 + 4)
    events: dict[str, list] = {
        name: []
        for name in (
            "tire.reading",
            "vehicle.telemetry",
            "perception.event",
            "building.reading",
            "driving.event",
            "trip",
        )
    }
    for v in range(vehicles):
        vid = f"veh-{v:03d}"
        for step, t in enumerate(at):
            eid = f"{vid}-{step}"
            for pos in ("FL", "RR"):
                bad = v == 0 and pos == "FL"
                events["tire.reading"].append(
                    TireReading.build(
                        event_id=f"{eid}-{pos}",
                        source_id=vid,
                        event_time=t,
                        tire_position=pos,
                        pressure_kpa=_profile(step, incident if bad else range(0), 180, 205, 230 + rng.random()),
                        temperature_c=_profile(step, incident if bad else range(0), 95, 88, 60 + rng.random()),
                    )
                )
            events["vehicle.telemetry"].append(
                VehicleTelemetry.build(
                    event_id=eid,
                    source_id=vid,
                    event_time=t,
                    latitude=52.0,
                    longitude=4.0,
                    autopilot_state="engaged",
                    speed_kmh=_profile(step, incident if v == 0 else range(0), 130, 118, 100),
                    speed_limit_kmh=None if step % 2 else 120,
                    battery_pct=_profile(step, incident if v == 0 else range(0), 10, 17, 80),
                    odometer_km=1000 + v * 100 + step * 0.1,
                )
            )
            events["perception.event"].append(
                PerceptionEvent.build(
                    event_id=eid,
                    source_id=vid,
                    event_time=t,
                    object_class="car",
                    distance_m=20,
                    relative_speed_mps=_profile(step, incident if v == 0 else range(0), -20, -8, 2),
                )
            )
        for n, step in enumerate(range(3, steps, 12)):
            kind = "disengagement" if n % 3 == 2 else "intervention"
            events["driving.event"].append(
                DrivingEvent.build(
                    event_id=f"{vid}-drive-{n}",
                    source_id=vid,
                    event_time=at[step],
                    event_type=kind,
                    odometer_km=1000 + v * 100 + step * 0.1,
                )
            )
            events["trip"].append(
                Trip.build(
                    event_id=f"{vid}-trip-{n}",
                    source_id=vid,
                    event_time=at[step],
                    trip_id=f"{vid}-t{n}",
                    region_id=f"region-{n % 2}",
                    fare=10 + n,
                    duration_s=600 + 60 * n,
                    distance_km=5 + n,
                )
            )
    for step, t in enumerate(at):
        events["building.reading"].append(
            BuildingReading.build(
                event_id=f"bld-{step}",
                source_id="bld-dev-1",
                event_time=t,
                site_id="site-1",
                zone_id="zone-a",
                co2_ppm=_profile(step, incident, 1200, 950, 600),
                temperature_c=_profile(step, incident, 32, 29.5, 22),
                humidity_pct=_profile(step, incident, 85, 78, 50),
                occupancy=step % 10,
            )
        )
    sample = SampleSet()
    for family, family_events in events.items():
        sample.lines[family] = _disorder(family, family_events, rng, late=late, malformed=malformed, sample=sample)
    return sample


def closers(at: datetime) -> SampleSet:
    """One in-bounds event per family of build() from a source of its own ("closer") at `at`: sent
    after a sample to a live job, it moves every watermark past the sample's windows (a bounded job
    closes them at the end of its input instead). Its own windows stay open."""
    common = {"source_id": "closer", "event_time": at}
    events = [
        TireReading.build(event_id="close-tire", tire_position="FL", pressure_kpa=230, temperature_c=60, **common),
        VehicleTelemetry.build(
            event_id="close-telemetry",
            latitude=52.0,
            longitude=4.0,
            autopilot_state="off",
            speed_kmh=50,
            battery_pct=80,
            odometer_km=1,
            **common,
        ),
        PerceptionEvent.build(
            event_id="close-perception", object_class="car", distance_m=50, relative_speed_mps=1, **common
        ),
        BuildingReading.build(
            event_id="close-building",
            site_id="site-1",
            zone_id="zone-a",
            co2_ppm=600,
            temperature_c=22,
            humidity_pct=50,
            occupancy=0,
            **common,
        ),
        DrivingEvent.build(event_id="close-driving", event_type="intervention", odometer_km=1, **common),
        Trip.build(
            event_id="close-trip", trip_id="close", region_id="closing", fare=1, duration_s=60, distance_km=1, **common
        ),
    ]
    return SampleSet(lines={event.schema_name: [event.to_json()] for event in events})


def heartbeats(devices: int, timeout_s: float, at: datetime = START) -> list[str]:
    return [
        DeviceHeartbeat.build(
            event_id=f"hb-{d}-{at:%H%M%S}", source_id=f"dev-{d:03d}", event_time=at, timeout_s=timeout_s
        ).to_json()
        for d in range(devices)
    ]


def telemetry(source_id: str, event_id: str, at: datetime, speed_kmh: float, odometer_km: float) -> str:
    """One vehicle's telemetry line at a given speed; everything else within bounds."""
    return VehicleTelemetry.build(
        event_id=event_id,
        source_id=source_id,
        event_time=at,
        latitude=1,
        longitude=1,
        battery_pct=80,
        odometer_km=odometer_km,
        autopilot_state="off",
        speed_kmh=speed_kmh,
    ).to_json()


def _disorder(
    family: str, events: list, rng: random.Random, *, late: int, malformed: int, sample: SampleSet
) -> list[str]:
    """Sort by time, swap neighbours (out of order by one step, within the watermark bound), then
    move a few events far back (late beyond it) and add malformed lines."""
    events = sorted(events, key=lambda e: e.event_time)
    for i in range(1, len(events) - 1, 7):
        if events[i + 1].event_time - events[i].event_time <= timedelta(seconds=5):
            events[i], events[i + 1] = events[i + 1], events[i]
    lines = [e.to_json() for e in events]
    for _ in range(late if len(lines) > 40 else 0):
        index = rng.randrange(5, len(lines) // 4)  # before any incident
        line = lines.pop(index)
        lines.insert(len(lines) - 5, line)  # at the end of the file: minutes behind the watermark
        sample.late.add((family, line))
    for n in range(malformed):
        line = MALFORMED[n % len(MALFORMED)]
        lines.insert(rng.randrange(len(lines)), line)
        sample.malformed.add((family, line))
    return lines
