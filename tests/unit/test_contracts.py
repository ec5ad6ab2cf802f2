"""Event contracts: strict parsing with errors that name the field, and generated schemas."""

import json
from datetime import UTC, datetime

import jsonschema
import pytest

from contracts import (
    EVENT_MODELS,
    EVENT_TOPICS,
    ContractError,
    DeviceHeartbeat,
    TireReading,
    parse_event,
    topic_for,
)
from contracts.events import format_time
from contracts.schemas import SCHEMA_DIR, generated_schemas
from contracts.thresholds import Thresholds

T0 = datetime(2026, 11, 22, 6, 0, 0, 123000, tzinfo=UTC)

VALID = {
    "tire.reading": {"tire_position": "FL", "pressure_kpa": 230.5, "temperature_c": 41.0},
    "vehicle.telemetry": {
        "speed_kmh": 88.0,
        "speed_limit_kmh": 100,
        "latitude": 52.5,
        "longitude": 13.4,
        "battery_pct": 77.0,
        "odometer_km": 12000.5,
        "autopilot_state": "engaged",
    },
    "perception.event": {"object_class": "pedestrian", "distance_m": 12.0, "relative_speed_mps": -3.0},
    "driving.event": {"event_type": "intervention", "odometer_km": 12000.5, "reason": "construction zone"},
    "building.reading": {
        "site_id": "hq",
        "zone_id": "z1",
        "co2_ppm": 650.0,
        "temperature_c": 22.5,
        "humidity_pct": 41.0,
        "occupancy": 12,
    },
    "device.heartbeat": {},
    "trip": {"trip_id": "t-1", "region_id": "north", "fare": 23.4, "duration_s": 900, "distance_km": 8.2},
}


def wire(family: str, **changes) -> dict:
    event = {
        "schema": family,
        "version": 1,
        "event_id": "e-1",
        "source_id": "vehicle-0001",
        "event_time": "2026-11-22T06:00:00.123Z",
        **VALID[family],
    }
    event.update(changes)
    return {key: value for key, value in event.items() if value is not ...}


def test_every_family_has_a_valid_example_and_a_topic():
    assert set(VALID) == set(EVENT_MODELS) == set(EVENT_TOPICS)
    assert len(set(EVENT_TOPICS.values())) == len(EVENT_TOPICS)


@pytest.mark.parametrize("schema", sorted(VALID))
def test_valid_events_round_trip_through_json(schema):
    event = parse_event(json.dumps(wire(schema)))
    assert type(event) is EVENT_MODELS[schema]
    assert event.source_id == "vehicle-0001"
    assert event.event_time == T0
    assert json.loads(event.to_json()) == {"fleet_id": "default", **wire(schema), **_defaults(schema)}


def _defaults(schema: str) -> dict:
    return {"timeout_s": None} if schema == "device.heartbeat" else {}


def test_timestamps_are_written_in_one_utc_format():
    event = TireReading.build(
        event_id="e", source_id="v", event_time=T0, tire_position="RR", pressure_kpa=210, temperature_c=30
    )
    assert event.to_dict()["event_time"] == "2026-11-22T06:00:00.123Z"


@pytest.mark.parametrize(
    ("document", "field", "words"),
    [
        (wire("tire.reading", pressure_kpa=-3), "pressure_kpa", "greater than or equal to 0"),
        (wire("vehicle.telemetry", battery_pct=140), "battery_pct", "less than or equal to 100"),
        (wire("vehicle.telemetry", speed_kmh="fast"), "speed_kmh", "valid number"),
        (wire("tire.reading", temperature_c=...), "temperature_c", "Field required"),
        (wire("tire.reading", tire_position="XX"), "tire_position", "'FL'"),
        (wire("tire.reading", colour="red"), "colour", "Extra inputs"),
        (wire("trip", version=2), "version", "1"),
        (wire("trip", event_time="yesterday"), "event_time", "datetime"),
        (wire("trip", event_time="2026-11-22T06:00:00"), "event_time", "timezone"),
        (wire("trip", source_id=""), "source_id", "at least 1"),
        (wire("trip", schema="tyre.reading"), "schema", "unknown event schema 'tyre.reading'"),
        (wire("trip", schema=...), "schema", "missing event schema"),
    ],
)
def test_broken_events_name_the_field(document, field, words):
    with pytest.raises(ContractError) as caught:
        parse_event(json.dumps(document))
    assert caught.value.field == field
    assert words in str(caught.value)


@pytest.mark.parametrize("raw", ["", "not json", "[1,2]", "null", '{"schema":', b"\xff\xfe", "x" * 70000])
def test_unusable_payloads_raise_contract_error_only(raw):
    with pytest.raises(ContractError) as caught:
        parse_event(raw)
    assert caught.value.field is None


