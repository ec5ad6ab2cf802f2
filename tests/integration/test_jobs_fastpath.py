"""The SQL fast path (jobs.fastpath) against the contract's own parser, on Flink's real SQL
engine: every line the fast path calls certainly valid must be one `contracts.parse_event`
accepts, with the same values; everything else is left to the Python parse. The corpus is
the simulator's output (with its malformed share), the jobs' sample set, and hand-made lines
for each way the two parsers could disagree."""

from __future__ import annotations

import json
import subprocess
import sys
from enum import Enum

import pytest

from contracts import EVENT_MODELS, ContractError, parse_event
from contracts.events import format_time
from jobs import fastpath
from jobs.parse import ENVELOPE, family_fields, sql_time
from jobs.tables import ROWTIME_SQL
from tests.support.jobs_sample import build

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TELEMETRY = (
    '{"schema":"vehicle.telemetry","version":1,"event_id":"e1","source_id":"veh-1",'
    '"event_time":"2024-01-01T00:00:00.000Z","fleet_id":"f1","speed_kmh":50.5,"speed_limit_kmh":80.0,'
    '"latitude":52.0,"longitude":4.0,"battery_pct":80.0,"odometer_km":1000.0,"autopilot_state":"off"}'
)
BUILDING = (
    '{"schema":"building.reading","version":1,"event_id":"b1","source_id":"site-1.zone-1.dev-1",'
    '"event_time":"2024-01-01T00:00:00.000Z","site_id":"site-1","zone_id":"zone-1","co2_ppm":700.0,'
    '"temperature_c":21.0,"humidity_pct":40.0,"occupancy":3}'
)
DRIVING = (
    '{"schema":"driving.event","version":1,"event_id":"d1","source_id":"veh-1",'
    '"event_time":"2024-01-01T00:00:00.000Z","event_type":"intervention","odometer_km":10.0,"reason":"lane"}'
)


def _variants(line: str, replacements: list[tuple[str, str]]) -> list[str]:
    return [line.replace(old, new, 1) for old, new in replacements]


