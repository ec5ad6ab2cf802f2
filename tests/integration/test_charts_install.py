"""Every chart installs and upgrades through the real helm binary without a cluster: helm talks to
the Kubernetes API emulator (tests/support/kube_emulator.py, kmock-based; its stand-in controllers
mark workloads ready and hook Jobs complete, which is the only simulated part). Release history
lives in the emulator as Secrets (helm's default driver), so the upgrade is a real second revision
and generated credentials must survive it through `lookup`."""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import os
import subprocess
import uuid

import pytest

from tests.support.kube_emulator import ApiServer, KubeEmulator
from tests.unit.test_charts_render import CHARTS, HELM, ROOT, overlay

pytestmark = pytest.mark.integration
NAMESPACE = "fleet"
# Generated Secrets (name, key) per chart that must keep their value across upgrades.
GENERATED = {
    "kafka": ("fleet-monitor-kafka-kraft", "cluster-id"),
    "timescaledb": ("fleet-monitor-timescaledb", "password"),
    "grafana": ("fleet-monitor-grafana-admin", "admin-password"),
    "api": ("fleet-monitor-api-keys", "api-keys"),
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


class ChartApiServer(ApiServer):
    """Two more controller stand-ins `helm --wait` needs: Services get a cluster IP (the API server's
    allocator) and PersistentVolumeClaims become Bound (a provisioner)."""

    _addresses = itertools.count(10)

    async def _controllers(self, key) -> None:
        group, plural, _, _ = key
        obj = self.store.get(key)
        if (group, plural) == ("", "services") and obj and not obj["spec"].get("clusterIP"):
            obj = copy.deepcopy(obj)
            obj["spec"]["clusterIP"] = f"10.96.0.{next(self._addresses)}"
            await self._record(key, obj, "MODIFIED")
        elif (
            (group, plural) == ("", "persistentvolumeclaims") and obj and obj.get("status", {}).get("phase") != "Bound"
        ):
            obj = copy.deepcopy(obj)
            obj["status"] = {"phase": "Bound"}
            await self._record(key, obj, "MODIFIED")
        elif (group, plural) == ("apps", "deployments") and obj:
            await self._replica_set(obj)
        await super()._controllers(key)

    async def _replica_set(self, deployment: dict) -> None:
        """The Deployment controller's ReplicaSet for the current template, ready (helm reads it)."""
        meta = deployment["metadata"]
        template = copy.deepcopy(deployment["spec"]["template"])
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        template["metadata"].setdefault("labels", {})["pod-template-hash"] = digest
        replicas = deployment["spec"].get("replicas", 1)
        name = f"{meta['name']}-{digest}"
        key = ("apps", "replicasets", meta["namespace"], name)
        if key in self.store:
            return
        owner = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
        }
        replica_set = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "uid": str(uuid.uuid4()),
                "ownerReferences": [owner],
                "labels": template["metadata"]["labels"],
                "generation": 1,
            },
            "spec": {"replicas": replicas, "selector": deployment["spec"]["selector"], "template": template},
            "status": {
                "replicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "observedGeneration": 1,
            },
        }
        await self._record(key, replica_set, "ADDED")


@pytest.fixture(scope="module")
def kube():
    emulator = KubeEmulator()
    emulator.server = ChartApiServer(workloads_ready=True)
    with emulator:
        emulator.ensure_namespace(NAMESPACE)
        yield emulator


def helm(kube: KubeEmulator, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig), "HELM_DRIVER": "secret"}
    env.pop("HELM_MEMORY_DRIVER_DATA", None)
    result = subprocess.run([str(HELM), *args], check=False, capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def secret_value(kube: KubeEmulator, name: str, key: str) -> str:
    secret = kube.get("v1", "secrets", NAMESPACE, name)
    assert secret is not None, f"Secret {name} missing"
    return base64.b64decode(secret["data"][key]).decode()


@pytest.mark.parametrize("chart", CHARTS)
def test_chart_installs_and_upgrades(kube: KubeEmulator, chart: str) -> None:
    release = f"fleet-monitor-{chart}"
    path = str(ROOT / "charts" / chart)
    common = ["--namespace", NAMESPACE, "--wait", "--timeout", "90s"]

    installed = helm(kube, "install", release, path, *overlay(chart, "dev"), *common)
    assert "STATUS: deployed" in installed and "REVISION: 1" in installed
    assert "NOTES:" in installed, "NOTES.txt must render"
    api_version, plural, name = WORKLOAD[chart]
    workload = kube.get(api_version, plural, NAMESPACE, name)
    assert workload["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    before = secret_value(kube, *GENERATED[chart]) if chart in GENERATED else None

    upgraded = helm(kube, "upgrade", release, path, *overlay(chart, "prod"), *common)
    assert "REVISION: 2" in upgraded
    status = json.loads(helm(kube, "status", release, "--namespace", NAMESPACE, "-o", "json"))
    assert status["info"]["status"] == "deployed" and status["version"] == 2
    prod_replicas = {"kafka": 3, "flink-job": 3, "vector": 3, "api": 3}.get(chart, 1)
    assert kube.get(api_version, plural, NAMESPACE, name)["spec"]["replicas"] == prod_replicas
    if before is not None:
        assert secret_value(kube, *GENERATED[chart]) == before, "generated credentials changed on upgrade"
    history = json.loads(helm(kube, "history", release, "--namespace", NAMESPACE, "-o", "json"))
    assert [entry["revision"] for entry in history] == [1, 2]
