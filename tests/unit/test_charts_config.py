"""What the charts render from their values: contracts-derived config stays in sync, the
operator's common keys land on the workloads, environments are sized as specified, and the
Flink/Kafka/TimescaleDB wiring is what the other components expect."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from fleet_operator import model

from contracts.records import AlertType
from contracts.thresholds import Thresholds
from contracts.topics import ALL_TOPICS
from contracts.windows import TRIP_WINDOWS_S, WINDOWS
from jobs.cli import parse_settings as parse_job_args
from jobs.config import JobConfig, JobOptions
from jobs.tables import TRANSACTION_TIMEOUT_MS
from tests.support.charts import CHARTS, ENVIRONMENTS, ROOT, find, helm, pod_spec, render
from tests.support.crd import SCHEMA, defaulted

MAIN_WORKLOAD = {  # (kind, name suffix) the operator's replicaCount/resources/persistence keys drive
    "kafka": ("StatefulSet", ""),
    "flink-job": ("Deployment", "-taskmanager"),
    "loader": ("Deployment", ""),
    "timescaledb": ("StatefulSet", ""),
    "vector": ("StatefulSet", ""),
    "grafana": ("Deployment", ""),
    "api": ("Deployment", ""),
    "generator": ("Deployment", ""),
}


def main_workload(docs: list[dict], chart: str) -> dict:
    kind, suffix = MAIN_WORKLOAD[chart]
    return find(docs, kind, f"fleet-monitor-{chart}{suffix}")[0]


def _sync_module():
    spec = importlib.util.spec_from_file_location("sync_chart_config", ROOT / "scripts" / "sync-chart-config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chart_copies_of_contracts_are_in_sync() -> None:
    assert _sync_module().main(["--check"]) == 0


def test_sync_check_detects_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sync = _sync_module()
    for relative in sync.generated():
        (tmp_path / relative).parent.mkdir(parents=True)
        shutil.copy(ROOT / relative, tmp_path / relative)
    kafka_values = tmp_path / "charts/kafka/values.yaml"
    kafka_values.write_text(kafka_values.read_text().replace("- fleet.alerts\n", ""))
    monkeypatch.setattr(sync, "ROOT", tmp_path)
    assert sync.main(["--check"]) == 1
    assert sync.main([]) == 0  # rewrites the block
    assert yaml.safe_load(kafka_values.read_text())["topics"] == list(ALL_TOPICS)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_rendered_thresholds_load_as_contracts_thresholds(environment: str) -> None:
    config = find(render("flink-job", environment), "ConfigMap", "fleet-monitor-flink-job")[0]
    thresholds = Thresholds.model_validate(yaml.safe_load(config["data"]["thresholds.yaml"]))
    assert thresholds.rule_for(AlertType.TIRE_PRESSURE_LOW).threshold == 200
    speeding = thresholds.rule_for(AlertType.SPEEDING).threshold
    assert speeding == (5 if environment == "prod" else 0)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_kafka_topics_job_creates_every_contract_topic(environment: str) -> None:
    docs = render("kafka", environment)
    script = find(docs, "Job", "fleet-monitor-kafka-topics")[0]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    replicas = main_workload(docs, "kafka")["spec"]["replicas"]
    for topic in ALL_TOPICS:
        assert f'--create --if-not-exists --topic "{topic}"' in script
    assert f"--replication-factor {min(replicas, 3)} " in script
    properties = find(docs, "ConfigMap", "fleet-monitor-kafka")[0]["data"]["server.properties"]
    voters = next(line for line in properties.splitlines() if line.startswith("controller.quorum.voters="))
    assert voters.count("@") == replicas
    settings = dict(line.split("=", 1) for line in properties.splitlines() if "=" in line and not line.startswith("#"))
    # The jobs' exactly-once sinks: the transaction coordinator's log as replicated as the topics,
    # and the broker's cap above what their producers ask for.
    factor, min_isr = (3, 2) if environment in ("qa", "prod") else (1, 1)
    assert int(settings["transaction.state.log.replication.factor"]) == factor
    assert int(settings["transaction.state.log.min.isr"]) == min_isr
    assert int(settings["min.insync.replicas"]) == min_isr
    assert int(settings["transaction.max.timeout.ms"]) >= TRANSACTION_TIMEOUT_MS
    if environment == "prod":
        assert "min.insync.replicas=2" in properties
        assert (
            '--topic "fleet.dead-letters" --partitions 12 --replication-factor 3 --config "retention.ms=2592000000"'
            in script
        )


@pytest.mark.parametrize("chart", CHARTS)
def test_operator_common_keys_reach_the_workload(chart: str) -> None:
    sets = [
        "replicaCount=1",
        "resources.requests.cpu=123m",
        "resources.requests.memory=321Mi",
        "resources.limits.cpu=2",
        "resources.limits.memory=1Gi",
        "image.repository=registry.example/fm",
        "image.tag=9.9.9",
        "image.pullPolicy=Always",
    ]
    if "persistence" in yaml.safe_load((ROOT / "charts" / chart / "values.yaml").read_text()):
        sets.append("persistence.size=77Gi")
    docs = render(chart, None, *sets)
    workload = main_workload(docs, chart)
    container = pod_spec(workload)["containers"][0]
    assert workload["spec"]["replicas"] == 1
    assert container["image"] == "registry.example/fm:9.9.9"
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"] == {
        "requests": {"cpu": "123m", "memory": "321Mi"},
        "limits": {"cpu": 2, "memory": "1Gi"},
    }
    if "persistence.size=77Gi" in sets:
        claims = [
            c["spec"]["resources"]["requests"]["storage"] for c in workload["spec"].get("volumeClaimTemplates", [])
        ]
        claims += [c["spec"]["resources"]["requests"]["storage"] for c in find(docs, "PersistentVolumeClaim")]
        assert claims == ["77Gi"]


GiB = {"512Mi": 0.5, "1Gi": 1, "2Gi": 2, "3Gi": 3, "4Gi": 4, "8Gi": 8}
# (chart, environment): (replicas, memory request GiB, memory limit GiB, volume): what deployed
# environments run (a volume cannot change size through an upgrade, see test_charts_install)
SIZING = {
    ("kafka", "dev"): (1, 1, 2, None),
    ("kafka", "prod"): (3, 4, 4, None),
    ("flink-job", "dev"): (2, 2, 2, None),
    ("flink-job", "prod"): (3, 4, 4, None),
    ("timescaledb", "dev"): (1, None, None, "2Gi"),
    ("timescaledb", "prod"): (1, 8, 8, "500Gi"),
    ("vector", "dev"): (1, None, 0.5, None),
    ("vector", "prod"): (3, None, 2, None),
    ("grafana", "dev"): (1, None, None, "5Gi"),
    ("grafana", "prod"): (1, 2, 4, "50Gi"),
    ("loader", "dev"): (1, None, 0.5, None),
    ("loader", "prod"): (1, 1, 2, None),
}


@pytest.mark.parametrize(("chart", "environment"), list(SIZING), ids=[f"{c}-{e}" for c, e in SIZING])
def test_environment_sizing(chart: str, environment: str) -> None:
    replicas, request, limit, volume = SIZING[chart, environment]
    docs = render(chart, environment)
    workload = main_workload(docs, chart)
    resources = pod_spec(workload)["containers"][0]["resources"]
    assert workload["spec"]["replicas"] == replicas
    if request is not None:
        assert GiB[resources["requests"]["memory"]] == request
    if limit is not None:
        assert GiB[resources["limits"]["memory"]] == limit
    if volume is not None:
        claims = workload["spec"].get("volumeClaimTemplates") or find(docs, "PersistentVolumeClaim")
        assert claims[0]["spec"]["resources"]["requests"]["storage"] == volume
    if chart == "flink-job":
        jobmanager = find(docs, "Deployment", "fleet-monitor-flink-job-jobmanager")[0]
        assert GiB[pod_spec(jobmanager)["containers"][0]["resources"]["limits"]["memory"]] == (
            2 if environment == "dev" else 4
        )


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_qa_sits_between_dev_and_prod(environment: str) -> None:
    def limits(env: str) -> float:
        return sum(
            GiB.get(pod_spec(main_workload(render(c, env), c))["containers"][0]["resources"]["limits"]["memory"], 0)
            * main_workload(render(c, env), c)["spec"]["replicas"]
            for c in ("kafka", "flink-job", "timescaledb", "vector")
        )

    assert limits("dev") < limits("qa") < limits("prod")


@pytest.mark.parametrize("job", ["aggregates", "alarms", "inactivity", "kpis"])
def test_flink_job_runs_the_named_job_with_the_agreed_flags(job: str) -> None:
    docs = render("flink-job", "prod", f"job.name={job}")
    jobmanager = pod_spec(find(docs, "Deployment", "fleet-monitor-flink-job-jobmanager")[0])["containers"][0]
    args = jobmanager["args"]
    program = args[args.index("--pyModule") + 1 :]
    assert program[:2] == ["jobs", job]
    flags = dict(zip(program[2::2], program[3::2], strict=True))
    assert flags == {
        "--bootstrap-servers": "fleet-monitor-kafka:9092",
        "--group-id": "fleet-monitor-flink-job",
        "--thresholds": "/etc/fleet-monitor/thresholds.yaml",
        "--checkpoint-dir": "s3://fleet-monitor-prod/flink/fleet-monitor-flink-job/checkpoints",
        "--checkpoint-interval": "10s",
        "--parallelism": "4",
        "--alarm-out-of-orderness": "0.5",
        **({"--trip-windows": "60,300"} if job == "kpis" else {}),
    }
    parsed = parse_job_args(program[1:])
    assert parsed.trip_windows_s == TRIP_WINDOWS_S  # the chart's default is the contract's
    assert (parsed.job, parsed.checkpoint_interval_s, parsed.checkpoint_dir) == (
        job,
        10.0,
        "s3://fleet-monitor-prod/flink/fleet-monitor-flink-job/checkpoints",
    )
    env = {e["name"]: e for e in jobmanager["env"]}
    assert "DATABASE_URL" not in env, "the jobs write Kafka only; the loader has the database"
    # Flink's entrypoint writes jobmanager.rpc.address from this (else the pod's own hostname).
    assert env["JOB_MANAGER_RPC_ADDRESS"]["value"] == "fleet-monitor-flink-job-jobmanager"
    mounts = {m["mountPath"] for m in jobmanager["volumeMounts"]}
    assert {"/etc/fleet-monitor/thresholds.yaml", "/opt/flink/conf"} <= mounts
    assert "/flink-data" not in mounts and not find(docs, "PersistentVolumeClaim")


def test_flink_jobs_of_one_environment_get_their_own_group_and_storage() -> None:
    """Two jobs sharing a group id would start from each other's offsets and fence each other's
    Kafka transactions; sharing a checkpoint prefix would mix their savepoints and HA metadata."""
    seen = set()
    for job in ("aggregates", "alarms"):
        docs = render("flink-job", "prod", f"fullnameOverride=fm-job-{job}")
        args = pod_spec(find(docs, "Deployment", f"fm-job-{job}-jobmanager")[0])["containers"][0]["args"]
        parsed = parse_job_args(args[args.index("--pyModule") + 2 :])
        config = yaml.safe_load(find(docs, "ConfigMap", f"fm-job-{job}")[0]["data"]["config.yaml"])
        seen.add((parsed.group_id, parsed.checkpoint_dir, config["high-availability.storageDir"]))
        assert parsed.group_id == f"fm-job-{job}"
        assert config["high-availability.storageDir"] == f"s3://fleet-monitor-prod/flink/fm-job-{job}/ha"
    assert len(seen) == 2


@pytest.mark.parametrize("environment", [None, "dev"])
def test_flink_checkpoints_without_object_storage_keep_the_release_on_one_node(environment: str | None) -> None:
    """No checkpoints.uri: a ReadWriteOnce volume every pod mounts, so every pod goes to its node;
    no volume either is refused (each pod would checkpoint to its own disk)."""
    docs = render("flink-job", environment)
    claim = find(docs, "PersistentVolumeClaim", "fleet-monitor-flink-job-data")[0]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    for component in ("jobmanager", "taskmanager"):
        spec = pod_spec(find(docs, "Deployment", f"fleet-monitor-flink-job-{component}")[0])
        term = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "fleet-monitor-flink-job"
        assert "/flink-data" in {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    with pytest.raises(AssertionError, match=r"checkpoints\.uri"):
        render("flink-job", environment, "persistence.enabled=false")


def test_flink_s3_credentials_reach_flinks_configuration() -> None:
    docs = render("flink-job", "prod", "checkpoints.s3.existingSecret=flink-s3")
    for component in ("jobmanager", "taskmanager"):
        env = {
            e["name"]: e
            for e in pod_spec(find(docs, "Deployment", f"fleet-monitor-flink-job-{component}")[0])["containers"][0][
                "env"
            ]
        }
        assert env["S3_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "flink-s3", "key": "access-key-id"}
        # the official entrypoint envsubst's FLINK_PROPERTIES into the conf: the key never is in the spec
        assert "s3.access-key: ${S3_ACCESS_KEY_ID}" in env["FLINK_PROPERTIES"]["value"]
    default = render("flink-job", "prod")
    env = pod_spec(find(default, "Deployment", "fleet-monitor-flink-job-jobmanager")[0])["containers"][0]["env"]
    assert "FLINK_PROPERTIES" not in {e["name"] for e in env}


def test_flink_job_trip_windows_follow_the_contract() -> None:
    program = _program(render("flink-job", "prod", "job.name=kpis", "job.tripWindows=60\\,3600"))
    assert parse_job_args(program[1:]).trip_windows_s == (60, 3600)
    schema = json.loads((ROOT / "charts/flink-job/values.schema.json").read_text())
    pattern = schema["properties"]["job"]["properties"]["tripWindows"]["pattern"]
    sizes = "|".join(map(str, WINDOWS.values()))
    assert pattern == f"^({sizes})(,({sizes}))*$"  # exactly the sizes contracts.windows names
    job = SCHEMA["properties"]["spec"]["properties"]["jobs"]
    assert job["properties"]["kpis"]["properties"]["tripWindows"]["pattern"] == pattern
    with pytest.raises(AssertionError, match="tripWindows"):
        render("flink-job", None, "job.tripWindows=120")


def _program(docs: list[dict]) -> list[str]:
    args = pod_spec(find(docs, "Deployment", "fleet-monitor-flink-job-jobmanager")[0])["containers"][0]["args"]
    return args[args.index("--pyModule") + 1 :]


@pytest.mark.parametrize(("value", "seconds"), [("0.5", 0.5), ("0", 0.0)])
def test_flink_job_passes_the_alarm_bound_when_set(value: str, seconds: float) -> None:
    docs = render("flink-job", "prod", "job.name=alarms", f"job.alarmOutOfOrderness={value}")
    args = pod_spec(find(docs, "Deployment", "fleet-monitor-flink-job-jobmanager")[0])["containers"][0]["args"]
    program = args[args.index("--pyModule") + 1 :]
    assert program[program.index("--alarm-out-of-orderness") + 1] == value
    assert parse_job_args(program[1:]).alarm_out_of_orderness_s == seconds


def test_flink_job_rejects_a_negative_alarm_bound() -> None:
    with pytest.raises(AssertionError, match="alarmOutOfOrderness"):
        render("flink-job", None, "job.alarmOutOfOrderness=-1")


@pytest.mark.parametrize("environment", [None, *ENVIRONMENTS])
def test_each_flink_option_has_one_owner(environment: str | None, tmp_path: Path) -> None:
    """The job sets its own options (jobs/runner.py job_options) from the chart's arguments; the
    cluster's config.yaml (the chart's, and devstack.flink_cluster's stand-in for it) leaves them out,
    and the job sets none of the cluster's own."""
    from devstack.flink_cluster import FlinkCluster
    from jobs.runner import job_options, mini_cluster_options

    docs = render("flink-job", environment)
    cluster = set(yaml.safe_load(find(docs, "ConfigMap", "fleet-monitor-flink-job")[0]["data"]["config.yaml"]))
    program = _program(docs)
    job = parse_job_args(program[1:])
    resolved = JobConfig(
        **job.model_dump(include=set(JobOptions.model_fields)),
        jobs=(job.job,),
        bootstrap_servers=job.bootstrap_servers,
        checkpoint_dir=job.checkpoint_dir,
    )
    config = job_options(resolved)
    assert not cluster & set(config), "set by both the chart's config.yaml and the job"
    assert not set(FlinkCluster(tmp_path, []).configuration("jobmanager")) & set(config)
    assert config["execution.checkpointing.dir"] == job.checkpoint_dir
    assert config["parallelism.default"] == str(job.parallelism)
    assert set(mini_cluster_options(resolved)) - {"rest.port", "metrics.fetcher.update-interval"} <= cluster