# Each line below is either valid or not; the test does not say which, parse_event does.
TRICKY = {
    "vehicle.telemetry": [
        TELEMETRY,
        json.dumps(json.loads(TELEMETRY)),  # spaced
        TELEMETRY.replace('"speed_limit_kmh":80.0', '"speed_limit_kmh":null'),
        TELEMETRY.replace('"speed_limit_kmh":80.0,', ""),
        TELEMETRY.replace(',"fleet_id":"f1"', ""),
        TELEMETRY.replace('"version":1,', ""),
        *_variants(
            TELEMETRY,
            [
                ('"speed_kmh":50.5', '"speed_kmh":"50.5"'),
                ('"speed_kmh":50.5', '"speed_kmh":true'),
                ('"speed_kmh":50.5', '"speed_kmh":-1'),
                ('"speed_kmh":50.5', '"speed_kmh":400.0000001'),
                ('"speed_kmh":50.5', '"speed_kmh":5e1'),
                ('"speed_kmh":50.5', '"speed_kmh":"5e1"'),
                ('"speed_kmh":50.5', '"speed_kmh":"1d"'),
                ('"speed_kmh":50.5', '"speed_kmh":"0x10"'),
                ('"speed_kmh":50.5', '"speed_kmh":" 50.5"'),
                ('"speed_kmh":50.5', '"speed_kmh":050.5'),
                ('"odometer_km":1000.0', '"odometer_km":1e400'),
                ('"odometer_km":1000.0', '"odometer_km":NaN'),
                ('"odometer_km":1000.0', '"odometer_km":{"km":1}'),
                ('"odometer_km":1000.0', '"odometer_km":[1]'),
                ('"autopilot_state":"off"', '"autopilot_state":"OFF"'),
                ('"autopilot_state":"off"', '"autopilot_state":"o\\u0066f"'),
                ('"source_id":"veh-1"', '"source_id":"veh 1"'),
                ('"source_id":"veh-1"', '"source_id":"veh-1\\n"'),
                ('"source_id":"veh-1"', '"source_id":7'),
                ('"source_id":"veh-1"', '"source_id":"7"'),
                ('"source_id":"veh-1"', '"source_id":true'),
                ('"source_id":"veh-1"', '"source_id":"true"'),
                ('"source_id":"veh-1"', '"source_id":""'),
                ('"source_id":"veh-1"', '"source_id":"' + "v" * 129 + '"'),
                ('"event_time":"2024-01-01T00:00:00.000Z"', '"event_time":"2024-02-30T00:00:00.000Z"'),
                ('"event_time":"2024-01-01T00:00:00.000Z"', '"event_time":"0000-01-01T00:00:00.000Z"'),
                ('"event_time":"2024-01-01T00:00:00.000Z"', '"event_time":"2024-01-01T00:00:00Z"'),
                ('"event_time":"2024-01-01T00:00:00.000Z"', '"event_time":"2024-01-01T01:00:00.000+01:00"'),
                ('"event_time":"2024-01-01T00:00:00.000Z"', '"event_time":"2024-01-01 00:00:00.000Z"'),
                ('"event_time":"2024-01-01T00:00:00.000Z"', '"event_time":"2024-01-01T23:59:60.000Z"'),
                ('"event_time":"2024-01-01T00:00:00.000Z"', '"event_time":"2024-01-01T00:00:00.000Zjunk"'),
                ('"event_time":"2024-01-01T00:00:00.000Z"', '"event_time":"2024-01-01T00:00:00.000Z "'),
                ('"event_time":"2024-01-01T00:00:00.000Z"', '"event_time" : "2024-01-01T00:00:05.000Z"'),
                ('"fleet_id":"f1"', '"fleet_id":"f1","event_time":"2024-01-01T00:00:05.000Z"'),
                ('"fleet_id":"f1"', '"fleet_id":"f1","event_time" : "2024-01-01T00:00:05.000Z"'),
                ('"version":1', '"event_time" : "2024-01-01T00:00:05.000Z","version":1'),
                ('"fleet_id":"f1"', '"fleet_id":"\\"event_time\\":\\"2024-01-01T00:00:05.000Z\\""'),
                ('"version":1', '"version":2'),
                ('"version":1', '"version":1.0'),
                ('"version":1', '"version":"1"'),
                ('"fleet_id":"f1"', '"fleet_id":null'),
                ('"schema":"vehicle.telemetry"', '"schema":"tire.reading"'),
                ('"schema":"vehicle.telemetry"', '"\\u0073chema":"vehicle.telemetry"'),
                ('"latitude":52.0', '"latitude":52.0,"extra":1'),
                ('"latitude":52.0', '"latitude":52.0,"latitude":53.0'),
                ('"latitude":52.0', '"latitude" :52.0,"extra" : 1'),
                ('"latitude":52.0', '"latitude":52.0,"note":"a\\":b"'),
            ],
        ),
        TELEMETRY + " trailing",
        TELEMETRY + "{}",
        " " + TELEMETRY,
        TELEMETRY + "\r",
        TELEMETRY[:-1],
        "[" + TELEMETRY + "]",
        "not json",
        "{}",
        '{"event-id": "h1", "device-id": "dev-1", "time": "2024-01-01T00:00:05.000Z"}',
    ],
    "building.reading": [
        BUILDING,
        *_variants(
            BUILDING,
            [
                ('"occupancy":3', '"occupancy":3.0'),
                ('"occupancy":3', '"occupancy":3.5'),
                ('"occupancy":3', '"occupancy":-1'),
                ('"occupancy":3', '"occupancy":"3"'),
                ('"occupancy":3', '"occupancy":3e0'),
                ('"occupancy":3', '"occupancy":99999999999999999999'),
                ('"co2_ppm":700.0', '"co2_ppm":40000.0'),
                ('"co2_ppm":700.0', '"co2_ppm":40000.5'),
            ],
        ),
    ],
    "driving.event": [
        DRIVING,
        *_variants(
            DRIVING,
            [
                ('"reason":"lane"', '"reason":"line one\\nline \\"two\\" \\u00e9"'),
                ('"reason":"lane"', '"reason":"' + "r" * 256 + '"'),
                ('"reason":"lane"', '"reason":"' + "r" * 257 + '"'),
                ('"reason":"lane"', '"reason":"' + "\U0001f697" * 200 + '"'),
                ('"reason":"lane"', '"reason":null'),
                ('"reason":"lane"', '"reason":5'),
                ('"reason":"lane"', '"reason":false'),
                ('"reason":"lane"', '"reason":"{\\"k\\":1}"'),
                ('"event_type":"intervention"', '"event_type":"crash"'),
            ],
        ),
    ],
    "device.heartbeat": [
        '{"schema":"device.heartbeat","event_id":"h1","source_id":"hb-1","event_time":"2024-01-01T00:00:00.000Z"}',
        '{"schema":"device.heartbeat","event_id":"h1","source_id":"hb-1","event_time":"2024-01-01T00:00:00.000Z",'
        '"timeout_s":0}',
        '{"schema":"device.heartbeat","event_id":"h1","source_id":"hb-1","event_time":"2024-01-01T00:00:00.000Z",'
        '"timeout_s":30}',
    ],
}