def test_legacy_heartbeat_wire_format_is_normalised():
    raw = json.dumps({"event-id": "hb-9", "device-id": "sensor-7", "time": "2026-11-22T06:00:00.123Z"})
    event = parse_event(raw)
    assert isinstance(event, DeviceHeartbeat)
    assert (event.event_id, event.source_id, event.event_time) == ("hb-9", "sensor-7", T0)


def test_legacy_heartbeat_with_a_bad_time_names_it():
    with pytest.raises(ContractError) as caught:
        parse_event(json.dumps({"event-id": "hb", "device-id": "d", "time": "soon"}))
    assert caught.value.field == "event_time"


@pytest.mark.parametrize(
    ("number", "instant"),
    [
        (1763791200, datetime(2025, 11, 22, 6, 0, tzinfo=UTC)),  # seed 003: integer epoch seconds
        (1763791200.123, datetime(2025, 11, 22, 6, 0, 0, 123000, tzinfo=UTC)),
        (1763791200.3, datetime(2025, 11, 22, 6, 0, 0, 300000, tzinfo=UTC)),  # 299.99995 ms as a double: rounded
        (1763791200123, datetime(2025, 11, 22, 6, 0, 0, 123000, tzinfo=UTC)),  # epoch milliseconds
        (1763791200123.6, datetime(2025, 11, 22, 6, 0, 0, 124000, tzinfo=UTC)),
        (99_999_999_999, datetime(5138, 11, 16, 9, 46, 39, tzinfo=UTC)),  # the last whole second read as seconds
        (100_000_000_000, datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)),  # the first number read as milliseconds
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (253_402_300_799_999, datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
    ],
)
def test_epoch_times_are_seconds_below_1e11_and_milliseconds_from_it(number, instant):
    legacy = parse_event(json.dumps({"event-id": "hb", "device-id": "d", "time": number}))
    canonical = parse_event(json.dumps(wire("tire.reading", event_time=number)))
    assert legacy.event_time == canonical.event_time == instant
    assert canonical.to_dict()["event_time"] == format_time(instant)  # written as RFC 3339 again


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (-1, "out of range"),
        (253_402_300_800_000, "out of range"),
        (10**30, "out of range"),
        ("1763791200", "a number in a string"),
        (" 1.5e9 ", "a number in a string"),
        (True, "valid datetime"),
    ],
)
def test_epoch_times_out_of_range_or_in_strings_are_refused_naming_the_field(value, words):
    for document in ({"event-id": "hb", "device-id": "d", "time": value}, wire("trip", event_time=value)):
        with pytest.raises(ContractError) as caught:
            parse_event(json.dumps(document))
        assert caught.value.field == "event_time"
        assert words in str(caught.value)


def test_topic_for_unknown_schema_says_so():
    assert topic_for("trip") == "fleet.trips"
    with pytest.raises(KeyError, match="unknown event schema 'nope'"):
        topic_for("nope")


def test_schema_files_match_the_models():
    on_disk = {path.name: path.read_text() for path in SCHEMA_DIR.glob("*.json")}
    assert on_disk == generated_schemas(), "run `python -m contracts.schemas` to regenerate"


@pytest.mark.parametrize("schema", sorted(VALID))
def test_json_schema_agrees_with_the_models(schema):
    document = json.loads((SCHEMA_DIR / f"{schema}.v1.json").read_text())
    jsonschema.validate(wire(schema), document)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wire(schema, event_time=...), document)


def test_thresholds_resolve_source_over_fleet_over_defaults():
    thresholds = Thresholds.model_validate(
        {
            "defaults": {"co2_high": {"threshold": 1200}},
            "fleets": {"north": {"tire_pressure_low": {"threshold": 210}}},
            "sources": {"vehicle-7": {"tire_pressure_low": {"threshold": 190, "clear": 195}}},
        }
    )
    assert thresholds.rule_for("co2_high").threshold == 1200
    assert thresholds.rule_for("co2_high").clear == 1100  # keeps the default hysteresis gap
    assert thresholds.rule_for("tire_pressure_low").threshold == 200
    assert thresholds.rule_for("tire_pressure_low", fleet_id="north").threshold == 210
    source_rule = thresholds.rule_for("tire_pressure_low", fleet_id="north", source_id="vehicle-7")
    assert (source_rule.threshold, source_rule.clear) == (190, 195)
    assert source_rule.breached(189.9) and not source_rule.breached(190)
    assert source_rule.recovered(195) and not source_rule.recovered(194)


def test_thresholds_reject_inverted_hysteresis_naming_the_rule():
    with pytest.raises(ValueError, match="tire_pressure_low: clear"):
        Thresholds.model_validate({"sources": {"v": {"tire_pressure_low": {"threshold": 200, "clear": 150}}}})


def test_thresholds_reject_unknown_alarm_types():
    with pytest.raises(ValueError, match="tyre_pressure"):
        Thresholds.model_validate({"defaults": {"tyre_pressure": {"threshold": 1}}})
