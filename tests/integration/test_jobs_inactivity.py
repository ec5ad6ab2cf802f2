"""Inactivity on the real mini-cluster: every device falls silent (so no watermark moves) and
each still raises its alarm within timeout + 30 s; a heartbeat brings one back online."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from jobs.sample import START, SampleSet, heartbeats
from storage.migrate import migrate_up
from tests.integration.test_jobs_pipeline import REPO, new_database, rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def wait_for(url: str, query: str, want, timeout_s: float, process: subprocess.Popen) -> float:
    started = time.monotonic()
    while rows(url, query) != want:
        assert process.poll() is None, "the job ended"
        assert time.monotonic() - started < timeout_s, rows(url, query)
        time.sleep(0.25)
    return time.monotonic() - started


def test_silent_devices_raise_alarms_and_a_heartbeat_clears_one(postgres_server, tmp_path):
    url = new_database(postgres_server)
    migrate_up(url)
    SampleSet(lines={"device.heartbeat": heartbeats(3, timeout_s=2)}).write(tmp_path / "in", seq=1)
    command = [
        sys.executable,
        "-m",
        "jobs",
        "inactivity",
        "--input-dir",
        str(tmp_path / "in"),
        "--follow",
        "--database-url",
        url,
        "--checkpoint-dir",
        str(tmp_path / "ck"),
        "--checkpoint-interval",
        "1",
    ]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        # Liveness rows appear once the first heartbeats were processed; from then on nothing
        # arrives at all, and only processing time can notice it.
        wait_for(url, "SELECT count(*) FROM device_inactivity", [(3,)], 300, process)
        silent_for = wait_for(url, "SELECT count(*) FROM alarms WHERE status = 'active'", [(3,)], 2 + 30, process)
        assert silent_for <= 32
        inactive = rows(url, "SELECT device_id, inactive, inactive_since FROM device_inactivity ORDER BY 1")
        assert inactive == [(f"dev-{d:03d}", True, START + timedelta(seconds=2)) for d in range(3)]

        back = START + timedelta(seconds=60)
        SampleSet(lines={"device.heartbeat": heartbeats(1, timeout_s=600, at=back)}).write(tmp_path / "in", seq=2)
        wait_for(
            url,
            "SELECT source_id, status, cleared_at FROM alarms WHERE status = 'cleared'",
            [("dev-000", "cleared", back)],
            60,
            process,
        )
        assert rows(url, "SELECT inactive FROM device_inactivity WHERE device_id = 'dev-000'") in (
            [(False,)],
            [(True,)],
        )
        # One alarm per silence: still exactly three rows, one of them cleared.
        assert rows(url, "SELECT count(*) FROM alarms WHERE alert_type = 'device_inactive'") == [(3,)]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
