"""Every chart through the real helm binary: `helm lint --strict`, `helm template` with every
environment's overlay validated by kubernetes-validate --strict, and our own policies (images,
limits, probes, non-root, read-only root filesystem, labels, PDBs, NetworkPolicies); and the jobs
image's commands: what the Flink pods and the loader run is what jobs/Dockerfile supports.

Also the rendering helpers the other chart tests import (`render`, `helm`, `CHARTS`, `ENVIRONMENTS`).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / ".tools" / "bin" / "helm"
CHARTS = ("kafka", "flink-job", "loader", "timescaledb", "vector", "grafana", "api", "generator")
ENVIRONMENTS = ("dev", "qa", "prod")
KUBERNETES_VERSIONS = ("1.29", "1.37")  # oldest we support and newest kubernetes-validate knows
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}


def helm(*args: str, env: dict | None = None) -> str:
    result = subprocess.run(
        [str(HELM), *args], check=False, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120
    )
    if result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def overlay(chart: str, environment: str | None) -> list[str]:
    return ["-f", str(ROOT / "environments" / environment / "values" / f"{chart}.yaml")] if environment else []


@functools.cache
def _render(chart: str, environment: str | None, sets: tuple[str, ...]) -> tuple[dict, ...]:
    args = ["template", f"fleet-monitor-{chart}", str(ROOT / "charts" / chart), "--namespace", "fleet"]
    args += overlay(chart, environment)
    for item in sets:
        args += ["--set", item]
    return tuple(doc for doc in yaml.safe_load_all(helm(*args)) if doc)


def render(chart: str, environment: str | None = None, *sets: str) -> list[dict]:
    """Rendered manifests (hooks included) of chart + environment overlay + `--set` items."""
    return list(_render(chart, environment, tuple(sets)))


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


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
# The first words Flink's /docker-entrypoint.sh dispatches on; anything else it execs as given.
FLINK_ENTRYPOINT_COMMANDS = ("jobmanager", "standalone-job", "taskmanager", "history-server")
# StandaloneApplicationClusterConfigurationParserFactory's options: (short, long) -> takes a value.
STANDALONE_JOB_OPTIONS = {
    ("c", "configDir"): True,
    ("jarfile", "jar-file"): True,
    ("r", "webui-port"): True,
    ("j", "job-classname"): True,
    ("jid", "job-id"): True,
    ("h", "host"): True,
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
    from jobs.cli import parser

    docs = render("flink-job", environment, "job.initialSavepointPath=s3://b/savepoints/sp-1")
    jobmanager = container(docs, "fleet-monitor-flink-job-jobmanager")
    assert "command" not in jobmanager, "the image's entrypoint (Flink's) must stay"
    args = jobmanager["args"]
    assert args[0] in FLINK_ENTRYPOINT_COMMANDS
    options, program = standalone_job(args)
    assert re.fullmatch(r"[0-9a-f]{32}", options["job-id"])
    assert options["fromSavepoint"] == "s3://b/savepoints/sp-1"
    assert options["job-classname"] == PYTHON_DRIVER
    assert ("host" in options) is (environment in ("qa", "prod"))
    module, job_args = python_program(program)
    assert module == "jobs"
    parsed = parser().parse_args(job_args)
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
        "name": "fleet-monitor-timescaledb",
        "key": "database-url",
    }
    images = {taskmanager["image"].rsplit(":", 1)[0], loader["image"].rsplit(":", 1)[0]}
    assert images == {"ghcr.io/fleet-monitor/jobs"}, "the loader runs from the jobs image"
