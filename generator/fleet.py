"""The simulated sources and their physics. Each source reports once per round.

Plausibility rules: tire pressure follows temperature (Gay-Lussac, from a cold pressure at
20 C), tires warm with speed, the odometer only grows, the battery drains with distance and
vehicles recharge (standing still) before it runs low, ordinary drivers stay under the posted
limit. Ordinary values keep a margin from every alarm's clear level, so only scenarios raise alarms.
"""

from __future__ import annotations

import math
import random

from contracts.events import AutopilotState, DrivingEventType, ObjectClass, TirePosition

REFERENCE_K = 293.15  # cold-pressure reference, 20 C
CAR_TIRES = (TirePosition.FRONT_LEFT, TirePosition.FRONT_RIGHT, TirePosition.REAR_LEFT, TirePosition.REAR_RIGHT)
VAN_TIRES = (*CAR_TIRES, TirePosition.REAR_LEFT_INNER, TirePosition.REAR_RIGHT_INNER)
SPEED_LIMITS = (50.0, 80.0, 100.0, 120.0)
REGIONS = ("region-north", "region-south", "region-east", "region-west")
CLOSING_CLASSES = (ObjectClass.CAR, ObjectClass.TRUCK, ObjectClass.CYCLIST, ObjectClass.PEDESTRIAN)
NOMINAL_COLD_KPA = 240.0
DRAIN_PCT_PER_KM = 0.2
CHARGE_PCT_PER_S = 0.05
RECHARGE_BELOW_PCT = 30.0
RECHARGED_AT_PCT = 90.0
MIN_SAFE_TTC_S = 6.0
_OFF, _ENGAGED, _STANDBY = AutopilotState.OFF, AutopilotState.ENGAGED, AutopilotState.STANDBY


def vehicle_id(index: int) -> str:
    return f"vehicle-{index + 1:04d}"


def building_device_id(site: int, zone: int, device: int) -> str:
    return f"site-{site + 1:02d}.zone-{zone + 1:02d}.dev-{device + 1:02d}"


def heartbeat_device_id(index: int) -> str:
    return f"hb-{index + 1:04d}"


