"""A live (unbounded) job on the real mini-cluster, fed through a real Kafka broker and loaded into
real PostgreSQL as it runs. Its watermark waits 300 s for disorder plus 300 s of allowed lateness,
so no window closes at first: the alarms under their own 1 s bound are raised and cleared anyway,
and a breaching reading that arrives 16 s behind its partition's newest (after the alarms' clock
passed it) skips the rules but is stored like every other reading, while a partition that lags
the others holds the alarms back and loses none. Later, an event 700 s behind
the newest is a late dead letter with the reason while one 550 s behind still counts (the allowed
lateness), a malformed one is a malformed dead letter, and the job goes on; the job's REST API
counts every event its sources read."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from devstack.flink_rest import events_read, events_read_by_source
from devstack.ports import free_port
from tests.support import jobs_sample
from tests.support.jobs_run import (
    jobs_command,
    loading,
    new_database,
    rows,
    start_jobs,
    stop_jobs,
    wait_for,
    wait_rows,
)
from tests.support.jobs_sample import START, SampleSet

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BREACH = range(5, 10)  # seconds after START at 130 km/h; the rest at 100 km/h
STRAGGLER_S = 3  # a breaching reading from before the incident, sent after it
INCIDENT = ("speeding", START + timedelta(seconds=5), START + timedelta(seconds=10), len(BREACH))
ALARMS = "SELECT alert_type, first_seen, cleared_at, count FROM alarms WHERE source_id = 'veh-a'"
EVENTS_STORED = "SELECT count(DISTINCT event_id) FROM readings"


def telemetry(second: int, speed_kmh: float = 100.0, source: str = "veh-a") -> str:
    event_id = f"{source}-{second}-{speed_kmh:g}"
    return jobs_sample.telemetry(source, event_id, START + timedelta(seconds=second), speed_kmh, second)


class FollowedJob:
    def __init__(self, bootstrap: str, url: str, process, loader, rest_url: str):
        self.bootstrap, self.url, self.process, self.loader, self.rest_url = bootstrap, url, process, loader, rest_url
        self.sent: list[str] = []
        self.valid = 0
        """Events sent that the job stores (on time and well formed)."""

    def send(self, lines: list[str], stored: bool = True, partition: int = 0) -> None:
        SampleSet(lines={"vehicle.telemetry": lines}).produce(self.bootstrap, partition)
        self.sent += lines
        self.valid += len(lines) if stored else 0

    def wait(self, query: str, want: list[tuple], timeout_s: float = 300) -> None:
        wait_rows(self.url, query, want, timeout_s, process=self.process, loader=self.loader)

    def wait_stored(self) -> None:
        self.wait(EVENTS_STORED, [(self.valid,)])


@pytest.fixture(scope="module")
def job(platform_broker, postgres_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("followed")
    url, rest_port = new_database(postgres_server), free_port()
    command = jobs_command(
        platform_broker.bootstrap,
        "--start-from",
        "earliest",
        "--checkpoint-dir",
        str(tmp / "ck"),
        "--out-of-orderness",
        "300",
        "--allowed-lateness",
        "300",
        "--alarm-out-of-orderness",
        "1",
        # Partitions 1 and 2 stay empty at first and hold back the watermark (and so the alarms)
        # until idle; the last test needs a partition to stay active while the job catches up.
        "--idle-timeout",
        "60",
        "--rest-port",
        str(rest_port),
    )
    with loading(platform_broker.bootstrap, url) as loader:
        process = start_jobs(command, tmp / "jobs.log")
        try:
            job = FollowedJob(platform_broker.bootstrap, url, process, loader, f"http://127.0.0.1:{rest_port}")
            job.send([telemetry(second, 130.0 if second in BREACH else 100.0) for second in range(20)])
            yield job
        finally:
            stop_jobs(process)


def test_alarms_wait_for_their_own_bound_not_the_watermark(job):
    # Nothing after the input moves the watermark: only the alarms' 1 s bound lets the incident
    # out (the last reading, at 19 s, is 9 s past the clearing one at 10 s).
    job.wait("SELECT count(*) FROM alarms WHERE status = 'cleared'", [(1,)])
    assert rows(job.url, ALARMS) == [INCIDENT]

    job.send([telemetry(STRAGGLER_S, 131.0), telemetry(20)])
    job.wait_stored()
    assert rows(job.url, ALARMS) == [INCIDENT]  # the straggler opened no incident and counted for none
    assert rows(job.url, "SELECT count(*) FROM aggregates") == [(0,)]  # the 600 s watermark has not passed


def test_the_rest_api_counts_every_event_the_sources_read(job):
    job.send([telemetry(second) for second in range(30, 40)])
    job.wait_stored()
    # Flink refreshes the figures every 2 s.
    wait_for(lambda: events_read(job.rest_url) == len(job.sent), "REST count = events sent", 60, process=job.process)
    by_source = events_read_by_source(job.rest_url)
    assert by_source["src_vehicle_telemetry"] == len(job.sent)
    assert set(by_source.values()) == {0, len(job.sent)} and "src_device_heartbeat" in by_source


LATE = "event time is behind the watermark by more than the allowed lateness"


def test_late_and_malformed_events_are_dead_letters_with_the_reason_and_the_job_goes_on(job):
    """The watermark trails the newest event by 600 s (disorder bound + allowed lateness)."""
    job.send([telemetry(1000)])
    job.wait_stored()  # the watermark (400 s) passed every operator before the next events
    within, late, malformed = telemetry(450), telemetry(300), '{"schema": "vehicle.telemetry", "event_id": 7}'
    job.send([within])
    job.send([late, malformed], stored=False)
    job.send([telemetry(1001)])
    job.wait_stored()
    letters = rows(job.url, "SELECT kind, topic, payload, error, field FROM dead_letters ORDER BY kind")
    assert letters[0] == ("late", "fleet.vehicle-telemetry", late, LATE, None)
    kind, topic, payload, error, field = letters[1]
    assert (kind, topic, payload, field) == ("malformed", "fleet.vehicle-telemetry", malformed, "event_id")
    assert "valid string" in error
    assert len(letters) == 2
    stored = {event_id for (event_id,) in rows(job.url, "SELECT DISTINCT event_id FROM readings")}
    assert json.loads(within)["event_id"] in stored and json.loads(late)["event_id"] not in stored
    # The windows the watermark passed (ends up to 400 s) closed: one per metric and minute of the
    # readings from 0 to 55 s (nothing was sent from 60 to 400 s).
    metrics = rows(job.url, "SELECT count(DISTINCT metric) FROM readings")[0][0]
    job.wait("SELECT window_start, count(*) FROM aggregates GROUP BY 1", [(START, metrics)])


def test_a_partition_behind_the_others_holds_the_alarms_back_and_loses_none(job):
    """veh-b's partition is 30 s ahead when veh-c's incident arrives on another partition. The
    alarms' 1 s bound is counted per partition, as the watermark is, so the incident is raised and
    cleared; counted from the family's newest reading it would be skipped (as a partition resuming
    after a broker restart had its alarms skipped)."""
    ahead, behind, base = 1, 2, 2000
    job.send([telemetry(base + second, source="veh-b") for second in range(31)], partition=ahead)
    job.send([telemetry(base, source="veh-c")], partition=behind)
    job.wait_stored()
    incident = [
        telemetry(base + second, 130.0 if second in (10, 11) else 100.0, "veh-c") for second in (10, 11, 12, 15)
    ]
    job.send(incident, partition=behind)
    job.wait_stored()
    first_seen, cleared_at = START + timedelta(seconds=base + 10), START + timedelta(seconds=base + 12)
    job.wait(ALARMS.replace("veh-a", "veh-c"), [("speeding", first_seen, cleared_at, 2)])
