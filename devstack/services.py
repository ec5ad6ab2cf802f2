"""The local platform's services, one small class each: `start()` returns once the service is
usable (or, for the jobs, launched), `stop()` releases everything it started."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from api.security import Role, key_entry, new_token
from devstack.alert_shipper import AlertShipper
from devstack.ports import free_port
from devstack.postgres import PrivatePostgres, postgres_url
from devstack.processes import Subprocess

log = logging.getLogger("devstack.services")
LOCAL_KEY_NAME = "make-run"  # the API key's name in a local run (acknowledged_by shows it)
LOCAL_KEY_ROLE = Role.ADMIN  # the local run's one key may do everything, on every fleet
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RunDir:
    """`.local-run/<timestamp>/`: the broker's data, the Flink processes' working directories, the
    jobs' checkpoints, one log per process. Kept after the run so the logs can be read."""

    root: Path

    @classmethod
    def create(cls, base: Path = REPO / ".local-run") -> RunDir:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{uuid.uuid4().hex[:4]}"
        run = cls(base / stamp)
        for path in (run.checkpoints, run.logs):
            path.mkdir(parents=True, exist_ok=True)
        return run

    @property
    def broker(self) -> Path:
        return self.root / "broker"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def prometheus(self) -> Path:
        return self.root / "prometheus"


# ---------------------------------------------------------------------------- database


class PostgresService:
    """A fresh database per run: on the server DATABASE_URL names (dropped at stop), else on a
    private server (removed at stop). A fresh one keeps runs from mixing their results."""

    name = "postgres"

    def __init__(self, external_url: str | None = None):
        self.external_url = external_url if external_url is not None else postgres_url()
        self._private: PrivatePostgres | None = None
        self._database: str | None = None
        self.url = ""  # the server's admin user (creates the database and the roles)
        self.logins: dict[str, str] = {}  # role key (storage.roles) -> its LOGIN user's URL, once migrated

    def url_for(self, role: str) -> str:
        """The URL of a role's LOGIN user: every component connects as its own role, as deployed."""
        if role not in self.logins:
            raise RuntimeError(f"no login for database role {role!r} yet: the migrations service makes them")
        return self.logins[role]

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

    def restart(self) -> None:
        """Crash and restart the private server (tests of recovery); the database stays."""
        if self._private is None:
            raise RuntimeError("only the private server can be restarted, not the one DATABASE_URL names")
        self._private.restart()

    def stop(self) -> None:
        if self.external_url and self._database:
            with psycopg.connect(self.external_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self._database}" WITH (FORCE)')
        if self._private is not None:
            self._private.stop()


class MigrationsService:
    """The timescaledb chart's migration Job, run locally: the same command (`python -m
    storage.migrate up --login-users`, DATABASE_URL and FLEET_DB_PASSWORD_<ROLE> in its
    environment), with a password per role made for this run. The one way the schema is migrated:
    nothing else (the jobs, the loader, the API) migrates at start."""

    name = "migrations"

    def __init__(self, postgres: PostgresService):
        self.postgres = postgres

    def start(self) -> None:
        from storage.roles import ROLES, login_url

        passwords = {key: secrets.token_urlsafe(24) for key in ROLES}
        environment = {ROLES[key].password_env: value for key, value in passwords.items()}
        storage_migrate(["up", "--login-users"], self.postgres.url, environment)
        self.postgres.logins = {key: login_url(self.postgres.url, key, value) for key, value in passwords.items()}
        # Later upgrades migrate as the owner: its login works and finds nothing pending.
        storage_migrate(["status", "--check"], self.postgres.url_for("owner"))

    def stop(self) -> None:
        pass


def storage_migrate(args: list[str], database_url: str, environment: dict[str, str] | None = None) -> None:
    """`python -m storage.migrate ARGS` on `database_url` (passed as the chart passes it, in
    DATABASE_URL); raises with its output when it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "storage.migrate", *args],
        cwd=REPO,
        env={**os.environ, **(environment or {}), "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"storage.migrate {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")


# ---------------------------------------------------------------------------- subprocesses


class JobsService:
    """The stream jobs as the chart runs them (devstack.flink_cluster): `python -m jobs all` in a
    JobManager in application mode and a TaskManager, on the chart's default job settings. Planning
    the job takes a while on 2 cores: start() only launches; `submitted()` says when it runs."""

    name = "jobs"
    chart = "flink-job"  # the chart that runs it in Kubernetes (its pods' app.kubernetes.io/name)

    def __init__(self, run: RunDir, bootstrap: Callable[[], str], extra: tuple[str, ...] = ()):
        from devstack.flink_cluster import FlinkCluster, chart_defaults

        self.run = run
        self.bootstrap = bootstrap  # the broker's address once it runs
        self.extra = extra
        self.defaults = chart_defaults()
        self.cluster = FlinkCluster(
            run.root / "flink",
            [],
            task_slots=self.defaults["task_slots"],
            jobmanager_memory=self.defaults["jobmanager_memory"],
            taskmanager_memory=self.defaults["taskmanager_memory"],
            log_dir=run.logs,
            jobmanager_java_opts=self.defaults["jobmanager_java_opts"],
        )
        self.rest_url = self.cluster.rest_url
        self.started_at = 0.0

    def job_args(self) -> list[str]:
        """The chart's job arguments (charts/flink-job/templates/jobmanager.yaml) with its defaults."""
        args = [
            "--bootstrap-servers",
            self.bootstrap(),
            "--checkpoint-dir",
            str(self.run.checkpoints),
            "--checkpoint-interval",
            self.defaults["checkpoint_interval"],
            "--parallelism",
            str(self.defaults["parallelism"]),
            "--trip-windows",
            self.defaults["trip_windows"],
        ]
        if self.defaults["alarm_out_of_orderness"]:
            args += ["--alarm-out-of-orderness", self.defaults["alarm_out_of_orderness"]]
        return [*args, *self.extra]

    def start(self) -> None:
        self.cluster.job_args = self.job_args()
        self.started_at = time.monotonic()
        self.cluster.start()

    def running(self) -> bool:
        return self.cluster.running()

    def scrape_targets(self) -> dict[str, list[str]]:
        """Flink's Prometheus reporter on each process (the chart's port 9249)."""
        return {f"flink-{role}": [f"127.0.0.1:{port}"] for role, port in self.cluster.metrics_ports.items()}

    def submitted(self) -> bool:
        return self.cluster.submitted()

    def wait_submitted(self, timeout_s: float = 300) -> float:
        """Seconds until the job runs; raises with the logs' tails if the cluster stops or times out."""
        self.cluster.wait_submitted(timeout_s)
        return time.monotonic() - self.started_at

    def tail(self) -> str:
        return self.cluster.tail()

    def stop(self) -> None:
        self.cluster.stop()


