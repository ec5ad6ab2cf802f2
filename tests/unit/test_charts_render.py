"""Every chart through the real helm binary: `helm lint --strict`, `helm template` with every
environment's overlay validated by kubernetes-validate --strict, and our own policies (images,
limits, probes, non-root, read-only root filesystem, labels, PDBs, NetworkPolicies); and the jobs
image's commands: what the Flink pods and the loader run is what jobs/Dockerfile supports.

The rendering helpers the chart tests share are in tests/support/charts.py.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import zipfile
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.support.charts import CHARTS, ENVIRONMENTS, ROOT, find, helm, overlay, pod_spec, render

KUBERNETES_VERSIONS = ("1.29", "1.37")  # oldest we support and newest kubernetes-validate knows
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}


CASES = [(chart, env) for chart in CHARTS for env in (None, *ENVIRONMENTS)]
IDS = [f"{chart}-{env or 'defaults'}" for chart, env in CASES]


@pytest.mark.parametrize(("chart", "environment"), CASES, ids=IDS)
def test_helm_lint_strict(chart: str, environment: str | None) -> None:
    output = helm("lint", "--strict", str(ROOT / "charts" / chart), *overlay(chart, environment))
    assert "0 chart(s) failed" in output


@pytest.mark.parametrize(("chart", "environment"), CASES, ids=IDS)
def test_rendered_manifests_pass_kubernetes_validate_strict(chart: str, environment: str | None) -> None:
    docs = render(chart, environment)
    assert find(docs, "Deployment") or find(docs, "StatefulSet"), "chart renders no workload"
    for version in KUBERNETES_VERSIONS:
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)


def test_kubernetes_validate_rejects_what_it_should() -> None:
    """Guard against a validator that passes everything: an unknown field must fail strict mode."""
    deployment = find(render("api"), "Deployment")[0]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    pod_spec(broken)["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def policy_violations(docs: list[dict]) -> list[str]:
    """Our own rules for every rendered workload and object."""
    problems = []
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        labels = doc["metadata"].get("labels", {})
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by"):
            if key not in labels:
                problems.append(f"{where}: label {key} missing")
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        spec = pod_spec(doc)
        pod_security = spec.get("securityContext", {})
        if spec.get("automountServiceAccountToken") is not False and not find(docs, "RoleBinding"):
            problems.append(f"{where}: mounts a service account token without needing one")
        init = spec.get("initContainers", [])
        for container in [*init, *spec["containers"]]:
            at = f"{where} container {container['name']}"
            image = container.get("image", "")
            if not image or ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                problems.append(f"{at}: image {image!r} is not pinned to a tag")
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(section, {}):
                        problems.append(f"{at}: no {section}.{resource}")
            security = container.get("securityContext", {})
            if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
                problems.append(f"{at}: may run as root")
            if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
                problems.append(f"{at}: runs as uid 0")
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{at}: root filesystem is writable")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{at}: privilege escalation allowed")
            if security.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{at}: capabilities not dropped")
            long_running = doc["kind"] != "Job" and container not in init
            if long_running and not ("livenessProbe" in container and "readinessProbe" in container):
                problems.append(f"{at}: no liveness and readiness probes")
        if doc["kind"] != "Job":
            selector = doc["spec"]["selector"]["matchLabels"]
            policies = [
                p
                for p in find(docs, "NetworkPolicy")
                if p["spec"]["podSelector"]["matchLabels"].items() <= selector.items()
            ]
            if not policies:
                problems.append(f"{where}: no NetworkPolicy selects its pods")
            replicas = doc["spec"].get("replicas", 1)
            budgets = [
                b
                for b in find(docs, "PodDisruptionBudget")
                if b["spec"]["selector"]["matchLabels"].items() <= selector.items()
            ]
            if replicas > 1 and not budgets:
                problems.append(f"{where}: {replicas} replicas but no PodDisruptionBudget")
            if replicas <= 1 and budgets:
                problems.append(f"{where}: a PodDisruptionBudget on a single replica blocks node drains")
    return problems


@pytest.mark.parametrize(("chart", "environment"), CASES, ids=IDS)
def test_policies(chart: str, environment: str | None) -> None:
    assert policy_violations(render(chart, environment)) == []


def test_policies_catch_violations() -> None:
    """The policy checker itself fails on a root container without limits, probes or image tag."""
    docs = [yaml.safe_load(yaml.safe_dump(d)) for d in render("api", "prod")]
    deployment = find(docs, "Deployment")[0]
    container = pod_spec(deployment)["containers"][0]
    container["image"] = "ghcr.io/fleet-monitor/api"
    del container["resources"]["limits"]
    del container["readinessProbe"]
    container["securityContext"] = {"runAsUser": 0}
    pod_spec(deployment)["securityContext"] = {}
    docs = [d for d in docs if d["kind"] != "PodDisruptionBudget"]
    found = "\n".join(policy_violations(docs))
    for expected in (
        "not pinned",
        "no limits.cpu",
        "no liveness and readiness",
        "may run as root",
        "uid 0",
        "root filesystem is writable",
        "no PodDisruptionBudget",
    ):
        assert expected in found


@pytest.mark.parametrize("chart", CHARTS)
def test_chart_follows_conventions(chart: str) -> None:
    directory = ROOT / "charts" / chart
    for required in (
        "Chart.yaml",
        "values.yaml",
        "values.schema.json",
        "templates/_helpers.tpl",
        "templates/NOTES.txt",
    ):
        assert (directory / required).is_file(), f"{chart}: {required} missing"
    meta = yaml.safe_load((directory / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2" and meta["name"] == chart and meta["version"] and meta["appVersion"]


# --- the jobs image (jobs/Dockerfile) and what the charts run in it ------------------------------

DOCKERFILE = ROOT / "jobs" / "Dockerfile"
# The first words Flink's /docker-entrypoint.sh dispatches on; anything else it execs as given
# (checked against the script itself by test_flink_entrypoint_runs_the_rendered_args).
FLINK_ENTRYPOINT_COMMANDS = ("jobmanager", "standalone-job", "taskmanager", "history-server")
# StandaloneApplicationClusterConfigurationParserFactory's options in Flink 2 (plus -D): (short,
# long) -> takes a value. Flink 2 dropped --host and --webui-port; checked against the pinned
# flink-dist by test_standalone_job_options_are_the_pinned_flinks.
STANDALONE_JOB_OPTIONS = {
    ("c", "configDir"): True,
    ("jars", "jars"): True,
    ("j", "job-classname"): True,
    ("jid", "job-id"): True,
    ("s", "fromSavepoint"): True,
    ("n", "allowNonRestoredState"): False,
}
PYTHON_DRIVER = "org.apache.flink.client.python.PythonDriver"


def dockerfile_args() -> dict[str, str]:
    """ARG defaults of jobs/Dockerfile (the last definition of each name wins, like a build stage's)."""
    return dict(re.findall(r'^ARG ([A-Z0-9_]+)="?([^"\n]*)"?$', DOCKERFILE.read_text(), re.MULTILINE))


def dockerfile_final_stage() -> str:
    return DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]


