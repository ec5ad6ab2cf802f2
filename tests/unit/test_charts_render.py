"""Every chart through the real helm binary: `helm lint --strict`, `helm template` with every
environment's overlay validated by kubernetes-validate --strict, and our own policies (images,
limits, probes, non-root, read-only root filesystem, labels, PDBs, NetworkPolicies).

Also the rendering helpers the other chart tests import (`render`, `helm`, `CHARTS`, `ENVIRONMENTS`).
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / ".tools" / "bin" / "helm"
CHARTS = ("kafka", "flink-job", "timescaledb", "vector", "grafana", "api", "generator")
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
