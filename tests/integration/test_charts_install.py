"""Every chart installs with the dev overlay and upgrades to the prod one through the real helm on
the local Kubernetes cluster (devstack.kube): the real API server validates every object, the
scheduler places the pods on kwok nodes (so requests must fit), the default StorageClass binds
the claims, hook Jobs run to completion and `helm --wait` waits for real readiness. kwok playing
the kubelet is the only simulated part (no container runs). Release history lives in the cluster
as Secrets, so the upgrade is a real second revision and generated credentials must survive it
through `lookup`."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.charts import CHARTS, HELM, ROOT, overlay
from tests.support.kube import Kube

pytestmark = [pytest.mark.integration, pytest.mark.slow]
# Generated Secrets (name, key) per chart that must keep their value across upgrades.
GENERATED = {
    "kafka": [("fleet-monitor-kafka-kraft", "cluster-id")],
    "timescaledb": [  # the bootstrap superuser's and each database role's (storage.roles)
        ("fleet-monitor-timescaledb", "password"),
        *((f"fleet-monitor-timescaledb-{role}", "password") for role in ("owner", "writer", "api", "grafana")),
    ],
    "grafana": [("fleet-monitor-grafana-admin", "admin-password")],
    "api": [("fleet-monitor-api-admin-token", "token")],  # the API_KEYS entry is its hash
}
WORKLOAD = {
    "kafka": ("apps/v1", "statefulsets", "fleet-monitor-kafka"),
    "flink-job": ("apps/v1", "deployments", "fleet-monitor-flink-job-taskmanager"),
    "loader": ("apps/v1", "deployments", "fleet-monitor-loader"),
    "timescaledb": ("apps/v1", "statefulsets", "fleet-monitor-timescaledb"),
    "vector": ("apps/v1", "statefulsets", "fleet-monitor-vector"),
    "grafana": ("apps/v1", "deployments", "fleet-monitor-grafana"),
    "api": ("apps/v1", "deployments", "fleet-monitor-api"),
    "generator": ("apps/v1", "deployments", "fleet-monitor-generator"),
}


@pytest.fixture(scope="module")
def chart_namespace(kube: Kube) -> Iterator[str]:
    name = f"charts-{uuid.uuid4().hex[:6]}"
    kube.ensure_namespace(name)
    yield name
    kube.delete_namespace(name)


def helm(kube: Kube, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig), "HELM_DRIVER": "secret"}
    env.pop("HELM_MEMORY_DRIVER_DATA", None)
    result = subprocess.run([str(HELM), *args], check=False, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def secret_value(kube: Kube, namespace: str, name: str, key: str) -> str:
    secret = kube.get("v1", "secrets", namespace, name)
    assert secret is not None, f"Secret {name} missing"
    return base64.b64decode(secret["data"][key]).decode()


def installed_size(chart: str) -> str | None:
    values = yaml.safe_load((ROOT / f"environments/dev/values/{chart}.yaml").read_text()) or {}
    return (values.get("persistence") or {}).get("size")


@pytest.mark.parametrize("chart", CHARTS)
def test_chart_installs_and_upgrades(kube: Kube, chart_namespace: str, chart: str) -> None:
    try:
        _install_and_upgrade(kube, chart_namespace, chart)
    finally:  # one chart's prod footprint at a time on the small cluster
        helm(
            kube, "uninstall", f"fleet-monitor-{chart}", "--namespace", chart_namespace, "--wait", "--ignore-not-found"
        )


def _install_and_upgrade(kube: Kube, namespace: str, chart: str) -> None:
    release, path = f"fleet-monitor-{chart}", str(ROOT / "charts" / chart)
    common = ["--namespace", namespace, "--wait", "--timeout", "180s"]
    installed = helm(kube, "install", release, path, *overlay(chart, "dev"), *common)
    assert "STATUS: deployed" in installed and "REVISION: 1" in installed
    assert "NOTES:" in installed, "NOTES.txt must render"
    api_version, plural, name = WORKLOAD[chart]
    workload = kube.get(api_version, plural, namespace, name)
    assert workload["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    before = [secret_value(kube, namespace, *generated) for generated in GENERATED.get(chart, [])]

    # A volume cannot grow in place: the API server refuses a StatefulSet's changed
    # volumeClaimTemplates and a claim's growth on a class without volume expansion (ours: the
    # host-path provisioner). So the prod upgrade keeps the installed size; growing a volume is
    # its own procedure (test_a_volume_cannot_grow_through_helm_upgrade).
    keep_size = ["--set", f"persistence.size={installed_size(chart)}"] if installed_size(chart) else []
    upgraded = helm(kube, "upgrade", release, path, *overlay(chart, "prod"), *keep_size, *common)
    assert "REVISION: 2" in upgraded
    status = json.loads(helm(kube, "status", release, "--namespace", namespace, "-o", "json"))
    assert status["info"]["status"] == "deployed" and status["version"] == 2
    prod_replicas = {"kafka": 3, "flink-job": 3, "vector": 3, "api": 3}.get(chart, 1)
    assert kube.get(api_version, plural, namespace, name)["spec"]["replicas"] == prod_replicas
    after = [secret_value(kube, namespace, *generated) for generated in GENERATED.get(chart, [])]
    assert after == before, "generated credentials changed on upgrade"
    history = json.loads(helm(kube, "history", release, "--namespace", namespace, "-o", "json"))
    assert [entry["revision"] for entry in history] == [1, 2]


# The API's Secret as charts/api made it before the token had a Secret of its own (its template,
# with a fixed token in place of the generated one).
OLDER_API_SECRET = """apiVersion: v1
kind: Secret
metadata:
  name: {{ include "api.keysSecret" . }}
