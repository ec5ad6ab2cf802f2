"""Child processes of the local platform: each in a process group of its own, so that stopping
it takes its grandchildren (the JVMs Flink's scripts and PyFlink start) with it."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

from devstack.ports import wait_until

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent


class Subprocess:
    """A child in its own process group with its output in <run>/logs/<name>.log. Stop: SIGTERM
    to the group, wait, then SIGKILL the group, so grandchildren (Flink's Java) go too."""

    def __init__(self, name: str, command: list[str], log_path: Path, stop_timeout_s: float = 20.0):
        self.name = name
        self.command = command
        self.log_path = log_path
        self.stop_timeout_s = stop_timeout_s
        self.process: subprocess.Popen | None = None

    def start(self, cwd: Path = REPO, env: dict | None = None) -> None:
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                self.command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        log.info("process started", extra={"service": self.name, "pid": self.process.pid, "log": str(self.log_path)})

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        group = self.process.pid  # start_new_session: the group id is the child's pid
        if self.process.poll() is None:
            _signal_group(group, signal.SIGTERM)
            try:
                self.process.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("did not stop in time; killing", extra={"service": self.name, "pid": group})
        _signal_group(group, signal.SIGKILL)  # whatever the child left behind in its group
        self.process.wait()
        # Grandchildren are reaped by init a moment after the kill: return once they are gone.
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: not _group_alive(group), 10, f"{self.name} process group exit")
        log.info("process ended", extra={"service": self.name, "returncode": self.process.returncode})

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a crash would."""
        if self.process is not None:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def wait_http_ok(self, url: str, timeout_s: float) -> None:
        """Wait until `url` answers 200; fails at once, with the log's tail, if the child exits."""

        def ok() -> bool:
            if not self.running():
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        try:
            wait_until(ok, timeout_s, f"{self.name} {url}", interval_s=0.2)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}; last log lines:\n{self.tail()}") from None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_group(group: int, timeout_s: float = 20.0) -> None:
    """SIGTERM a process group that another process started, wait, then SIGKILL what is left."""
    _signal_group(group, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not _group_alive(group), timeout_s, f"process group {group} exit", interval_s=0.2)
    _signal_group(group, signal.SIGKILL)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)