def test_the_checkpoint_interval_default_is_the_jobs() -> None:
    """charts/flink-job must pass job.checkpointInterval (its values.schema.json requires it), so the
    chart's default and the jobs' are two copies of one number: they must agree."""
    values = yaml.safe_load((ROOT / "charts/flink-job/values.yaml").read_text())
    chart_default = parse_job_args(
        ["all", "--bootstrap-servers", "k:9092", "--checkpoint-interval", values["job"]["checkpointInterval"]]
    )
    assert chart_default.checkpoint_interval_s == JobOptions.model_fields["checkpoint_interval_s"].default


def test_the_local_jobmanager_runs_with_the_charts_jvm_options(tmp_path: Path) -> None:
    """make run's JobManager (devstack.services.JobsService) takes its JVM options from the chart's
    values: the rendered config.yaml and the local one carry the same env.java.opts.jobmanager."""
    from devstack.services import JobsService, RunDir

    docs = render("flink-job")
    rendered = yaml.safe_load(find(docs, "ConfigMap", "fleet-monitor-flink-job")[0]["data"]["config.yaml"])
    local = JobsService(RunDir(tmp_path), lambda: "k:9092").cluster.configuration("jobmanager")
    assert rendered["env.java.opts.jobmanager"] == local["env.java.opts.jobmanager"] == "-XX:TieredStopAtLevel=1"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_flink_config_matches_the_containers(environment: str) -> None:
    docs = render("flink-job", environment)
    config = yaml.safe_load(find(docs, "ConfigMap", "fleet-monitor-flink-job")[0]["data"]["config.yaml"])
    taskmanager = pod_spec(find(docs, "Deployment", "fleet-monitor-flink-job-taskmanager")[0])["containers"][0]
    limit = taskmanager["resources"]["limits"]["memory"]
    assert config["taskmanager.memory.process.size"] == limit.replace("Gi", "g")
    assert config["metrics.reporter.prom.factory.class"].endswith("PrometheusReporterFactory")
    assert config["rest.port"] == 8081
    ha = environment != "dev"
    assert (config.get("high-availability.type") == "kubernetes") is ha
    assert bool(find(docs, "Role")) is ha
    assert find(docs, "Service", "fleet-monitor-flink-job-rest")[0]["spec"]["ports"][0]["port"] == 8081
    # TaskManagers exchange records on a fixed port the NetworkPolicy admits (Flink's default is random).
    policy = find(docs, "NetworkPolicy", "fleet-monitor-flink-job")[0]
    admitted = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    for key in (
        "taskmanager.data.port",
        "taskmanager.rpc.port",
        "jobmanager.rpc.port",
        "blob.server.port",
        "rest.port",
    ):
        assert config[key] in admitted, key


