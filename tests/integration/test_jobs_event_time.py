"""Event times as the jobs read them (jobs.tables.ROWTIME_SQL, epoch_sql) against the contract
(contracts.events.epoch_millis, through parse_event) on Flink's real SQL engine, on the same
inputs: RFC 3339 text in every form the contract accepts and epoch seconds or milliseconds, integer or float, in `event_time` or the
legacy heartbeat's `time`, with the edges of the rule (the 1e11 boundary, rounding to the
millisecond, the range). A line the contract accepts must be read at the contract's instant, or
the jobs would turn it into a dead letter; the numbers are written here because the simulator
only sends integer seconds (its legacy heartbeats, tested in test_jobs_epoch_run)."""

from __future__ import annotations

import json
import math
import random
from datetime import timedelta

import pytest

from contracts import ContractError, parse_event
from contracts.events import EPOCH, EPOCH_MILLIS_FROM, LAST_EPOCH_MS, epoch_millis
from jobs.parse import ParseFamily, sql_time
from jobs.tables import ROWTIME_SQL, epoch_sql

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# JSON number texts: valid and invalid, at and around every edge of the rule.
NUMBERS = [
    "0", "-0", "0.0004", "0.0005", "1", "-1", "-0.0001", "1e-300",
    "1763791200", "1763791200.3", "1763791200.123", "1763791200.9995", "1763791200.99951", "1763791200.0005",
    "1.7637912e9", "17637912E2", "1.7637912E+9",
    "99999999999", "99999999999.9994", "99999999999.9996", "100000000000", "1e11", "1E11", "100000000000.5",
    "1763791200123", "1763791200123.5", "1763791200123.49", "1.763791200123e12",
    "253402300799", "253402300799999", "253402300799999.4", "253402300799999.6", "253402300800000",
    "1e15", "1e400", "-1e400", "123456789012345678901234567890",
]  # fmt: skip
OTHER_TIMES = [
    '"2025-11-22T06:00:00.123Z"',
    '"2025-11-22T06:00:00Z"',
    '"2025-11-22T07:00:00.123+01:00"',
    '"2025-11-22T01:30:00.5-04:30"',
    '"2025-11-22T06:00:00.123456Z"',
    '"2025-11-22T06:00:00.1239+00:00"',
    '"2025-11-22T06:00:00.123-00:00"',
    '"2025-11-22t06:00:00z"',
    '"2025-11-22T11:45:00+0545"',
    '"2025-11-22 06:00:00Z"',
    '"2025-11-22T00:30:00.999-23:59"',
    '"2025-11-22T06:00:00"',
    '"2025-11-22T06:00:00+25:00"',
    '"1763791200"',
    '"1.5e9"',
    "true",
    "null",
    "[1763791200]",
]


SHAPES = [
    ("device.heartbeat", '{"event-id":"h1","device-id":"hb-1","time":TIME}'),
    ("device.heartbeat", '{"event-id": "h1", "device-id": "hb-1", "time": TIME}'),
    ("device.heartbeat", '{"schema":"device.heartbeat","event_id":"h1","source_id":"hb-1","event_time":TIME}'),
    (
        "trip",
        '{"schema":"trip","event_id":"t1","source_id":"veh-1","event_time":TIME,"trip_id":"t1",'
        '"region_id":"r1","fare":12.5,"duration_s":600,"distance_km":4.2}',
    ),
]
"""(family, line with TIME for the time): a legacy heartbeat (compact and spaced), a canonical
heartbeat, a trip."""


def _lines() -> list[tuple[str, str]]:
    return [(family, shape.replace("TIME", time)) for time in NUMBERS + OTHER_TIMES for family, shape in SHAPES]


def _doubles() -> list[float]:
    """Edges and a seeded spread of seconds and milliseconds, with fractions."""
    edges = [
        0.0, -0.0, 0.0004999, 0.0005, -1e-300, 1763791200.3, 1763791200.0005, 99999999999.9995,
        math.nextafter(1e11, 0), 1e11, math.nextafter(1e11, math.inf), float(LAST_EPOCH_MS),
        LAST_EPOCH_MS + 0.25, math.nextafter(float(LAST_EPOCH_MS), math.inf), 2.0**53, -5.0,
        math.inf, -math.inf, math.nan,
    ]  # fmt: skip
    rng = random.Random(3)
    spread = [rng.uniform(1e9, 2e9) for _ in range(1000)] + [rng.uniform(1e12, 2e12) for _ in range(1000)]
    return edges + spread + [round(value, 3) for value in spread[::10]]


@pytest.fixture(scope="module")
def flink():
    from pyflink.table import EnvironmentSettings, TableEnvironment

    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    # Not UTC on purpose: the jobs set no zone, and their event time must not depend on one.
    t_env.get_config().set("table.local-time-zone", "Asia/Kolkata")
    return t_env


def _collect(t_env, query: str) -> list[tuple]:
    with t_env.execute_sql(query).collect() as rows:
        return [tuple(row) for row in rows]


@pytest.fixture(scope="module")
def rowtimes(flink) -> dict[str, str]:
    """line -> CAST(rowtime AS STRING), as jobs.tables.create_source computes it."""
    lines = _lines()
    flink.create_temporary_view("lines", flink.from_elements([(line,) for _, line in lines], ["line"]))
    found = _collect(flink, f"SELECT line, CAST({ROWTIME_SQL} AS STRING) FROM lines")
    return dict(found)


def _contract(line: str):
    try:
        return parse_event(line)
    except ContractError:
        return None


def _time(line: str):
    document = json.loads(line)
    return document.get("event_time", document.get("time"))


def test_the_jobs_read_every_event_time_the_contract_accepts_at_its_instant(rowtimes):
    """Every line the contract accepts is read by SQL at the contract's instant and passes the
    parse (epoch numbers, and RFC 3339 text in every form: offsets, `t`/`z`, a space, any fraction);
    every line it refuses is a dead letter naming event_time."""
    accepted = {"number": 0, "text": 0}
    for family, line in _lines():
        event, time = _contract(line), _time(line)
        (row,) = ParseFamily(family).eval(line, rowtimes[line])
        if event is None:
            assert row[1] == "event_time", (line, row)
            continue
        assert rowtimes[line] == sql_time(event.event_time), line
        assert row[:2] == (None, None), (line, row)
        accepted["text" if isinstance(time, str) else "number"] += 1
    numbers = sum(epoch_millis(json.loads(number)) is not None for number in NUMBERS)
    assert accepted["number"] == len(SHAPES) * numbers >= 4 * 20
    assert accepted["text"] >= len(SHAPES) * 11


def test_sql_and_python_give_the_same_millisecond_for_every_double(flink):
    values = _doubles()
    flink.create_temporary_view("numbers", flink.from_elements(list(enumerate(values)), ["i", "x"]))
    found = dict(_collect(flink, f"SELECT i, CAST({epoch_sql('x')} AS STRING) FROM numbers"))
    for i, value in enumerate(values):
        millis = epoch_millis(value)
        want = None if millis is None else sql_time(EPOCH + timedelta(milliseconds=millis))
        assert found[i] == want, (value, found[i], want)
    assert sum(epoch_millis(value) is not None for value in values) > 2000
    # The boundary itself: just below 1e11 is seconds, 1e11 is milliseconds.
    assert epoch_millis(math.nextafter(1e11, 0)) > 10**13 and epoch_millis(1e11) == EPOCH_MILLIS_FROM