class LoaderService(Subprocess):
    """`python -m storage.loader`: the jobs' committed output from Kafka into the database
    (charts/loader in Kubernetes)."""

    chart = "loader"

    def __init__(self, run: RunDir, bootstrap: Callable[[], str], postgres: PostgresService):
        super().__init__("loader", [], run.logs / "loader.log")
        self.bootstrap = bootstrap
        self.postgres = postgres
        self.metrics_port = free_port()

    def scrape_targets(self) -> dict[str, list[str]]:
        return {"fleet-monitor-loader": [f"127.0.0.1:{self.metrics_port}"]}

    def start(self) -> None:
        self.command = [
            sys.executable,
            "-m",
            "storage.loader",
            "--bootstrap-servers",
            self.bootstrap(),
            "--database-url",
            self.postgres.url_for("writer"),
            "--metrics-port",
            str(self.metrics_port),
        ]
        super().start()


class ApiService(Subprocess):
    """The API as deployed: authenticated by default, with an admin key for every fleet made for
    this run (its token in `token`, `headers` ready to send; only its hash reaches the API, as in
    the chart)."""

    chart = "api"

    def __init__(self, run: RunDir, postgres: PostgresService, port: int | None = None):
        super().__init__("api", [], run.logs / "api.log")
        self.postgres = postgres
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = new_token()
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def scrape_targets(self) -> dict[str, list[str]]:
        return {"fleet-monitor-api": [f"127.0.0.1:{self.port}"]}

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
            self.postgres.url_for("api"),
        ]
        env = {**os.environ, "API_KEYS": key_entry(LOCAL_KEY_NAME, self.token, LOCAL_KEY_ROLE, None)}
        env.pop("API_KEYS_FILE", None)
        env.pop("API_READ_AUTH", None)  # the run is authenticated, whatever the calling shell says
        super().start(env=env)
        self.wait_http_ok(self.url + "/ready", timeout_s)

    def curl_example(self) -> str:
        return f"curl -H 'Authorization: Bearer {self.token}' {self.url}/fleet"


class AlertShipperService:
    """The alert shipper in a thread of this process, its metrics on a port of their own (as
    Vector's pod serves its own)."""

    name = "alert-shipper"
    chart = "vector"  # what it stands in for

    def __init__(self, bootstrap, postgres: PostgresService):
        self.bootstrap = bootstrap
        self.postgres = postgres
        self.shipper: AlertShipper | None = None
        self.metrics_port = free_port()
        self._metrics = None

    def scrape_targets(self) -> dict[str, list[str]]:
        return {"fleet-monitor-alert-shipper": [f"127.0.0.1:{self.metrics_port}"]}

    def start(self) -> None:
        from devstack.alert_shipper import REJECTED, SHIPPED

        self._metrics = serve_metrics(self.metrics_port, SHIPPED, REJECTED)
        self.shipper = AlertShipper(self.bootstrap(), self.postgres.url_for("writer")).start()

    def stop(self) -> None:
        if self.shipper is not None:
            self.shipper.stop()
        stop_serving(self._metrics)


class SimulatorService:
    """The fleet simulator in a thread, producing to the broker's telemetry topics from the
    start: the jobs read what it produced while Flink planned from their group's offsets.
    `make_source` and `make_sink` are called at start (the sink needs the broker running)."""

    name = "simulator"
    chart = "generator"

    def __init__(self, make_source, make_sink, paced: bool = True, progress_interval_s: float = 5.0):
        from generator.runner import RunStats

        self.make_source = make_source
        self.make_sink = make_sink
        self.source = self.sink = None
        self.paced = paced
        self.progress_interval_s = progress_interval_s
        self.stats = RunStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.metrics_port = free_port()
        self._metrics = None

    def scrape_targets(self) -> dict[str, list[str]]:
        return {"fleet-monitor-generator": [f"127.0.0.1:{self.metrics_port}"]}

    def start(self) -> None:
        from generator.runner import Metrics

        self.source, self.sink = self.make_source(), self.make_sink()
        self._metrics = Metrics(self.stats, self.source, self.sink).serve(self.metrics_port)
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from generator.runner import run

        try:
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
        stop_serving(self._metrics)


def serve_metrics(port: int, *collectors):
    """An HTTP /metrics server of its own for `collectors` (prometheus_client); stop_serving ends it."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return start_http_server(port, addr="127.0.0.1", registry=registry)


def stop_serving(served) -> None:
    """Shut down what serve_metrics (or generator.runner.Metrics.serve) started."""
    if served is not None:
        server, _thread = served
        server.shutdown()
        server.server_close()
