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
  certificate; the TimescaleDB extension itself is not installable here (tests/support/timescale_engine
  explains), so `--timescaledb auto` migrations take the plain-PostgreSQL path (the retention
  settings are still checked: storage.policies refuses bad ones before connecting);
- image paths -> the repository's .venv, PyFlink's Flink distribution, the charts; the Flink
  JobManager Service name -> 127.0.0.1; every container port -> a free loopback port.
Third-party images whose program runs here get their rendered config checked by that program:
Kafka's broker (KafkaConfig validation in `kafka-storage format`, then a start for dev's single
broker) and PostgreSQL (every rendered -c parameter through `postgres -C`). Vector and Grafana do
not run here: their rendered config goes through strict models of the real programs' field types
(Grafana 12.2's: tests/support/grafana_config.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import psycopg
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.topics import ALL_TOPICS
from devstack.broker import Broker
from devstack.dockerfile import parse_dockerfile
from devstack.ports import free_port, wait_until
from devstack.postgres import SERVER_USER, _as_server_user, _bin_dir
from tests.support import grafana_config
from tests.support.charts import ROOT, find
from tests.support.environments import NAME, Environment, kafka_pod
from tests.support.operator_harness import helm_as, install_operator_chart
from tests.support.pods import (
    LAYOUTS,
    VENV,
    Endpoints,
    ImageLayout,
    LocalContainer,
    Objects,
    PodContext,
    container_env,
    flink_entrypoint,
    pod_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
READY_S = 120
FLINK_READY_S = 300


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
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{rest}/jobs/overview", timeout=5) as response:
                    jobs = json.load(response)["jobs"]
            except OSError:  # the REST endpoint restarting or going away: the next check says which
                return False
            return any(job["state"] == "RUNNING" for job in jobs)

        try:
            wait_until(job_running, FLINK_READY_S, "the job RUNNING on the rendered Flink pods", interval_s=1)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n" + "\n".join(c.describe() for c in started)) from None
    finally:
        for container in reversed(started):
            container.stop()


def test_kafka_pod_formats_and_serves(dev: Environment, tmp_path: Path) -> None:
    """dev's single broker: start.sh formats the KRaft storage with the rendered config (Kafka's
    own KafkaConfig validation) and starts the broker, which passes its readinessProbe."""
    run_until_ready(kafka_pod(dev, 0, tmp_path, start=True), READY_S)


def test_prod_kafka_configs_pass_kafkas_validation(tmp_path: Path) -> None:
    """prod's three brokers: each pod's start.sh formats its storage (KafkaConfig validation of
    the rendered server.properties: quorum, listeners, replication settings) and the JVM takes
    the rendered heap options."""
    prod = Environment("prod", tmp_path / "render")
    for ordinal in range(prod.workload("kafka", "StatefulSet")["spec"]["replicas"]):
        run_job(kafka_pod(prod, ordinal, tmp_path / f"kafka-{ordinal}", start=False))


def test_timescaledb_pod_takes_its_rendered_settings(timescaledb: TimescalePod) -> None:
    assert timescaledb.ready()


# --- Vector: no binary here; its rendered config through a strict model of Vector's own field types -


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class VectorApi(Strict):
    enabled: bool
    address: str


class KafkaSasl(Strict):  # Vector's KafkaSaslConfig
    enabled: bool
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
    username: str
    password: str


class KafkaTls(Strict):  # Vector's TlsEnableableConfig (the fields the chart sets)
    enabled: bool
    ca_file: str


class KafkaSource(Strict):
    type: Literal["kafka"]
    bootstrap_servers: str
    group_id: str
    topics: list[str]
    auto_offset_reset: Literal["smallest", "earliest", "beginning", "largest", "latest", "end", "error"]
    librdkafka_options: dict[str, str] = {}  # Vector: HashMap<String, String>
    decoding: dict[Literal["codec"], Literal["json", "bytes", "native_json"]]
    sasl: KafkaSasl | None = None  # the kafka chart's auth.enabled
    tls: KafkaTls | None = None


class InternalMetricsSource(Strict):
    type: Literal["internal_metrics"]
    scrape_interval_secs: float | None = None


class Batch(Strict):
    max_events: int = Field(gt=0)  # usize
    timeout_secs: float | int  # f64: YAML integers are fine


class DiskBuffer(Strict):
    type: Literal["disk"]
    max_size: int = Field(ge=268435488)  # NonZeroU64, and Vector's minimum for a disk buffer
    when_full: Literal["block", "drop_newest"]


class PostgresSink(Strict):
    type: Literal["postgres"]
    inputs: list[str]
    endpoint: str
    table: str
    pool_size: int = Field(gt=0)  # u32
    batch: Batch
    buffer: DiskBuffer
    acknowledgements: dict[Literal["enabled"], bool]


class PrometheusExporterSink(Strict):
    type: Literal["prometheus_exporter"]
    inputs: list[str]
    address: str


class VectorConfig(Strict):
    data_dir: str
    api: VectorApi
    sources: dict[str, KafkaSource | InternalMetricsSource]
    sinks: dict[str, PostgresSink | PrometheusExporterSink]


@pytest.mark.parametrize("environment", ["dev", "qa", "prod"])
def test_vector_config_has_vectors_field_types(environment: str, tmp_path: Path) -> None:
    """The rendered vector.yaml parses into Vector's field types exactly (an integer rendered as
    8.589934592e+09 is a float, which Vector's u64 max_size refuses), and every ${VAR} it
    interpolates is set in the Vector container's env from the rendered Secrets."""
    env = Environment(environment, tmp_path)
    workload = env.workload("vector", "StatefulSet")
    config_map = find(env.docs["vector"], "ConfigMap", f"{NAME}-vector")[0]
    text = config_map["data"]["vector.yaml"]
    config = VectorConfig.model_validate(yaml.safe_load(text))
    pod, spec = pod_of(workload, env.namespace)
    variables = container_env(spec["containers"][0], env.objects, pod)
    for name in re.findall(r"\$\{(\w+)\}", text):
        assert name in variables, f"vector.yaml interpolates ${{{name}}}, which the container's env does not set"
    mounts = [mount["mountPath"] for mount in spec["containers"][0].get("volumeMounts", [])]
    for source in config.sources.values():
        if getattr(source, "tls", None) is not None:  # qa and prod: the kafka chart's auth.enabled
            assert str(Path(source.tls.ca_file).parent) in mounts, f"{source.tls.ca_file} is not mounted"


def test_vector_model_refuses_a_float_max_size() -> None:
    config = {"type": "disk", "max_size": 8.589934592e09, "when_full": "block"}
    with pytest.raises(ValidationError, match="max_size"):
        DiskBuffer.model_validate(config)


# --- Grafana: no binary here; its rendered settings and provisioning through a strict model of
# Grafana 12.2's own field types and checks (tests/support/grafana_config.py says which) ----------

# dev and prod as deployed, and a FleetMonitor that turns the database's TLS off: Grafana must
# follow the database's sslmode as the other clients (database-url) do.
GRAFANA_CASES = {
    "dev": ("dev", None),
    "prod": ("prod", None),
    "prod-tls-off": ("prod", {"timescaledb": {"values": {"tls": {"enabled": False}}}}),
}


class GrafanaPod:
    """The rendered grafana container: its env (from the rendered Secrets), mounts and files."""

    def __init__(self, env: Environment):
        workload = env.workload("grafana", "Deployment")
        self.pod, self.spec = pod_of(workload, env.namespace)
        self.container = self.spec["containers"][0]
        self.env = container_env(self.container, env.objects, self.pod)
        self.objects = env.objects
        self.volumes = {v["name"]: v for v in self.spec.get("volumes") or []}
        self.mounts = {m["mountPath"]: m for m in self.container.get("volumeMounts") or []}

    def files_under(self, directory: str) -> dict[str, str]:
        """mount path -> content of each ConfigMap file mounted in `directory` (Grafana reads every
        *.yaml there)."""
        files = {}
        for path, mount in self.mounts.items():
            volume = self.volumes[mount["name"]]
            if path.rsplit("/", 1)[0] == directory and "configMap" in volume and mount.get("subPath"):
                files[path] = self.objects.configmaps[volume["configMap"]["name"]][mount["subPath"]]
        return files

    def directory(self, path: str) -> dict[str, str]:
        """The files of the ConfigMap volume mounted at `path`."""
        mount = self.mounts.get(path)
        assert mount is not None, f"{path} is not a mount of the grafana container (mounts: {sorted(self.mounts)})"
        volume = self.volumes[mount["name"]]
        assert "configMap" in volume and not mount.get("subPath"), f"{path}: not a ConfigMap directory"
        return self.objects.configmaps[volume["configMap"]["name"]]

    def writable(self, path: str) -> bool:
        """On a read-only root filesystem, only what a writable volume holds can be written."""
        if not self.container.get("securityContext", {}).get("readOnlyRootFilesystem"):
            return True
        holders = [p for p in self.mounts if path == p or path.startswith(p.rstrip("/") + "/")]
        return bool(holders) and not self.mounts[max(holders, key=len)].get("readOnly")


@pytest.mark.parametrize("case", list(GRAFANA_CASES))
def test_grafana_config_has_grafanas_field_types(case: str, tmp_path: Path) -> None:
    """The grafana pod's GF_* settings, datasource and dashboard provisioning files as Grafana 12.2
    reads them (a strict stand-in for the program: grafana_config says which rules and where
    Grafana applies them); the PostgreSQL datasource reaches the database the way its Secret says."""
    environment, components = GRAFANA_CASES[case]
    env = Environment(environment, tmp_path, components)
    pod = GrafanaPod(env)
    settings = grafana_config.settings(pod.env)
    port = int(settings["server", "http_port"])
    assert {p["containerPort"] for p in pod.container["ports"] if p["name"] == "http"} == {port}
    for kind in ("readinessProbe", "livenessProbe"):
        assert pod.container[kind]["httpGet"] == {"path": "/api/health", "port": "http"}, kind
    for key in ("data", "logs", "plugins"):
        assert pod.writable(settings["paths", key]), f"[paths] {key} {settings['paths', key]} is not writable"

    provisioning = settings["paths", "provisioning"]
    datasource_files = pod.files_under(f"{provisioning}/datasources")
    assert datasource_files, f"no datasource file mounted in {provisioning}/datasources"
    variables = {**grafana_config.IMAGE_ENV, **pod.env}
    sources = [
        source
        for text in datasource_files.values()
        for source in grafana_config.check_datasources(yaml.safe_load(text), variables).datasources
    ]
    secret = env.objects.secrets[f"{NAME}-timescaledb-grafana"]  # the read-only role's (storage.roles)
    assert secret["username"] == "fleet_grafana_login"
    postgres = [s for s in sources if s.type in grafana_config.POSTGRES_TYPES]
    assert len(postgres) == 1, [s.name for s in sources]
    jsondata = grafana_config.PostgresJsonData.model_validate(postgres[0].jsonData)
    assert grafana_config.postgres_host_port(postgres[0].url) == (secret["host"], int(secret["port"]))
    assert (postgres[0].user, jsondata.database) == (secret["username"], secret["database"])
    assert jsondata.sslmode == secret["sslmode"], (
        f"Grafana connects with sslmode={jsondata.sslmode}, the database serves sslmode={secret['sslmode']}"
    )

    for text in pod.files_under(f"{provisioning}/dashboards").values():
        for provider in grafana_config.check_providers(yaml.safe_load(text)).providers:
            files = pod.directory(provider.options.path)
            dashboards = [grafana_config.Dashboard.model_validate_json(files[n]) for n in files if n.endswith(".json")]
            uids = [d.uid for d in dashboards]
            assert dashboards and len(set(uids)) == len(uids), f"{provider.name}: dashboards {uids}"


def test_grafana_model_refuses_what_grafana_refuses() -> None:
    with pytest.raises(ValueError, match="GF_ANALYTICS_REPORTING_ENABLED='no'"):
        grafana_config.settings({"GF_ANALYTICS_REPORTING_ENABLED": "no"})
    with pytest.raises(ValueError, match="GF_ANALYTICS_REPORTNG_ENABLED: no Grafana"):
        grafana_config.settings({"GF_ANALYTICS_REPORTNG_ENABLED": "false"})
    with pytest.raises(ValueError, match="GF_SERVER_HTTP_PORT"):
        grafana_config.settings({"GF_SERVER_HTTP_PORT": "3000.0"})
    good = {"database": "fleet", "sslmode": "require", "maxOpenConns": 10, "postgresVersion": 1600}
    grafana_config.PostgresJsonData.model_validate(good)
    for field, bad in (
        ("maxOpenConns", "10"),
        ("maxOpenConns", 10.5),
        ("sslmode", "required"),
        ("timescaledb", "true"),
    ):
        with pytest.raises(ValidationError, match=field):
            grafana_config.PostgresJsonData.model_validate({**good, field: bad})
    with pytest.raises(ValidationError, match="uid"):
        grafana_config.Datasource.model_validate({"name": "x", "type": "prometheus", "uid": "fleet prometheus"})
    with pytest.raises(ValueError, match=r"strconv\.Atoi"):
        grafana_config.postgres_host_port("db.svc:")
    two_defaults = {
        "apiVersion": 1,
        "datasources": [{"name": n, "type": "prometheus", "uid": n, "isDefault": True} for n in ("a", "b")],
    }
    with pytest.raises(ValueError, match="more than one default"):
        grafana_config.check_datasources(two_defaults, {})


# --- the operator: its chart installed on the local cluster, its pod's process run as the chart's
# ServiceAccount --------------------------------------------------------------------------------------

OPERATOR_READY_S = 90


def operator_container(cluster, namespace: str, release: str, workdir: Path) -> LocalContainer:
    """The installed Deployment's container (helm's own record of the manifest) through pods.py:
    operator/Dockerfile's ENTRYPOINT with the rendered args, env (FLEET_OPERATOR_NAMESPACE from
    the downward API), the /tmp emptyDir. The pod's in-cluster credentials -> a kubeconfig with a
    TokenRequest token of the rendered ServiceAccount, so its RBAC is what the API server applies."""
    docs = [
        doc
        for doc in yaml.safe_load_all(helm_as(cluster.kubeconfig, "get", "manifest", release, "-n", namespace))
        if doc
    ]
    workload = find(docs, "Deployment")[0]
    pod, spec = pod_of(workload, namespace)
    context = PodContext(Objects(docs), pod, Endpoints(), workdir, workdir / "claims")
    container = LocalContainer.build(IMAGES["operator"], LAYOUTS["operator"], spec, spec["containers"][0], context)
    kubeconfig = cluster.service_account_kubeconfig(namespace, pod.service_account, workdir / "kubeconfig")
    container.env["KUBECONFIG"] = str(kubeconfig)
    container.substitutions.append(
        f"in-cluster credentials of ServiceAccount {namespace}/{pod.service_account} -> KUBECONFIG={kubeconfig}"
    )
    return container


def test_operator_pod_runs_as_rendered_with_peering(kube_cluster, kube, tmp_path: Path) -> None:
    """charts/fleet-operator installed with the real helm as scripts/deploy.sh installs it (all
    namespaces, peering on; only the ClusterKopfPeering's name is made unique, as the cluster is
    shared by the session's tests), then the pod's process: its livenessProbe answers, kopf takes
    part in the peering (its identity in the ClusterKopfPeering's status) and never pauses."""
    namespace = f"op-pod-{uuid.uuid4().hex[:6]}"
    kube.ensure_namespace(namespace)
    release = install_operator_chart(kube_cluster, namespace)
    container = operator_container(kube_cluster, namespace, release, tmp_path)
    try:
        assert f"--peering={release}" in container.argv and "--standalone" not in container.argv, container.argv
        assert container.env["FLEET_OPERATOR_NAMESPACE"] == namespace
        container.start()
        container.wait_ready(OPERATOR_READY_S, probe="livenessProbe")

        def peered() -> bool:
            if not container.running():
                raise AssertionError(container.describe())
            peering = kube.get("kopf.dev/v1", "clusterkopfpeerings", None, release) or {}
            return bool(peering.get("status"))

        try:
            wait_until(peered, OPERATOR_READY_S, f"kopf's identity in ClusterKopfPeering {release}", interval_s=0.5)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{container.describe()}") from None
        log = container.log_path.read_text()
        assert "Pausing" not in log, f"kopf paused:\n{container.describe()}"
    finally:
        container.stop()
        helm_as(kube_cluster.kubeconfig, "uninstall", release, "-n", namespace, "--ignore-not-found")
        kube.delete_namespace(namespace)
