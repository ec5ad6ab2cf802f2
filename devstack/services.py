"""The local platform's services, one small class each: `start()` returns once the service is
usable (or, for the jobs, launched), `stop()` releases everything it started."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from devstack.alert_shipper import AlertShipper
from devstack.ports import free_port, wait_until
from devstack.postgres import PrivatePostgres, postgres_url

log = logging.getLogger("devstack.services")
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RunDir:
    """`.local-run/<timestamp>/`: the simulator's input files, the jobs' checkpoints, one log per
    subprocess. Kept after the run so the logs can be read."""

    root: Path

    @classmethod
    def create(cls, base: Path = REPO / ".local-run") -> RunDir:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{uuid.uuid4().hex[:4]}"
        run = cls(base / stamp)
        for path in (run.input, run.checkpoints, run.logs):
            path.mkdir(parents=True, exist_ok=True)
        return run

    @property
    def input(self) -> Path:
        return self.root / "input"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


# ---------------------------------------------------------------------------- database


class PostgresService:
    """A fresh database per run: on the server DATABASE_URL names (dropped at stop), else on a
    private server (removed at stop). A fresh one keeps runs from mixing their results."""

    name = "postgres"

    def __init__(self, external_url: str | None = None):
        self.external_url = external_url if external_url is not None else postgres_url()
        self._private: PrivatePostgres | None = None
        self._database: str | None = None
        self.url = ""

    def start(self) -> None:
        if self.external_url:
            server = self.external_url
        else:
            self._private = PrivatePostgres().start()
            server = self._private.url
        self._database = f"fleet_local_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self._database}"')
        self.url = urlunsplit(urlsplit(server)._replace(path=f"/{self._database}"))
        log.info(
            "database ready",
            extra={"server": "DATABASE_URL" if self.external_url else "private", "database": self._database},
        )

    def stop(self) -> None:
        if self.external_url and self._database:
            with psycopg.connect(self.external_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self._database}" WITH (FORCE)')
        if self._private is not None:
            self._private.stop()


class MigrationsService:
    name = "migrations"

    def __init__(self, postgres: PostgresService):
        self.postgres = postgres

    def start(self) -> None:
        from storage.migrate import migrate_up

        migrate_up(self.postgres.url)

    def stop(self) -> None:
        pass


# ---------------------------------------------------------------------------- subprocesses


class Subprocess:
    """A child in its own process group with its output in <run>/logs/<name>.log. Stop: SIGTERM
    to the group, wait, then SIGKILL the group, so grandchildren (Flink's Java) go too."""

    def __init__(self, name: str, command: list[str], log_path: Path, stop_timeout_s: float = 20.0):
        self.name = name
        self.command = command
        self.log_path = log_path
        self.stop_timeout_s = stop_timeout_s
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                self.command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
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

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


LOW_LATENCY = (
    ("--alarm-out-of-orderness", "0.5"),
    ("--monitor-interval", "0.25"),
    ("--checkpoint-interval", "1"),
    ("--load-interval", "0.25"),
)
"""Locally the alarms wait 0.5 s for disorder (the simulator's stream is in order but for its 2 %
of jittered events), not the watermark's 5 s, and input is scanned and output loaded every
0.25 s. Alarm p99 in the API (make bench-e2e, warm): 2.6 s at 5k events/s, against 4.6 s with a
1 s bound and 1 s intervals. Checkpoints stay at 1 s: at 0.5 s the jobs read 17.4k events/s of
20k, at 1 s 20.4k."""


class JobsService(Subprocess):
    """`python -m jobs all --follow` on the simulator's files. Planning the job takes 40-60 s on
    2 cores: start() only launches it; `submitted()` says when the job runs."""

    def __init__(self, run: RunDir, postgres: PostgresService, alerts_bootstrap, extra: tuple[str, ...] = ()):
        super().__init__("jobs", [], run.logs / "jobs.log", stop_timeout_s=30.0)
        self.run = run
        self.postgres = postgres
        self.alerts_bootstrap = alerts_bootstrap  # callable: the broker's address once it runs
        self.extra = extra
        self.started_at = 0.0
        self.rest_port = free_port()
        self.rest_url = f"http://127.0.0.1:{self.rest_port}"

    def start(self) -> None:
        self.command = [
            sys.executable,
            "-m",
            "jobs",
            "all",
            "--input-dir",
            str(self.run.input),
            "--follow",
            "--database-url",
            self.postgres.url,
            "--alerts-bootstrap-servers",
            self.alerts_bootstrap(),
            "--checkpoint-dir",
            str(self.run.checkpoints),
            *(word for option in LOW_LATENCY for word in option),
            "--rest-port",
            str(self.rest_port),
            *self.extra,
        ]
        self.started_at = time.monotonic()
        super().start()

    def stop(self) -> None:
        if self.process is not None and not self.submitted():
            self.stop_timeout_s = 0.1  # still planning: no state to save, planning ignores SIGTERM
        super().stop()

    def wait_submitted(self, timeout_s: float = 300) -> float:
        """Seconds until the job runs; raises with the log's tail if the jobs exit or time out."""

        def ready() -> bool:
            if not self.running():
                raise RuntimeError(f"jobs exited with {self.process.returncode}:\n{self.tail()}")
            return self.submitted()

        wait_until(ready, timeout_s, "Flink jobs", interval_s=1)
        return time.monotonic() - self.started_at

    def submitted(self) -> bool:
        """The job is planned and running (its driver logged 'job submitted')."""
        try:
            with open(self.log_path, "rb") as handle:
                return b'"msg": "job submitted"' in handle.read()
        except OSError:
            return False


class ApiService(Subprocess):
    def __init__(self, run: RunDir, postgres: PostgresService, port: int | None = None):
        super().__init__("api", [], run.logs / "api.log")
        self.postgres = postgres
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60) -> None:
        self.command = [
            sys.executable,
            "-m",
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--database-url",
            self.postgres.url,
        ]
        super().start()
        try:
            wait_until(self._ready, timeout_s, "API /ready", interval_s=0.2)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}; last log lines:\n{self.tail()}") from None

    def _ready(self) -> bool:
        if not self.running():
            raise RuntimeError(f"API exited with {self.process.returncode}:\n{self.tail()}")
        try:
            with urllib.request.urlopen(self.url + "/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False


class AlertShipperService:
    name = "alert-shipper"

    def __init__(self, bootstrap, postgres: PostgresService):
        self.bootstrap = bootstrap
        self.postgres = postgres
        self.shipper: AlertShipper | None = None

    def start(self) -> None:
        self.shipper = AlertShipper(self.bootstrap(), self.postgres.url).start()

    def stop(self) -> None:
        if self.shipper is not None:
            self.shipper.stop()


class SimulatorService:
    """The fleet simulator in a thread, writing JSON-lines files the jobs read (file mode).

    With `after`, generation waits until it returns true (the jobs run): files written while Flink
    plans would be found all at once and read in no particular order, which made ~80 % of them
    late dead letters. `source` may then be a factory, called when generation starts, so that the
    simulated clock starts then too."""

    name = "simulator"

    def __init__(
        self,
        source,
        sink,
        paced: bool = True,
        progress_interval_s: float = 5.0,
        after: Callable[[], bool] | None = None,
    ):
        from generator.runner import RunStats

        self.source = source
        self.sink = sink
        self.paced = paced
        self.progress_interval_s = progress_interval_s
        self.after = after
        self.stats = RunStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from generator.runner import run

        while self.after is not None and not self.after():
            if self._stop.wait(0.25):
                return
        try:
            if callable(self.source):
                self.source = self.source()
            run(
                self.source,
                self.sink,
                self._stop,
                paced=self.paced,
                progress_interval_s=self.progress_interval_s,
                stats=self.stats,
            )
        except BaseException as exc:  # reported by the platform's loop
            self.error = exc
            log.exception("simulator failed")

    def finished(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


# ---------------------------------------------------------------------------- Kafka or files


def pinned_connector() -> tuple[str, str]:
    """(version, sha256) of the Kafka SQL connector jar the job image pins (jobs/Dockerfile)."""
    text = (REPO / "jobs" / "Dockerfile").read_text()
    version = re.search(r"ARG KAFKA_CONNECTOR_VERSION=(\S*)", text)
    sha = re.search(r'ARG KAFKA_CONNECTOR_SHA256="?([0-9a-fA-F]*)"?', text)
    return (version.group(1) if version else ""), (sha.group(1).lower() if sha else "")


def source_mode() -> tuple[str, str]:
    """("kafka" | "files", why). Kafka needs the pinned connector jar AND a way to put it on the
    jobs' classpath; the jobs CLI has no option for extra jars yet, so a found jar is reported
    but the jobs still read the simulator's files."""
    version, sha = pinned_connector()
    candidates = [Path(p) for p in [os.environ.get("FLINK_KAFKA_CONNECTOR_JAR", "")] if p]
    candidates.append(REPO / ".tools" / "flink" / f"flink-sql-connector-kafka-{version}.jar")
    for jar in candidates:
        if not jar.is_file():
            continue
        digest = hashlib.sha256(jar.read_bytes()).hexdigest()
        if not sha or digest != sha:
            return "files", f"{jar} does not match the sha256 pinned in jobs/Dockerfile ({sha or 'no pin'})"
        return "files", f"Kafka connector jar {jar} verified, but the jobs CLI cannot add jars to its classpath"
    return "files", (
        f"no Kafka connector jar (flink-sql-connector-kafka-{version}; set FLINK_KAFKA_CONNECTOR_JAR "
        "or run scripts/setup.d/flink-kafka-connector.sh)"
    )
