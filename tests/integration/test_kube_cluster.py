"""The local Kubernetes cluster (devstack.kube) behaves as the charts and the operator expect of a
real one: nodes Ready, pods scheduled and Ready, claims bound by the default StorageClass, Jobs
completed, RBAC enforced on service-account tokens, owners' dependents garbage-collected; and
`python -m devstack.kube up` / `down` leave nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from devstack.kube.cluster import HOSTPATH_ROOT, STORAGE_CLASS
from devstack.processes import REPO
from tests.support.kube import Kube, KubeApiError, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BOUND_S = 120
LABELS = {"app": "web"}


def deployment(replicas: int = 2) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {"containers": [{"name": "web", "image": "example/web:1.0"}]},
            },
        },
    }


def test_nodes_are_ready_and_sized_like_a_small_dev_cluster(kube: Kube):
    nodes = kube.list("v1", "nodes")
    assert len(nodes) == 3
    for node in nodes:
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
        assert node["status"]["allocatable"]["cpu"] == "4"
        assert node["status"]["allocatable"]["memory"] == "16Gi"


def test_a_deployment_becomes_available_on_kwok_nodes_and_its_dependents_are_collected(kube: Kube, namespace: str):
    kube.create(deployment(), namespace)

    def available() -> bool:
        status = (kube.get("apps/v1", "deployments", namespace, "web") or {}).get("status", {})
        return status.get("availableReplicas") == 2

    wait_for(available, BOUND_S, "2 available replicas")
    pods = kube.list("v1", "pods", namespace, selector="app=web")
    assert {pod["spec"]["nodeName"].startswith("kwok-node-") for pod in pods} == {True}
    assert {pod["status"]["phase"] for pod in pods} == {"Running"}
    # Pods got a projected service-account token from the real admission chain.
    volumes = [volume["name"] for volume in pods[0]["spec"]["volumes"]]
    assert any(name.startswith("kube-api-access-") for name in volumes)

    kube.delete("apps/v1", "deployments", namespace, "web")
    wait_for(
        lambda: not kube.list("apps/v1", "replicasets", namespace) and not kube.list("v1", "pods", namespace),
        BOUND_S,
        "the garbage collector to remove the ReplicaSet and its pods",
    )


def test_claims_bind_through_the_default_storage_class_and_statefulsets_become_ready(kube: Kube, namespace: str):
    stateful = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 2,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {
                    "containers": [
                        {
                            "name": "db",
                            "image": "example/db:1.0",
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ]
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
                }
            ],
        },
    }
    kube.create(stateful, namespace)
    wait_for(
        lambda: (
            (kube.get("apps/v1", "statefulsets", namespace, "db") or {}).get("status", {}).get("readyReplicas") == 2
        ),
        BOUND_S,
        "2 ready StatefulSet replicas",
    )
    claims = kube.list("v1", "persistentvolumeclaims", namespace)
    assert sorted(claim["metadata"]["name"] for claim in claims) == ["data-db-0", "data-db-1"]
    assert {claim["status"]["phase"] for claim in claims} == {"Bound"}
    assert {claim["spec"]["storageClassName"] for claim in claims} == {STORAGE_CLASS}  # the default
    volume = kube.get("v1", "persistentvolumes", None, claims[0]["spec"]["volumeName"])
    assert volume["spec"]["hostPath"]["path"].startswith(f"{HOSTPATH_ROOT}/")


def test_a_job_completes(kube: Kube, namespace: str):
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate"},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "migrate", "image": "example/m:1"}]}
            }
        },
    }
    kube.create(job, namespace)
    wait_for(
        lambda: (kube.get("batch/v1", "jobs", namespace, "migrate") or {}).get("status", {}).get("succeeded") == 1,
        BOUND_S,
        "the Job to succeed",
    )


def test_rbac_applies_to_a_service_account_token(kube: Kube, kube_cluster, namespace: str, tmp_path):
    kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}}, namespace)
    config = kube_cluster.service_account_kubeconfig(namespace, "reader", tmp_path / "reader.kubeconfig")
    reader = Kube(config)
    with pytest.raises(KubeApiError) as refused:
        reader.list("v1", "configmaps", namespace)
    assert refused.value.code == 403
    assert f"system:serviceaccount:{namespace}:reader" in refused.value.message

    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "read-configmaps"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
    }
    kube.create(role, namespace)
    kube.create(binding, namespace)
    assert isinstance(wait_for(lambda: _allowed(reader, namespace), BOUND_S, "the RoleBinding"), list)
    with pytest.raises(KubeApiError) as still_refused:
        reader.list("v1", "secrets", namespace)
    assert still_refused.value.code == 403


def _allowed(reader: Kube, namespace: str) -> list | None:
    try:
        return reader.list("v1", "configmaps", namespace)
    except KubeApiError:
        return None


def test_the_cli_starts_a_cluster_and_down_leaves_nothing_behind(tmp_path):
    state = tmp_path / "cluster"
    command = [sys.executable, "-m", "devstack.kube"]
    up = subprocess.run(
        [*command, "up", "--state-dir", str(state), "--nodes", "1"], check=False, capture_output=True, text=True
    )
    assert up.returncode == 0, up.stderr
    assert f"export KUBECONFIG={state / 'kubeconfig'}" in up.stdout
    kube = Kube(state / "kubeconfig")
    assert len(kube.list("v1", "nodes")) == 1
    pids = [
        int(line)
        for line in subprocess.run(
            ["pgrep", "-f", str(state)], check=False, capture_output=True, text=True
        ).stdout.split()
    ]
    assert len(pids) >= 5  # etcd, apiserver, controller-manager, scheduler, kwok

    down = subprocess.run([*command, "down", "--state-dir", str(state)], check=False, capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    assert not state.exists()
    wait_for(lambda: not [pid for pid in pids if _alive(pid)], 30, "every process of the cluster gone")


def test_the_cli_names_a_bad_flag_and_what_is_allowed():
    result = subprocess.run(
        [sys.executable, "-m", "devstack.kube", "up", "--nodes", "0"],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 2
    assert "--nodes must be at least 1, got 0" in result.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