def standalone_job(args: list[str]) -> tuple[dict[str, str | bool], list[str]]:
    """Split `standalone-job` arguments the way Flink's entry point does (commons-cli, stopping at
    the first token that is not one of its options): (its options, the program arguments)."""
    assert args[0] == "standalone-job", args
    options: dict[str, str | bool] = {}
    rest = args[1:]
    while rest and rest[0].startswith("-"):
        token = rest[0]
        if token.startswith("-D"):
            options[token] = True
            rest = rest[1:]
            continue
        name = token.lstrip("-")
        match = next((key for key in STANDALONE_JOB_OPTIONS if name in key), None)
        if match is None:  # not an option of the entry point: the program's arguments start here
            break
        if STANDALONE_JOB_OPTIONS[match]:
            options[match[1]] = rest[1]
            rest = rest[2:]
        else:
            options[match[1]] = True
            rest = rest[1:]
    return options, rest


def python_program(program: list[str]) -> tuple[str, list[str]]:
    """The PythonDriver's view of the program arguments: (module run with `python -m`, its arguments)."""
    assert program[0] in ("-pym", "--pyModule"), f"expected --pyModule first, got {program[:2]}"
    return program[1], program[2:]


def container(docs: list[dict], name: str) -> dict:
    return pod_spec(find(docs, "Deployment", name)[0])["containers"][0]


