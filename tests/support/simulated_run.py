"""One run of the real producers and consumers for the consumers' tests: the simulator (seeded,
every condition scenario) -> a real Kafka broker -> `python -m jobs all --bounded` -> the loader ->
a migrated PostgreSQL database. The dashboards' SQL and the API's endpoints are then tested on
what the jobs really wrote, not on rows written by hand for the test.

It is expensive (Flink starts in 1-2 min on the shared machine): tests share one run through the
session fixture `simulated_run` (tests/conftest.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from contracts.topics import ALERTS_TOPIC, ALL_TOPICS
from devstack import Broker
from devstack.alert_shipper import AlertShipper
from generator.clock import from_ms
from generator.config import SimConfig
from generator.runner import run
from generator.scenarios import Expectations
from generator.simulator import Simulator
from generator.sinks import KafkaSink
from tests.support.jobs_run import bounded_command, load_all, new_database, read_committed, rows, run_jobs, wait_for

EVENTS = 2400
RATE = 10.0
"""Events per simulated second: 2,400 events span 4 minutes of event time (1- and 5-minute trip
windows), about 79 rounds of every source reporting once."""
FLEET = {"vehicles": 4, "sites": 1, "zones": 2, "devices_per_zone": 1, "heartbeat_devices": 3}
REPEAT_ROUNDS = 60
"""The condition scenarios start again after this many rounds: the first pass raises and clears
every alarm, the second one is under way at the end (the tire leak, critical, is held, speeding
and overheating are rising), so the run also ends with open alarms."""
SEED = 15
LOADER_GROUP = "simulated-run"


@dataclass(frozen=True)
class SimulatedRun:
    url: str
    """The database the loader filled."""
    config: SimConfig
    expectations: Expectations
    """What the simulator promised (alarms per scenario, driving events, malformed events)."""
    start: datetime
    end: datetime
    """The simulated clock's first and last instant: dashboards are looked at as of `end`."""
    sent: int

    def query(self, statement: str, params: tuple | None = None) -> list[tuple]:
        return rows(self.url, statement, params)


def _config() -> SimConfig:
    # The events end as they are sent: event time (readings, alarms) and arrival time (dead letters'
    # received_at, the Kafka timestamp) agree, as on a live fleet, and a dashboard looked at as of
    # the end shows both.
    start = (datetime.now(UTC) - timedelta(seconds=EVENTS / RATE)).replace(microsecond=0)
    return SimConfig(start=start, seed=SEED, count=EVENTS, rate=RATE, scenario_period_rounds=REPEAT_ROUNDS, **FLEET)


def _ship_alarm_history(bootstrap: str, url: str) -> None:
    """alarm_events as Vector fills it in a deployment: the local stand-in (devstack.alert_shipper,
    Vector's own statement) ships the alerts topic until every committed record is in."""
    committed = len(read_committed(bootstrap, [ALERTS_TOPIC])[ALERTS_TOPIC])
    shipper = AlertShipper(bootstrap, url).start()
    try:
        wait_for(lambda: shipper.shipped >= committed, f"{committed} alert records in alarm_events")
    finally:
        shipper.stop()


@contextmanager
def simulated_run(postgres_server: str, workdir: Path) -> Iterator[SimulatedRun]:
    """Simulate, run the jobs to the end of their input and load their output; yields the run."""
    config = _config()
    simulator = Simulator(config)
    with Broker(log_path=workdir / "broker.log") as broker:
        broker.create_topics(ALL_TOPICS)
        stats = run(simulator, KafkaSink(broker.bootstrap), threading.Event(), paced=False)
        assert (stats.sent, stats.errors) == (EVENTS, 0), stats
        run_jobs(bounded_command(broker.bootstrap, workdir / "checkpoints"), timeout=900)
        url = new_database(postgres_server)
        load_all(broker.bootstrap, url, LOADER_GROUP)
        _ship_alarm_history(broker.bootstrap, url)
    try:
        yield SimulatedRun(
            url=url,
            config=config,
            expectations=simulator.expectations(),
            start=config.start,
            end=from_ms(simulator.now_ms()),
            sent=stats.sent,
        )
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path.lstrip("/")}" WITH (FORCE)')