class Vehicle:
    __slots__ = (
        "autopilot",
        "battery",
        "battery_override",
        "charging",
        "cruise",
        "heading",
        "id",
        "latitude",
        "limit",
        "longitude",
        "odometer",
        "pending_driving",
        "perception_override",
        "region",
        "speed",
        "speed_over_override",
        "tire_codes",
        "tire_cold",
        "tire_temp",
        "tire_temp_override",
        "tires",
        "trip_count",
        "trip_every",
        "trip_odometer",
        "trip_rounds",
        "trip_seconds",
    )

    def __init__(self, index: int, rng: random.Random):
        self.id = vehicle_id(index)
        self.tires = VAN_TIRES if index % 4 == 3 else CAR_TIRES
        self.tire_codes = tuple(tire.value for tire in self.tires)
        self.latitude = 52.40 + rng.random() * 0.2
        self.longitude = 13.25 + rng.random() * 0.3
        self.heading = rng.random() * 2 * math.pi
        self.limit = rng.choice(SPEED_LIMITS)
        self.cruise = 0.75 + rng.random() * 0.15
        self.speed = self.limit * self.cruise
        self.battery = 60.0 + rng.random() * 35.0
        self.charging = False
        self.odometer = 1000.0 + rng.random() * 50000.0
        self.autopilot = AutopilotState.ENGAGED if index % 2 == 0 else AutopilotState.OFF
        self.tire_cold = [NOMINAL_COLD_KPA + rng.random() * 10 for _ in self.tires]
        self.tire_temp = [25.0 for _ in self.tires]
        self.tire_temp_override: list[float | None] = [None for _ in self.tires]
        self.speed_over_override: float | None = None
        self.battery_override: float | None = None
        self.perception_override: tuple[ObjectClass, float, float] | None = None
        self.pending_driving: list[tuple[DrivingEventType, str]] = []
        self.region = rng.choice(REGIONS)
        self.trip_every = 20 + rng.randrange(20)
        self.trip_rounds = rng.randrange(self.trip_every)  # stagger trip ends across vehicles
        self.trip_count = 0
        self.trip_odometer = self.odometer
        self.trip_seconds = 0.0

    def step(self, dt_s: float, rng: random.Random) -> None:
        """Advance the vehicle by dt_s simulated seconds."""
        if self.speed_over_override is None and rng.random() < 0.03:
            self.limit = rng.choice(SPEED_LIMITS)  # a new road segment
        self._drive(rng)
        km = self.speed * dt_s / 3600.0
        self.odometer += km
        self._move(km, rng)
        self._battery(km, dt_s)
        self._tires(dt_s)

    def _drive(self, rng: random.Random) -> None:
        if self.charging:
            self.speed = 0.0
        elif self.speed_over_override is not None:
            self.speed = max(0.0, self.limit + self.speed_over_override)
        else:
            # Ordinary drivers stay at least 6 km/h under the limit: below the speeding clear level.
            self.speed = min(self.limit * self.cruise + (rng.random() - 0.5) * 6.0, self.limit - 6.0)
        if self.autopilot is not _OFF:
            self.autopilot = _ENGAGED if self.speed > 30 else _STANDBY

    def _move(self, km: float, rng: random.Random) -> None:
        if rng.random() < 0.05:
            self.heading += (rng.random() - 0.5) * math.pi / 2
        self.latitude = min(89.0, max(-89.0, self.latitude + km / 111.0 * math.cos(self.heading)))
        self.longitude += km / (111.0 * math.cos(math.radians(self.latitude))) * math.sin(self.heading)
        self.longitude = (self.longitude + 180.0) % 360.0 - 180.0

    def _battery(self, km: float, dt_s: float) -> None:
        if self.battery_override is not None:
            self.battery = self.battery_override
            return
        if self.charging:
            self.battery = min(100.0, self.battery + CHARGE_PCT_PER_S * dt_s)
            self.charging = self.battery < RECHARGED_AT_PCT
            return
        self.battery = max(0.0, self.battery - DRAIN_PCT_PER_KM * km)
        self.charging = self.battery < RECHARGE_BELOW_PCT

    def _tires(self, dt_s: float) -> None:
        # Tires warm towards ambient + speed-dependent heat, with a time constant of ~2 minutes.
        target = 20.0 + self.speed * 0.25
        blend = min(1.0, dt_s / 120.0)
        for i, current in enumerate(self.tire_temp):
            override = self.tire_temp_override[i]
            self.tire_temp[i] = override if override is not None else current + (target - current) * blend

    def tire_readings(self) -> list[tuple[float, float]]:
        """(pressure, temperature) of every tire, in tire order; pressure from the cold pressure
        and the tire's temperature (Gay-Lussac)."""
        return [
            (cold * (temp + 273.15) / REFERENCE_K, temp)
            for cold, temp in zip(self.tire_cold, self.tire_temp, strict=True)
        ]

    def perception(self, rng: random.Random) -> tuple[ObjectClass, float, float]:
        if self.perception_override is not None:
            return self.perception_override
        distance = 20.0 + rng.random() * 130.0
        if rng.random() < 0.5:
            return ObjectClass.CAR, distance, rng.random() * 5.0  # receding: no risk
        # Closing, but with a time to collision well above the alarm's clear level.
        return (
            CLOSING_CLASSES[int(rng.random() * len(CLOSING_CLASSES))],
            distance,
            -distance / (MIN_SAFE_TTC_S + rng.random() * 14.0),
        )

    def trip_due(self, dt_s: float) -> bool:
        self.trip_rounds += 1
        self.trip_seconds += dt_s
        return self.trip_rounds >= self.trip_every

    def finish_trip(self) -> tuple[str, str, float, float, float]:
        """(trip_id, region, fare, duration_s, distance_km) of the trip that just ended."""
        self.trip_count += 1
        distance = self.odometer - self.trip_odometer
        duration = self.trip_seconds
        fare = 2.5 + 1.2 * distance + 0.3 * duration / 60.0
        trip_id = f"{self.id}-trip-{self.trip_count:05d}"
        self.trip_rounds, self.trip_seconds, self.trip_odometer = 0, 0.0, self.odometer
        return trip_id, self.region, fare, duration, distance


class Zone:
    """A building zone: devices in it read the same air, each with its own sensor noise."""

    __slots__ = ("co2_override", "device_ids", "id", "occupancy", "site_id")

    def __init__(self, site: int, zone: int, devices: int):
        self.site_id = f"site-{site + 1:02d}"
        self.id = f"{self.site_id}.zone-{zone + 1:02d}"
        self.device_ids = [building_device_id(site, zone, device) for device in range(devices)]
        self.occupancy = 0
        self.co2_override: float | None = None

    def step(self, hour: float, rng: random.Random) -> None:
        busy = 8.0 <= hour < 18.0
        self.occupancy = max(0, int((25 if busy else 2) + (rng.random() - 0.5) * 10))

    def co2(self, rng: random.Random) -> float:
        if self.co2_override is not None:
            return self.co2_override
        # Outdoor air plus people; ordinary rooms stay under 850 ppm (CO2 alarm clears at 900).
        return min(850.0, 420.0 + self.occupancy * 12.0 + rng.random() * 30.0)

    def temperature(self, rng: random.Random) -> float:
        return 21.0 + self.occupancy * 0.08 + rng.random() * 1.5

    def humidity(self, rng: random.Random) -> float:
        return 40.0 + self.occupancy * 0.3 + rng.random() * 10.0


class HeartbeatDevice:
    __slots__ = ("id", "legacy", "silent_until_ms")

    def __init__(self, index: int, legacy: bool):
        self.id = heartbeat_device_id(index)
        self.legacy = legacy
        self.silent_until_ms: int | None = None