def _secrets(docs: list[dict]) -> dict[str, dict[str, str]]:
    return {
        d["metadata"]["name"]: {key: base64.b64decode(value).decode() for key, value in (d.get("data") or {}).items()}
        for d in find(docs, "Secret")
    }


def _client_containers(chart: str, *sets: str) -> list[tuple[dict, dict]]:
    """(pod spec, container) of each workload container of a database client chart."""
    docs = render(chart, "prod", *sets)
    return [
        (pod_spec(workload), container)
        for workload in find(docs, "Deployment") + find(docs, "StatefulSet")
        for container in pod_spec(workload)["containers"]
    ]


def test_database_secrets_carry_every_key_clients_read() -> None:
    """The bootstrap Secret is the migration Job's alone; each client reads the Secret of its own
    role (storage.roles, the operator's DATABASE_ROLES), whose username is that role's login."""
    from storage.roles import ROLES

    docs = render("timescaledb", "prod")
    secrets = _secrets(docs)
    bootstrap = secrets["fleet-monitor-timescaledb"]
    assert set(bootstrap) == {"username", "password", "database", "host", "port", "sslmode", "database-url"}
    assert bootstrap["database-url"].endswith("?sslmode=require")
    for key, role in ROLES.items():
        secret = secrets[f"fleet-monitor-timescaledb-{key}"]
        assert set(secret) == set(bootstrap) | {"sslrootcert"}, key
        assert secret["username"] == role.login and len(secret["password"]) >= 32
        assert secret["database-url"].startswith(f"postgresql://{role.login}:{secret['password']}@")
        assert secret["database-url"].endswith("?sslmode=require") and secret["sslrootcert"] == ""
    job = find(docs, "Job", "fleet-monitor-timescaledb-migrate")[0]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    container = pod_spec(job)["containers"][0]
    assert container["command"][:6] == ["python", "-m", "storage.migrate", "up", "--database-url", "$(DATABASE_URL)"]
    assert "readings=7 days" in container["command"] and "--login-users" in container["command"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert refs["DATABASE_URL"] == {"name": "fleet-monitor-timescaledb", "key": "database-url"}
    for key, role in ROLES.items():
        assert refs[role.password_env] == {"name": f"fleet-monitor-timescaledb-{key}", "key": "password"}
    for chart, key in model.DATABASE_ROLES.items():
        assert key in ROLES, f"{chart}: the operator names an unknown database role {key!r}"
        for _, client in _client_containers(chart):
            for env in client.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"].startswith("fleet-monitor-timescaledb"):
                    assert ref["name"] == f"fleet-monitor-timescaledb-{key}", f"{chart} reads {ref['name']}"
                    assert ref["key"] in secrets[ref["name"]], f"{chart} reads {ref['key']} the Secret lacks"
    flink = yaml.safe_dump(render("flink-job", "prod"))
    assert "fleet-monitor-timescaledb" not in flink, "the Flink jobs need no database credentials"


CA = "-----BEGIN CERTIFICATE-----MIIB-----END CERTIFICATE-----"


def test_a_database_ca_makes_every_client_verify_the_server() -> None:
    """tls.ca: every role Secret says verify-full with the CA's path, carries the CA, and every
    client chart mounts its Secret's ca.crt at that path (optional: absent without a CA)."""
    secrets = _secrets(render("timescaledb", "prod", f"tls.ca={CA}", "tls.existingSecret=db-cert"))
    path = secrets["fleet-monitor-timescaledb-api"]["sslrootcert"]
    for key in ("owner", "writer", "api", "grafana"):
        secret = secrets[f"fleet-monitor-timescaledb-{key}"]
        assert secret["sslmode"] == "verify-full" and secret["ca.crt"] == CA and secret["sslrootcert"] == path
        assert secret["database-url"].endswith(f"?sslmode=verify-full&sslrootcert={path}")
    directory, name = path.rsplit("/", 1)
    for chart in model.DATABASE_ROLES:
        for spec, client in _client_containers(chart):
            mounts = {m["mountPath"]: m["name"] for m in client.get("volumeMounts", [])}
            assert directory in mounts, f"{chart}: the database CA is not mounted at {directory}"
            volume = next(v for v in spec["volumes"] if v["name"] == mounts[directory])["secret"]
            assert volume["optional"] is True and volume["items"] == [{"key": "ca.crt", "path": name}], chart
    datasource = yaml.safe_load(find(render("grafana", "prod"), "ConfigMap")[0]["data"]["datasources.yaml"])
    assert datasource["datasources"][0]["jsonData"]["sslRootCertFile"] == "${DB_SSLROOTCERT}"


def test_a_database_ca_without_a_certificate_it_signed_is_refused() -> None:
    with pytest.raises(AssertionError, match=r"tls\.ca needs tls\.existingSecret"):
        render("timescaledb", "prod", f"tls.ca={CA}")


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_migration_flags_parse_with_the_storage_cli(environment: str) -> None:
    from storage.migrate import _parser
    from storage.policies import PolicySettings

    job = find(render("timescaledb", environment), "Job", "fleet-monitor-timescaledb-migrate")[0]
    command = pod_spec(job)["containers"][0]["command"]
    assert command[:3] == ["python", "-m", "storage.migrate"]
    args = _parser().parse_args(command[3:])
    assert args.command == "up" and args.database_url == "$(DATABASE_URL)"
    settings = PolicySettings.build(retention=args.retention)  # raises on unknown tables or overlapping policies
    assert set(settings.retention) >= {"readings", "alarm_events"}


def test_generator_arguments_parse_with_the_generator_cli() -> None:
    from generator.cli import parse_settings

    container = pod_spec(find(render("generator", "qa"), "Deployment")[0])["containers"][0]
    assert container["command"][:3] == ["python", "-m", "generator"]
    args = parse_settings(container["command"][3:])
    assert (args.output, args.bootstrap, args.rate, args.vehicles, args.metrics_port) == (
        "kafka",
        "fleet-monitor-kafka:9092",
        500,
        200,
        9100,
    )


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_loader_reaches_kafka_and_the_database_only(environment: str) -> None:
    docs = render("loader", environment)
    policy = find(docs, "NetworkPolicy", "fleet-monitor-loader")[0]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    egress = {rule["ports"][0]["port"]: rule.get("to") for rule in policy["egress"]}
    assert set(egress) == {53, 9092, 5432}
    kafka = find(render("kafka", environment), "StatefulSet")[0]["spec"]["template"]["metadata"]["labels"]
    database = find(render("timescaledb", environment), "StatefulSet")[0]["spec"]["template"]["metadata"]["labels"]
    for port, labels in ((9092, kafka), (5432, database)):
        assert any(peer["podSelector"]["matchLabels"].items() <= labels.items() for peer in egress[port])
    deployment = find(docs, "Deployment", "fleet-monitor-loader")[0]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9100"
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_generated_api_key_is_an_admin_entry_the_api_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    """API_KEYS from the generated Secret goes through the API's own settings parser (a bare
    random string stops the API at start): one admin key for every fleet, whose token is in a
    Secret of its own; the Secret the API reads holds the hash only."""
    from api.security import Role, hash_token, identify
    from api.settings import Settings

    docs = render("api", "prod")
    container = pod_spec(main_workload(docs, "api"))["containers"][0]
    ref = next(e for e in container["env"] if e["name"] == "API_KEYS")["valueFrom"]["secretKeyRef"]
    config = {
        key: base64.b64decode(value).decode() for key, value in find(docs, "Secret", ref["name"])[0]["data"].items()
    }
    assert set(config) == {ref["key"]}  # the entry only: no token where the API's configuration is
    token_secret = find(docs, "Secret", "fleet-monitor-api-admin-token")[0]
    token = base64.b64decode(token_secret["data"]["token"]).decode()
    assert token not in config[ref["key"]] and hash_token(token) in config[ref["key"]]
    assert not any(
        e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == token_secret["metadata"]["name"]
        for e in container["env"]
    )  # the API never reads the token
    monkeypatch.setenv("API_KEYS", config[ref["key"]])
    monkeypatch.delenv("API_KEYS_FILE", raising=False)
    keys = Settings.from_env(database_url="postgresql://x").api_keys
    assert len(keys) == 1
    assert identify(token, keys) == keys[0] and identify(token + "x", keys) is None
    assert (keys[0].name, keys[0].role, keys[0].fleets) == ("admin", Role.ADMIN, None)
    renamed = render("api", None, "auth.adminKeyName=ops-root")
    entry = base64.b64decode(find(renamed, "Secret", "fleet-monitor-api-keys")[0]["data"]["api-keys"]).decode()
    monkeypatch.setenv("API_KEYS", entry)
    assert Settings.from_env(database_url="postgresql://x").api_keys[0].name == "ops-root"
    mine = render("api", None, "auth.existingSecret=my-keys")
    assert not find(mine, "Secret")  # the user's Secret: nothing generated
    env = pod_spec(main_workload(mine, "api"))["containers"][0]["env"]
    assert next(e for e in env if e["name"] == "API_KEYS")["valueFrom"]["secretKeyRef"]["name"] == "my-keys"


@pytest.mark.parametrize("environment", [None, *ENVIRONMENTS])
def test_api_is_authenticated_by_default(monkeypatch: pytest.MonkeyPatch, environment: str | None) -> None:
    """The rendered environment, read by the API's own settings: reads need a key, /metrics stays
    scrapeable by annotation; limits the values leave empty keep the API's defaults."""
    from api.settings import Settings

    container = pod_spec(main_workload(render("api", environment), "api"))["containers"][0]
    plain = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert plain["API_READ_AUTH"] == "true" and plain["API_METRICS_AUTH"] == "false"
    for name, value in plain.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env(database_url="postgresql://x")
    assert settings.read_auth and not settings.metrics_auth
    assert settings.max_header_bytes == Settings.model_fields["max_header_bytes"].default
    limited = pod_spec(main_workload(render("api", None, "limits.maxHeaderBytes=16384"), "api"))["containers"][0]
    assert {"name": "API_MAX_HEADER_BYTES", "value": "16384"} in limited["env"]


def _api_notes(tmp_path: Path, *sets: str) -> str:
    """NOTES.txt as `helm install` prints it (an install needs a cluster even with --dry-run, so a
    copy of the chart renders the same template into a ConfigMap)."""
    chart = tmp_path / "api"
    shutil.copytree(ROOT / "charts" / "api", chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "notes.yaml").write_text(
        f'{{{{- define "test.notes" -}}}}{notes}{{{{- end }}}}\n'
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data: {notes: {{ include "test.notes" . | quote }}}\n'
    )
    args = ["template", "fleet-monitor-api", str(chart), "--namespace", "fleet"]
    docs = yaml.safe_load_all(helm(*args, *(f"--set={item}" for item in sets)))
    return next(d for d in docs if d and d["metadata"]["name"] == "notes")["data"]["notes"]


def test_api_notes_tell_how_to_call_it(tmp_path: Path) -> None:
    notes = _api_notes(tmp_path / "default")
    assert "Every data route needs an API key" in notes
    assert "get secret fleet-monitor-api-admin-token -o jsonpath='{.data.token}' | base64 -d" in notes
    assert "python -m api.keys --name grafana --role read --fleet FLEET" in notes
    assert "Roles: read" in notes and "operate" in notes and "admin" in notes
    assert 'curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/fleet' in notes
    assert "Reads are OPEN" in _api_notes(tmp_path / "open", "auth.readAuth=false")


@pytest.mark.parametrize("environment", [None, *ENVIRONMENTS])
def test_vector_disk_buffer_size_renders_as_an_integer(environment: str | None) -> None:
    """Vector's buffer max_size is an integer field: a float (8.589934592e+09) fails its config load."""
    docs = render("vector", environment)
    configmap = next(d for d in find(docs, "ConfigMap") if "vector.yaml" in d.get("data", {}))
    size = yaml.safe_load(configmap["data"]["vector.yaml"])["sinks"]["alarm_events"]["buffer"]["max_size"]
    values = ROOT / "environments" / environment / "values" / "vector.yaml" if environment else None
    expected = yaml.safe_load((values or ROOT / "charts" / "vector" / "values.yaml").read_text())["buffer"]
    assert type(size) is int and size == expected["maxSizeBytes"]


def test_kafka_refuses_topics_with_more_in_sync_replicas_than_replicas() -> None:
    """A topic's min.insync.replicas above its replication factor (capped at the brokers) fails
    the render, naming the topic, instead of failing every acks=all write; a per-topic factor (the
    FleetMonitor's spec.topics.overrides) is accepted and used."""
    with pytest.raises(AssertionError, match=r"fleet\.tire-readings has min\.insync\.replicas 2 above .* factor 1"):
        render("kafka", "prod", "replicaCount=1", r"topicDefaults.config.min\.insync\.replicas=2")
    with pytest.raises(AssertionError, match=r"fleet\.alerts has min\.insync\.replicas 2 above .* factor 1"):
        render(
            "kafka",
            "prod",
            r"topicDefaults.config.min\.insync\.replicas=2",
            r"topicOverrides.fleet\.alerts.replicationFactor=1",
        )
    docs = render("kafka", "prod", r"topicOverrides.fleet\.alerts.replicationFactor=2")
    script = find(docs, "Job", "fleet-monitor-kafka-topics")[0]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert '--topic "fleet.alerts" --partitions 6 --replication-factor 2 ' in script
    assert '--topic "fleet.trips" --partitions 12 --replication-factor 3 ' in script


QUANTITY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9, "": 1}
JVM_SIZE = {"k": 2**10, "m": 2**20, "g": 2**30, "": 1}