def _simulated() -> dict[str, list[str]]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "generator",
            "--count",
            "3000",
            "--seed",
            "11",
            "--malformed-share",
            "0.1",
            "--max-speed",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    by_family: dict[str, list[str]] = {family: [] for family in EVENT_MODELS}
    for line in out.splitlines():
        try:
            schema = json.loads(line).get("schema")
        except (ValueError, AttributeError):
            schema = None
        by_family[schema if schema in by_family else "device.heartbeat"].append(line)
    return by_family


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[str]]:
    lines = _simulated()
    for family, sample_lines in build(steps=60, vehicles=2).lines.items():
        lines[family] += sample_lines
    for family, tricky in TRICKY.items():
        lines[family] += tricky
    return lines


@pytest.fixture(scope="module")
def verdicts(corpus) -> dict[str, list[tuple]]:
    """(line, certain, typed columns...) per family, computed by Flink SQL."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    t_env.get_config().set("table.local-time-zone", "UTC")
    result = {}
    for family, lines in corpus.items():
        t_env.create_temporary_view("src", t_env.from_elements([(line,) for line in lines], ["line"]))
        source = f"(SELECT line, {ROWTIME_SQL} AS rowtime FROM src)"  # as jobs.tables.create_source reads it
        query = (
            f"SELECT line, certain, CAST(rowtime AS STRING), {fastpath.typed_columns(family)} FROM (SELECT *, "
            f"{fastpath.valid_predicate(family)} AS certain FROM "
            f"(SELECT {fastpath.extracted(family)} FROM {fastpath.members(source)}))"
        )
        with t_env.execute_sql(query).collect() as rows:
            result[family] = [tuple(row) for row in rows]
        t_env.drop_temporary_view("src")
    return result


def _contract_values(line: str, family: str) -> tuple | None:
    try:
        event = parse_event(line)
    except ContractError:
        return None
    if event.schema_name != family:
        return None
    values = [getattr(event, name) for name in (*ENVELOPE, *family_fields(family))]
    return tuple(value.value if isinstance(value, Enum) else value for value in values)


def test_every_certain_line_is_one_the_contract_accepts_with_the_same_values(verdicts):
    for family, rows in verdicts.items():
        for line, certain, _rowtime, _error, _field, *values in rows:
            if certain:
                assert _contract_values(line, family) == tuple(values), (family, line)


def test_every_event_in_the_wire_format_is_read_at_its_own_event_time(verdicts):
    """SQL's event time (jobs.tables.ROWTIME_SQL) is the one the parse function holds the event to,
    repeated keys included, so no valid event is rejected. (Times in other RFC 3339 forms:
    test_jobs_event_time.)"""
    read = 0
    for family, rows in verdicts.items():
        for line, _certain, rowtime, *_ in rows:
            if _contract_values(line, family) is None:
                continue
            event = parse_event(line)
            if json.loads(line).get("event_time") == format_time(event.event_time):
                read += 1
                assert rowtime == sql_time(event.event_time), (family, line)
    assert read > 1000


def test_the_simulators_valid_events_take_the_fast_path(verdicts):
    """Only what the fast path cannot vouch for reaches Python: of the simulator's and the sample
    set's lines that is the malformed share and the legacy heartbeats."""
    for family in EVENT_MODELS:
        made_here = set(TRICKY.get(family, []))
        rows = [row for row in verdicts[family] if row[0] not in made_here]
        valid = [row for row in rows if _contract_values(row[0], family) is not None]
        canonical = [row for row in valid if '"schema"' in row[0]]  # not a legacy heartbeat
        certain = [row for row in rows if row[1]]
        assert canonical and len(certain) == len(canonical), (family, len(certain), len(canonical))


def test_the_tricky_lines_split_as_the_contract_says(verdicts):
    """The hand-made lines exercise both answers: some are accepted in SQL, the rest go to Python."""
    tricky = {(family, line) for family, lines in TRICKY.items() for line in lines}
    rows = [(family, row) for family, family_rows in verdicts.items() for row in family_rows]
    certain = {(family, row[0]) for family, row in rows if row[1] and (family, row[0]) in tricky}
    assert ("vehicle.telemetry", TELEMETRY) in certain
    assert ("building.reading", BUILDING) in certain and ("driving.event", DRIVING) in certain
    assert len(certain) < len(tricky) / 2
