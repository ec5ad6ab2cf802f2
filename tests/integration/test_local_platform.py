"""`python -m devstack.run` lifecycle: starts every service, prints the URLs, the API answers
/ready, stops cleanly after --duration leaving no process behind, and a second start works."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def start(duration: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "devstack.run", "--duration", str(duration), "--rate", "50", "--summary-interval", "2"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_once(duration: float = 35) -> tuple[str, str, dict]:
    process = start(duration)
    ready, seen = None, []
    try:
        for line in process.stdout:
            seen.append(line)
            found = re.match(r"API: (http://\S+)", line)
            if found:
                with urllib.request.urlopen(found.group(1) + "/ready", timeout=5) as response:
                    ready = (response.status, json.load(response))
                break
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err[-3000:]
    return "".join(seen) + out, err, {"ready": ready}


def started_groups(err: str) -> list[int]:
    """Process ids the platform logged for its subprocesses (each leads its own group)."""
    return [json.loads(line)["pid"] for line in err.splitlines() if '"msg": "process started"' in line]


@pytest.mark.parametrize("attempt", ["first", "second"])
def test_platform_starts_prints_urls_serves_ready_and_stops_without_leftovers(attempt):
    out, err, seen = run_once()
    status, body = seen["ready"]
    assert status == 200 and body["status"] == "ready" and body["pending_migrations"] == []
    assert "mode: jobs read files" in out
    assert "waiting for the jobs" in out  # progress while Flink plans, not silence
    assert re.search(r"run directory: .*\.local-run/", out) and "stopped; logs kept in" in out
    stopped = [json.loads(line)["service"] for line in err.splitlines() if '"msg": "stopped"' in line]
    assert stopped == ["simulator", "api", "jobs", "alert-shipper", "migrations", "postgres", "broker"]
    groups = started_groups(err)
    assert len(groups) == 2  # jobs and API
    leftovers = [p.info for p in psutil.process_iter(["pid", "cmdline"]) if _group(p) in groups]
    assert leftovers == []
    summary = next(json.loads(line) for line in err.splitlines() if '"msg": "summary"' in line)
    assert summary["sent"] > 0 and summary["errors"] == 0
    # The simulator waits for the jobs: nothing piles up unread and turns late. What is left are
    # its own perturbations (1 % malformed, 0.5 % late), not the ~80 % of a planning backlog.
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