def memory_bytes(quantity: str | int) -> int:
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(quantity)).groups()
    return int(float(number) * QUANTITY[unit])


def kafka_heap_share(docs: list[dict]) -> float:
    """-Xmx of the broker as a share of its container's memory limit."""
    container = pod_spec(main_workload(docs, "kafka"))["containers"][0]
    heap = next(e["value"] for e in container["env"] if e["name"] == "KAFKA_HEAP_OPTS")
    number, unit = re.search(r"-Xmx([0-9]+)([kKmMgG]?)", heap).groups()
    return int(number) * JVM_SIZE[unit.lower()] / memory_bytes(container["resources"]["limits"]["memory"])


@pytest.mark.parametrize("environment", [None, *ENVIRONMENTS])
@pytest.mark.parametrize("limit", [None, "4Gi", "1536Mi", "3G"])
def test_kafka_heap_leaves_the_page_cache_room(environment: str | None, limit: str | None) -> None:
    """The broker's heap is at most 60% of its memory limit, whatever limit the operator's
    `resources` sets (prod's FleetMonitor: 4Gi, once with a 4g heap: OOM-killed under load)."""
    docs = render("kafka", environment, *([f"resources.limits.memory={limit}"] if limit else []))
    assert 0.25 <= kafka_heap_share(docs) <= 0.6