def test_job_image_pins_the_connector_of_scripts_java() -> None:
    """The jar the image puts in Flink's lib/ is the one the tests run with: same version as
    scripts/java/flink-connectors.pom.xml, same sha256 as scripts/java/SHA256SUMS."""
    pom = (ROOT / "scripts" / "java" / "flink-connectors.pom.xml").read_text()
    version = re.search(r"<artifactId>flink-sql-connector-kafka</artifactId><version>([^<]+)</version>", pom).group(1)
    sums = dict(
        reversed(line.split()) for line in (ROOT / "scripts" / "java" / "SHA256SUMS").read_text().splitlines() if line
    )
    args = dockerfile_args()
    assert args["KAFKA_CONNECTOR_VERSION"] == version
    assert args["KAFKA_CONNECTOR_SHA256"] == sums[f"flink/flink-sql-connector-kafka-{version}.jar"]
    assert "sha256sum -c" in DOCKERFILE.read_text()


def test_job_image_runs_the_flink_pinned_with_pyflink() -> None:
    pinned = re.search(r'"apache-flink==([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert dockerfile_args()["FLINK_IMAGE"].startswith(f"flink:{pinned}-")
    python = dockerfile_args()["PYTHON_IMAGE"]
    assert python.startswith("python:3.11."), "the project pins Python >=3.11,<3.12"


def test_job_image_keeps_flinks_entrypoint_and_the_venv_on_path() -> None:
    final = dockerfile_final_stage()
    assert 'ENTRYPOINT ["/docker-entrypoint.sh"]' in final
    assert "COPY --from=flink /docker-entrypoint.sh /docker-entrypoint.sh" in final
    path = re.search(r"PATH=(\S+)", final).group(1).split(":")
    assert path[0] == "/opt/venv/bin", "`python` must be the venv that has jobs and storage installed"
    assert re.search(r"^USER flink$", final, re.MULTILINE)


@pytest.mark.parametrize("environment", [None, *ENVIRONMENTS])
def test_jobmanager_runs_the_job_in_application_mode(environment: str | None) -> None:
    """standalone-job (application mode) with the PythonDriver running `python -m jobs <job> ...`,
    whose arguments jobs.cli accepts."""
    from jobs.cli import parse_settings

    docs = render("flink-job", environment, "job.initialSavepointPath=s3://b/savepoints/sp-1")
    jobmanager = container(docs, "fleet-monitor-flink-job-jobmanager")
    assert "command" not in jobmanager, "the image's entrypoint (Flink's) must stay"
    args = jobmanager["args"]
    assert args[0] in FLINK_ENTRYPOINT_COMMANDS
    options, program = standalone_job(args)
    assert "job-id" in options, f"the entry point's options ended before --job-id, at {program[:2]}"
    assert re.fullmatch(r"[0-9a-f]{32}", options["job-id"])
    assert options["fromSavepoint"] == "s3://b/savepoints/sp-1"
    assert options["job-classname"] == PYTHON_DRIVER
    # with HA the JobManager announces its pod IP (Flink 2 has no --host: it would end the options)
    assert ("-Djobmanager.rpc.address=$(POD_IP)" in options) is (environment in ("qa", "prod"))
    module, job_args = python_program(program)
    assert module == "jobs"
    parsed = parse_settings(job_args)
    assert parsed.job == "alarms"
    assert parsed.bootstrap_servers == "fleet-monitor-kafka:9092"
    assert parsed.group_id == "fleet-monitor-flink-job"  # unique per release: offsets, transactional ids
    assert str(parsed.thresholds) == "/etc/fleet-monitor/thresholds.yaml"
    assert not any("database" in arg for arg in job_args)
    checkpoints = parsed.checkpoint_dir
    if environment in ("qa", "prod"):
        assert checkpoints == f"s3://fleet-monitor-{environment}/flink/fleet-monitor-flink-job/checkpoints"
    else:
        assert checkpoints == "file:///flink-data/checkpoints"


@pytest.mark.parametrize("environment", [None, *ENVIRONMENTS])
def test_taskmanager_and_loader_commands_are_the_images(environment: str | None) -> None:
    from storage.loader import _parser as loader_parser

    taskmanager = container(render("flink-job", environment), "fleet-monitor-flink-job-taskmanager")
    assert "command" not in taskmanager
    assert taskmanager["args"][0] == "taskmanager" and taskmanager["args"][0] in FLINK_ENTRYPOINT_COMMANDS
    assert all(arg.startswith("-D") for arg in taskmanager["args"][1:])

    loader = container(render("loader", environment), "fleet-monitor-loader")
    # `command` replaces the entrypoint: plain `python` from the image's PATH (the venv).
    assert loader["command"][:3] == ["python", "-m", "storage.loader"] and "args" not in loader
    parsed = loader_parser().parse_args(loader["command"][3:])
    assert parsed.database_url == "$(DATABASE_URL)" and parsed.bootstrap_servers == "fleet-monitor-kafka:9092"
    assert parsed.group_id == "fleet-loader"
    port = next(p["containerPort"] for p in loader["ports"] if p["name"] == "metrics")
    assert parsed.metrics_port == port
    assert loader["livenessProbe"]["httpGet"]["port"] == "metrics"
    env = {e["name"]: e for e in loader["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "fleet-monitor-timescaledb-writer",
        "key": "database-url",
    }
    images = {taskmanager["image"].rsplit(":", 1)[0], loader["image"].rsplit(":", 1)[0]}
    assert images == {"ghcr.io/fleet-monitor/jobs"}, "the loader runs from the jobs image"


def flink_dist() -> Path:
    """flink-dist of the apache-flink wheel: the Flink version the image pins (tested above)."""
    package = Path(importlib.util.find_spec("pyflink").submodule_search_locations[0])
    return next((package / "lib").glob("flink-dist-*.jar"))


def class_constants(data: bytes, *names: str) -> dict[str, bool]:
    """Whether each name is a string constant of a class file (length-prefixed in its pool)."""
    return {name: len(name).to_bytes(2, "big") + name.encode() in data for name in names}


def test_standalone_job_options_are_the_pinned_flinks() -> None:
    """STANDALONE_JOB_OPTIONS, which the JobManager tests split the rendered args with, are the
    options of the pinned Flink's application-mode entry point. Flink 1 also took --host, which
    Flink 2 dropped: there it ended the options, so --job-id and --job-classname became program
    arguments and the JobManager of every HA release (qa, prod) failed at start."""
    with zipfile.ZipFile(flink_dist()) as jar:
        factory = jar.read(
            "org/apache/flink/container/entrypoint/StandaloneApplicationClusterConfigurationParserFactory.class"
        )
        common = jar.read("org/apache/flink/runtime/entrypoint/parser/CommandLineOptions.class")
        frontend = jar.read("org/apache/flink/client/cli/CliFrontendParser.class")
    registered = class_constants(
        factory,
        "CONFIG_DIR_OPTION",
        "DYNAMIC_PROPERTY_OPTION",
        "JARS_OPTION",
        "JOB_CLASS_NAME_OPTION",
        "JOB_ID_OPTION",
        "SAVEPOINT_PATH_OPTION",
        "SAVEPOINT_ALLOW_NON_RESTORED_OPTION",
        "HOST_OPTION",
        "REST_PORT_OPTION",
    )
    assert registered == {**dict.fromkeys(registered, True), "HOST_OPTION": False, "REST_PORT_OPTION": False}
    assert all(class_constants(common, "configDir", "D").values())
    assert all(class_constants(factory, "jars", "j", "job-classname", "jid", "job-id").values())
    assert all(class_constants(frontend, "s", "fromSavepoint", "n", "allowNonRestoredState").values())
    assert not any(class_constants(common + factory, "host", "webui-port").values())
    long_names = {long for _, long in STANDALONE_JOB_OPTIONS}
    assert long_names == {"configDir", "jars", "job-classname", "job-id", "fromSavepoint", "allowNonRestoredState"}


# Flink's /docker-entrypoint.sh is not in this repository (jobs/Dockerfile copies it out of the
# official image): point FLINK_DOCKER_ENTRYPOINT at a copy of the pinned image's to run this test,
# e.g. `docker run --rm --entrypoint cat flink:2.3.0-java17 /docker-entrypoint.sh > /tmp/entrypoint.sh`.
FLINK_ENTRYPOINT = os.environ.get("FLINK_DOCKER_ENTRYPOINT", "")
FLINK_BIN_STUB = """#!/bin/sh
for arg in "$(basename "$0")" "$@"; do printf '%s\\n' "$arg"; done > "$RECORD"
"""


@pytest.mark.skipif(not Path(FLINK_ENTRYPOINT).is_file(), reason="FLINK_DOCKER_ENTRYPOINT: no copy of the script")
@pytest.mark.parametrize("environment", [None, *ENVIRONMENTS])
def test_flink_entrypoint_runs_the_rendered_args(environment: str | None, tmp_path: Path) -> None:
    """The real entrypoint, with Flink's bin/ scripts stubbed to record how they are called: the
    rendered args make it start the JobManager in application mode and the TaskManager, not fall
    through to running the args as a command (its answer to a first word it does not know)."""
    home, stubs = tmp_path / "flink", tmp_path / "stubs"
    (home / "conf").mkdir(parents=True)
    (home / "bin").mkdir()
    stubs.mkdir()
    for script in ("standalone-job.sh", "jobmanager.sh", "taskmanager.sh", "historyserver.sh"):
        (home / "bin" / script).write_text(FLINK_BIN_STUB)
    (home / "bin" / "config-parser-utils.sh").write_text("#!/bin/sh\n")  # edits conf/config.yaml
    (stubs / "gosu").write_text('#!/bin/sh\nshift\nexec "$@"\n')  # drops root, as in the image
    for path in [*(home / "bin").iterdir(), *stubs.iterdir()]:
        path.chmod(0o755)

    def run(args: list[str]) -> subprocess.CompletedProcess:
        env = {
            "PATH": f"{stubs}:/usr/bin:/bin",
            "FLINK_HOME": str(home),
            "RECORD": str(tmp_path / "record"),
            "DISABLE_JEMALLOC": "true",
            "JOB_MANAGER_RPC_ADDRESS": "fleet-monitor-flink-job-jobmanager",
        }
        args = [arg.replace("$(POD_IP)", "10.1.2.3") for arg in args]  # as the kubelet expands them
        command = ["bash", FLINK_ENTRYPOINT, *args]
        return subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=30)

    usage = re.search(r"Usage: \S+ \(([^)]*)\)", run(["help"]).stdout).group(1)
    assert set(usage.split("|")) == set(FLINK_ENTRYPOINT_COMMANDS)
    docs = render("flink-job", environment, "job.initialSavepointPath=s3://b/savepoints/sp-1")
    for name, script in (("jobmanager", "standalone-job.sh"), ("taskmanager", "taskmanager.sh")):
        args = container(docs, f"fleet-monitor-flink-job-{name}")["args"]
        result = run(args)
        assert result.returncode == 0, result.stderr
        recorded = (tmp_path / "record").read_text().splitlines()
        expected = [arg.replace("$(POD_IP)", "10.1.2.3") for arg in args[1:]]
        assert recorded == [script, "start-foreground", *expected]


def test_flink_pods_get_the_jvm_options_of_the_pinned_flink() -> None:
    """The chart's config.yaml replaces the image's conf/ entirely: it must carry the module
    exports/opens the Flink distribution ships in its own config.yaml (without them the
    JobManager exits on its first reflective access on Java 17)."""
    from devstack.flink_cluster import java_options

    config_map = find(render("flink-job", "dev"), "ConfigMap", "fleet-monitor-flink-job")[0]
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    assert config["env.java.opts.all"] == java_options()
