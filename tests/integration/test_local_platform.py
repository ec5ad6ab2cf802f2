"""`python -m devstack.run` lifecycle: starts every service, prints the URLs, the API answers
/ready, Prometheus scrapes every service, readings reach the database, and SIGTERM stops
everything leaving no process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.support.promql import SCRAPED_JOBS

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


READINGS = re.compile(r"\| [\d,.]+ readings/s \(([\d,]+)\)")
FIRST_READING_BOUND_S = 600  # planning and deploying the job on a busy 2-core machine, with room


def run_until_first_readings() -> tuple[str, str, dict]:
    """`make run` until its live summary shows stored readings, then SIGTERM (as Ctrl-C)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.run", "--summary-interval", "2"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    timer = threading.Timer(FIRST_READING_BOUND_S, process.send_signal, (signal.SIGTERM,))
    timer.start()
    seen, ready, readings, taskmanager_metrics, metrics, prometheus, targets = [], None, 0, "", "", "", {}
    api, fleet = "", {}
    try:
        for line in process.stdout:
            seen.append(line)
            if found := re.match(r"API: (http://\S+)", line):
                api = found.group(1)
                with urllib.request.urlopen(api + "/ready", timeout=5) as response:
                    ready = (response.status, json.load(response))
            if found := re.match(r"API key for this run: (\S+)  \(e\.g\. curl -H '(Authorization: Bearer \S+)'", line):
                fleet = {"token": found.group(1), "anonymous": _status(api + "/fleet")}
                name, value = found.group(2).split(": ", 1)
                fleet["with_key"] = _status(api + "/fleet", {name: value})
            if found := re.search(r"TaskManager (http://\S+/metrics)", line):
                taskmanager_metrics = found.group(1)
            if found := re.match(r"Prometheus: (http://\S+)", line):
                prometheus = found.group(1)
            if (found := READINGS.search(line)) and int(found.group(1).replace(",", "")) > 0:
                readings = int(found.group(1).replace(",", ""))
                with urllib.request.urlopen(taskmanager_metrics, timeout=10) as response:
                    metrics = response.read().decode()
                # Each target scraped successfully at least once (the TaskManager's ~13k samples
                # may miss a scrape's timeout on 2 busy cores: the latest health alone would flap).
                query = urllib.parse.urlencode({"query": "max by (job) (max_over_time(up[10m]))"})
                with urllib.request.urlopen(f"{prometheus}/api/v1/query?{query}", timeout=10) as response:
                    targets = json.load(response)["data"]["result"]
                process.send_signal(signal.SIGTERM)
                break
        out, err = process.communicate(timeout=180)
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, f"{''.join(seen)[-3000:]}\n{out[-2000:]}\n{err[-3000:]}"
    assert readings > 0, f"no reading stored within {FIRST_READING_BOUND_S} s:\n{''.join(seen)[-3000:]}"
    return "".join(seen) + out, err, {"ready": ready, "metrics": metrics, "targets": targets, "fleet": fleet}


def _status(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def started_groups(err: str) -> list[int]:
    """Process ids the platform logged for its subprocesses (each leads its own group)."""
    return [json.loads(line)["pid"] for line in err.splitlines() if '"msg": "process started"' in line]


def test_platform_starts_stores_readings_and_stops_without_leftovers():
    out, err, seen = run_until_first_readings()
    status, body = seen["ready"]
    assert status == 200 and body["status"] == "ready" and body["pending_migrations"] == []
    # Authenticated by default: the run made a key, printed how to use it, and the API wants it.
    assert seen["fleet"]["anonymous"] == 401 and seen["fleet"]["with_key"] == 200, seen["fleet"]
    assert seen["fleet"]["token"] not in err  # printed for the user, never logged
    # Flink's Prometheus reporter on the TaskManager: the sources' record counts among its series.
    assert re.search(r"^flink_taskmanager_job_task_operator_numRecordsOut\{.*Source", seen["metrics"], re.M)
    # Prometheus scrapes every service it started, on the ports they got (first readings come
    # a minute or more after it started: each target has been scraped by then).
    assert {target["metric"]["job"]: target["value"][1] for target in seen["targets"]} == dict.fromkeys(
        SCRAPED_JOBS, "1"
    )
    assert "waiting for the jobs" in out  # progress while Flink plans, not silence
    assert re.search(r"run directory: .*\.local-run/", out) and "stopped; logs kept in" in out
    stopped = [json.loads(line)["service"] for line in err.splitlines() if '"msg": "stopped"' in line]
    # The stages in reverse, each stage's services in reverse: Flink stops before the broker.
    assert stopped == [
        *("prometheus", "simulator", "api", "alert-shipper", "loader", "migrations", "jobs", "postgres", "broker")
    ]
    assert re.search(r"^first reading stored \d+ s after start$", out, re.M)
    groups = started_groups(err)
    assert len(groups) == 5  # loader, TaskManager, JobManager, API, Prometheus
    leftovers = [p.info for p in psutil.process_iter(["pid", "cmdline"]) if _group(p) in groups]
    assert leftovers == []
    summary = next(json.loads(line) for line in err.splitlines() if '"msg": "summary"' in line)
    assert summary["sent"] > 0 and summary["errors"] == 0
    # What the simulator produced while Flink planned is read as a backlog: none of it turns late.
    # The dead letters are the simulator's own perturbations (1 % malformed, 0.5 % late).
    live = [json.loads(line) for line in err.splitlines() if '"msg": "live summary"' in line]
    assert live[-1]["generated"] > 0 and live[-1]["dead_letters"] <= 0.05 * live[-1]["generated"]


def _group(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, psutil.Error):
        return None


def test_bad_flags_are_rejected_with_a_clear_message():
    result = subprocess.run(
        [sys.executable, "-m", "devstack.run", "--summary-interval", "0"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--summary-interval and --jobs-timeout must be > 0" in result.stderr