def test_kafka_refuses_a_heap_that_does_not_fit() -> None:
    with pytest.raises(AssertionError, match=r"heapOpts -Xmx4g is over 60% of the memory limit 4Gi"):
        render("kafka", "prod", "resources.limits.memory=4Gi", "heapOpts=-Xms4g -Xmx4g")
    assert kafka_heap_share(render("kafka", "prod", "resources.limits.memory=8Gi", "heapOpts=-Xms4g -Xmx4g")) == 0.5


def test_grafana_runs_one_replica_on_its_readwriteonce_volume() -> None:
    """Grafana's SQLite state is on one ReadWriteOnce volume: prod (overlay and FleetMonitor) runs
    one replica, replaced with Recreate, and the chart refuses a second."""
    docs = render("grafana", "prod")
    deployment = main_workload(docs, "grafana")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    claim = find(docs, "PersistentVolumeClaim", "fleet-monitor-grafana")[0]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    assert volumes["storage"]["persistentVolumeClaim"]["claimName"] == "fleet-monitor-grafana"
    spec = yaml.safe_load((ROOT / "environments" / "prod" / "fleetmonitor.yaml").read_text())["spec"]
    assert spec["components"]["grafana"].get("replicas", 1) == 1
    for sets in (["replicaCount=2"], ["replicaCount=2", "persistence.enabled=false"]):
        with pytest.raises(AssertionError, match="replicaCount must be 1"):
            render("grafana", "prod", *sets)


