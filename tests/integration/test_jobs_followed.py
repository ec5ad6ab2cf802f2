"""A followed job on the real mini-cluster, with a watermark bound of 10 minutes so that no window
closes: the alarms under their own 1 s bound are raised and cleared anyway, and a breaching reading
that arrives 16 s behind its family's newest (after the alarms' watermark passed it) skips the rules
but is stored like every other reading; the job's REST API counts every event its sources read."""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import timedelta

import pytest

from devstack.flink_rest import events_read, events_read_by_source
from devstack.ports import free_port, wait_until
from jobs import sample
from jobs.sample import START, SampleSet
from tests.integration.test_jobs_inactivity import wait_for
from tests.integration.test_jobs_pipeline import REPO, jobs_command, new_database, rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BREACH = range(5, 10)  # seconds after START at 130 km/h; the rest at 100 km/h
STRAGGLER_S = 3  # a breaching reading from before the incident, in a later file
INCIDENT = ("speeding", START + timedelta(seconds=5), START + timedelta(seconds=10), len(BREACH))
ALARMS = "SELECT alert_type, first_seen, cleared_at, count FROM alarms WHERE source_id = 'veh-a'"
EVENTS_STORED = "SELECT count(DISTINCT event_id) FROM readings"


def telemetry(second: int, speed_kmh: float) -> str:
    return sample.telemetry("veh-a", f"t-{second}-{speed_kmh:g}", START + timedelta(seconds=second), speed_kmh, second)


class FollowedJob:
    def __init__(self, url: str, input_dir, output_dir, process: subprocess.Popen, rest_url: str):
        self.url, self.input_dir, self.output_dir = url, input_dir, output_dir
        self.process, self.rest_url = process, rest_url
        self.written: list[str] = []

    def write(self, lines: list[str]) -> None:
        self.written += lines
        SampleSet(lines={"vehicle.telemetry": lines}).write(self.input_dir, seq=len(self.written))

    def wait(self, query: str, want, timeout_s: float = 120) -> None:
        wait_for(self.url, query, want, timeout_s, self.process)


@pytest.fixture(scope="module")
def job(postgres_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("followed")
    url, rest_port = new_database(postgres_server), free_port()
    extra = ("--follow", "--out-of-orderness", "600", "--alarm-out-of-orderness", "1", "--rest-port", str(rest_port))
    with open(tmp / "jobs.log", "wb") as log:
        process = subprocess.Popen(
            jobs_command(tmp / "in", url, tmp / "ck", *extra),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    job = FollowedJob(url, tmp / "in", tmp / "ck" / "output", process, f"http://127.0.0.1:{rest_port}")
    job.write([telemetry(second, 130.0 if second in BREACH else 100.0) for second in range(20)])
    try:
        yield job
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def test_alarms_wait_for_their_own_bound_not_the_watermark(job):
    # Nothing after the input moves any watermark: only the alarms' 1 s bound lets the incident
    # out (the last reading, at 19 s, is 9 s past the clearing one at 10 s).
    job.wait("SELECT count(*) FROM alarms WHERE status = 'cleared'", [(1,)], timeout_s=300)
    assert rows(job.url, ALARMS) == [INCIDENT]

    job.write([telemetry(STRAGGLER_S, 131.0), telemetry(20, 100.0)])
    job.wait(EVENTS_STORED, [(len(job.written),)])
    assert rows(job.url, ALARMS) == [INCIDENT]  # the straggler opened no incident and counted for none
    assert rows(job.url, "SELECT count(*) FROM aggregates") == [(0,)]  # the 600 s watermark has not passed


def test_the_rest_api_counts_every_event_the_sources_read(job):
    job.write([telemetry(second, 100.0) for second in range(30, 40)])
    job.wait(EVENTS_STORED, [(len(job.written),)], timeout_s=300)
    # Flink refreshes the figures every 2 s.
    wait_until(lambda: events_read(job.rest_url) == len(job.written), 30, "REST count = events written")
    by_source = events_read_by_source(job.rest_url)
    assert by_source["src_vehicle_telemetry"] == len(job.written)
    assert set(by_source.values()) == {0, len(job.written)} and "src_device_heartbeat" in by_source


def test_loaded_output_files_are_deleted_once_no_checkpoint_needs_them(job):
    job.write([telemetry(second, 100.0) for second in range(50, 55)])
    job.wait(EVENTS_STORED, [(len(job.written),)], timeout_s=300)

    def on_disk() -> int:
        return sum(1 for path in job.output_dir.rglob("*") if path.is_file() and not path.name.startswith("."))

    # Checkpoints every second, three retained: a file loaded a few checkpoints ago goes.
    wait_until(lambda: on_disk() < rows(job.url, "SELECT count(*) FROM job_output_files")[0][0], 60, "pruning")