type: Opaque
data:
  token: {{ "fm_token-of-an-older-chart" | b64enc | quote }}
  {{ .Values.auth.key }}: {{ printf "generated:%s" ("fm_token-of-an-older-chart" | sha256sum) | b64enc | quote }}
"""


def test_api_admin_token_moves_out_of_the_older_secret_on_upgrade(
    kube: Kube, chart_namespace: str, tmp_path: Path
) -> None:
    """A release of the older layout (the token beside the API_KEYS entry in the API's Secret),
    upgraded to this chart: the token is kept (clients keep working), now in its own Secret, and
    the API's Secret holds the admin entry only."""
    from api.security import Role, identify, parse_api_keys

    older = tmp_path / "api"
    shutil.copytree(ROOT / "charts/api", older)
    (older / "templates" / "secret.yaml").write_text(OLDER_API_SECRET)
    release = "older-api"
    common = ["--namespace", chart_namespace, "--wait", "--timeout", "180s"]
    helm(kube, "install", release, str(older), *overlay("api", "dev"), *common)
    try:
        helm(kube, "upgrade", release, str(ROOT / "charts/api"), *overlay("api", "dev"), *common)
        token = secret_value(kube, chart_namespace, f"{release}-admin-token", "token")
        config = kube.get("v1", "secrets", chart_namespace, f"{release}-keys")["data"]
    finally:
        helm(kube, "uninstall", release, "--namespace", chart_namespace, "--wait")
    assert token == "fm_token-of-an-older-chart" and set(config) == {"api-keys"}
    keys = parse_api_keys(base64.b64decode(config["api-keys"]).decode())
    assert identify(token, keys) == keys[0] and keys[0].role == Role.ADMIN and keys[0].fleets is None


def test_a_volume_cannot_grow_through_helm_upgrade(kube: Kube, chart_namespace: str) -> None:
    """What the API server answers a bigger Kafka volume (the operator then rolls the release back
    and reports Degraded naming it)."""
    path, release = str(ROOT / "charts/kafka"), "grow-kafka"
    common = ["--namespace", chart_namespace, "--wait", "--timeout", "180s"]
    helm(kube, "install", release, path, *overlay("kafka", "dev"), *common)
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig)}
    try:
        grown = subprocess.run(
            [str(HELM), "upgrade", release, path, *overlay("kafka", "dev"), "--set", "persistence.size=20Gi", *common],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    finally:
        helm(kube, "uninstall", release, "--namespace", chart_namespace, "--wait")
    assert grown.returncode != 0
    assert "spec.volumeClaimTemplates" in grown.stderr and "field is immutable" in grown.stderr
