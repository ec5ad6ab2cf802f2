"""Inactivity on the real mini-cluster, fed through a real Kafka broker and loaded into real
PostgreSQL: every device falls silent (so no watermark moves) and each still raises its alarm
within timeout + 30 s, on processing time; a heartbeat brings one back online and clears its alarm."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs.sample import START, SampleSet, heartbeats
from tests.support.jobs_run import jobs_command, loading, new_database, rows, start_jobs, stop_jobs, wait_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_silent_devices_raise_alarms_and_a_heartbeat_clears_one(platform_broker, postgres_server, tmp_path):
    url = new_database(postgres_server)
    SampleSet(lines={"device.heartbeat": heartbeats(3, timeout_s=2)}).produce(platform_broker.bootstrap)
    command = jobs_command(
        platform_broker.bootstrap,
        "--start-from",
        "earliest",
        "--checkpoint-dir",
        str(tmp_path / "ck"),
        job="inactivity",
    )
    with loading(platform_broker.bootstrap, url) as loader:
        process = start_jobs(command, tmp_path / "jobs.log")
        alive = {"process": process, "loader": loader}
        try:
            # Liveness rows appear once the first heartbeats were processed; from then on nothing
            # arrives at all, and only processing time can notice it.
            wait_rows(url, "SELECT count(*) FROM device_inactivity", [(3,)], 300, **alive)
            silent_for = wait_rows(url, "SELECT count(*) FROM alarms WHERE status = 'active'", [(3,)], 2 + 30, **alive)
            assert silent_for <= 32
            inactive = rows(url, "SELECT device_id, inactive, inactive_since FROM device_inactivity ORDER BY 1")
            assert inactive == [(f"dev-{d:03d}", True, START + timedelta(seconds=2)) for d in range(3)]
            assert rows(url, "SELECT DISTINCT alert_type, first_seen, threshold FROM alarms") == [
                ("device_inactive", START + timedelta(seconds=2), 2.0)
            ]

            back = START + timedelta(seconds=60)
            SampleSet(lines={"device.heartbeat": heartbeats(1, timeout_s=600, at=back)}).produce(
                platform_broker.bootstrap
            )
            wait_rows(
                url,
                "SELECT source_id, status, cleared_at FROM alarms WHERE status = 'cleared'",
                [("dev-000", "cleared", back)],
                60,
                **alive,
            )
            wait_rows(
                url,
                "SELECT inactive, inactive_since, last_seen FROM device_inactivity WHERE device_id = 'dev-000'",
                [(False, None, back)],
                60,
                **alive,
            )
            # One alarm per silence: still exactly three rows, one of them cleared.
            assert rows(url, "SELECT count(*) FROM alarms WHERE alert_type = 'device_inactive'") == [(3,)]
        finally:
            stop_jobs(process)