@pytest.mark.parametrize("chart", CHARTS)
def test_generated_credentials_outlive_an_uninstall_with_the_volumes_they_open(chart: str) -> None:
    """A chart whose volumes survive `helm uninstall` (StatefulSet claims, kept PVCs) keeps the
    generated Secrets its pods read too: a redeploy on the old volume needs the old database
    password (TimescaleDB) or cluster id (Kafka), and `lookup` reuses the kept Secret."""
    docs = render(chart, "prod")
    workload = main_workload(docs, chart)
    kept_claims = workload["spec"].get("volumeClaimTemplates", []) + [
        claim
        for claim in find(docs, "PersistentVolumeClaim")
        if claim["metadata"].get("annotations", {}).get("helm.sh/resource-policy") == "keep"
    ]
    generated = {secret["metadata"]["name"]: secret for secret in find(docs, "Secret")}
    read = {
        env["valueFrom"]["secretKeyRef"]["name"]
        for container in pod_spec(workload)["containers"]
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    for name in read & set(generated) if kept_claims else ():
        assert generated[name]["metadata"].get("annotations", {}).get("helm.sh/resource-policy") == "keep", name
    if chart in ("timescaledb", "kafka"):
        assert kept_claims and read & set(generated), "the case this test is about"


# timescaledb-tune's --memory: PostgreSQL's byte format (its internal/parse pgBytesRegex), units of 1024.
TUNE_MEMORY = re.compile(r"^([0-9]+)((?:k|M|G|T)B)?$")
TUNE_UNITS = {"kB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40, None: 1}


@pytest.mark.parametrize("environment", [None, *ENVIRONMENTS])
@pytest.mark.parametrize("limit", [None, "1536Mi", "4G"])
def test_timescaledb_tune_memory_is_in_the_format_timescaledb_tune_reads(
    environment: str | None, limit: str | None
) -> None:
    """TS_TUNE_MEMORY is the container's memory limit in a unit timescaledb-tune accepts ("4096MB",
    not the Kubernetes quantity "4Gi", which stops the database's first start)."""
    docs = render("timescaledb", environment, *([f"resources.limits.memory={limit}"] if limit else []))
    container = pod_spec(main_workload(docs, "timescaledb"))["containers"][0]
    value = next(e["value"] for e in container["env"] if e["name"] == "TS_TUNE_MEMORY")
    match = TUNE_MEMORY.fullmatch(value)
    assert match, f"timescaledb-tune refuses --memory={value}"
    tuned = int(match.group(1)) * TUNE_UNITS[match.group(2)]
    limit_bytes = memory_bytes(container["resources"]["limits"]["memory"])
    assert limit_bytes - 2**20 < tuned <= limit_bytes


# --- thresholds: the dashboards draw what the jobs alarm on -------------------------------------

THRESHOLD_LINES = json.loads((ROOT / "charts" / "grafana" / "threshold-lines.json").read_text())
COMMITTED_DASHBOARDS = {p.name: json.loads(p.read_text()) for p in (ROOT / "charts/grafana/dashboards").glob("*.json")}


def rendered_dashboards(docs: list[dict]) -> dict[str, dict]:
    data = next(d for d in find(docs, "ConfigMap") if d["metadata"]["name"].endswith("grafana-dashboards"))["data"]
    return {name: json.loads(text) for name, text in data.items()}


def drawn_lines(dashboards: dict[str, dict]) -> dict[tuple, tuple[str, float]]:
    """(dashboard, panel title, step) -> (alert type, the value the threshold step shows)."""
    drawn = {}
    for name, lines in THRESHOLD_LINES.items():
        for line in lines:
            panel = dashboards[name]["panels"][line["panel"]]
            value = panel["fieldConfig"]["defaults"]["thresholds"]["steps"][line["step"]]["value"]
            drawn[name, panel["title"], line["step"]] = (line["alert_type"], value)
    return drawn


def without_lines(dashboards: dict[str, dict]) -> dict[str, dict]:
    stripped = json.loads(json.dumps(dashboards))
    for name, lines in THRESHOLD_LINES.items():
        for line in lines:
            stripped[name]["panels"][line["panel"]]["fieldConfig"]["defaults"]["thresholds"]["steps"][line["step"]] = (
                None
            )
    return stripped


def test_threshold_lines_are_every_alarm_threshold_in_the_dashboards() -> None:
    """The committed lines sit at the contracts' defaults, on steps that exist; nothing else moves."""
    drawn = drawn_lines(COMMITTED_DASHBOARDS)
    assert {alert for alert, _ in drawn.values()} == {
        "tire_pressure_low",
        "tire_temperature_high",
        "co2_high",
        "temperature_high",
        "humidity_high",
    }
    for alert, value in drawn.values():
        assert value == Thresholds().rule_for(AlertType(alert)).threshold


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_dashboards_draw_the_thresholds_the_jobs_alarm_on(environment: str, tmp_path: Path) -> None:
    """The seam operator -> charts: what the operator computes for an environment (overlays, its
    FleetMonitor, plus a spec.thresholds override) rendered through the flink-job and grafana
    charts: every dashboard threshold line is the threshold the jobs' thresholds.yaml resolves."""
    obj = yaml.safe_load((ROOT / "environments" / environment / "fleetmonitor.yaml").read_text())
    spec = obj["spec"] | {
        "thresholds": {
            "defaults": {"tire_pressure_low": {"threshold": 195}, "co2_high": {"threshold": 1200, "clear": 1100}}
        }
    }
    releases = {
        r.component: r
        for r in model.desired_releases("fleet-monitor", defaulted(spec), ROOT / "charts", ROOT / "environments")
    }

    def render_release(component: str) -> list[dict]:
        release = releases[component]
        values = tmp_path / f"{component}.yaml"
        values.write_text(yaml.safe_dump(release.values))
        output = helm("template", release.name, str(ROOT / "charts" / release.chart), "-n", "fleet", "-f", str(values))
        return [doc for doc in yaml.safe_load_all(output) if doc]

    config = find(render_release("job-alarms"), "ConfigMap", "fleet-monitor-job-alarms")[0]
    jobs = Thresholds.model_validate(yaml.safe_load(config["data"]["thresholds.yaml"]))
    dashboards = rendered_dashboards(render_release("grafana"))
    drawn = drawn_lines(dashboards)
    for (name, title, _), (alert, value) in drawn.items():
        assert value == jobs.rule_for(AlertType(alert)).threshold, f"{name} {title!r}"
    assert {value for alert, value in drawn.values() if alert == "tire_pressure_low"} == {195}
    assert {value for alert, value in drawn.values() if alert == "co2_high"} == {1200}
    assert without_lines(dashboards) == without_lines(COMMITTED_DASHBOARDS)  # only the lines moved


def test_grafana_without_thresholds_serves_the_committed_dashboards() -> None:
    assert rendered_dashboards(render("grafana", "prod")) == COMMITTED_DASHBOARDS
    moved = rendered_dashboards(render("grafana", None, "thresholds.defaults.humidity_high.threshold=70"))
    changed = {key: line for key, line in drawn_lines(moved).items() if line != drawn_lines(COMMITTED_DASHBOARDS)[key]}
    assert changed == {("building-climate.json", "Humidity (%, 5-min avg)", 1): ("humidity_high", 70)}
