"""`make deploy-<env>` (scripts/deploy.sh) on a local Kubernetes cluster with nodes enough for
prod (its requests: 23.5 CPU, 84 GiB): the operator chart, then environments/<env>/fleetmonitor.yaml,
until the FleetMonitor is Ready; every component release is installed from the real charts with
the environment's overlay, its pods scheduled on kwok nodes and Ready, its claims bound, its hook
Jobs complete. The operator runs here as its installed Deployment's container would (its args,
environment and ServiceAccount); `--undeploy`
removes the releases and keeps the volumes and the Secrets they need."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from devstack.kube.cluster import LocalCluster, NodePool
from tests.support.kube import Kube, wait_for
from tests.support.netpol import admits
from tests.support.operator_harness import ROOT, operator_pod_command

pytestmark = [pytest.mark.integration, pytest.mark.slow]
OPERATOR_NAMESPACE = "fleet-system"


def deploy(kubeconfig, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "WAIT_TIMEOUT": "10m"}
    return subprocess.run(
        [str(ROOT / "scripts/deploy.sh"), *args], capture_output=True, text=True, env=env, timeout=900, check=False
    )


@pytest.fixture(scope="module")
def prod_sized(tmp_path_factory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("prod-sized"), nodes=NodePool(count=6, cpu="8", memory="32Gi"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.mark.parametrize("env", ["dev", "qa", "prod"])
def test_deploy_reaches_ready_and_undeploy_removes_it(prod_sized: LocalCluster, env: str, tmp_path):
    kube_cluster, kube = prod_sized, Kube(prod_sized.kubeconfig)
    resource = yaml.safe_load((ROOT / f"environments/{env}/fleetmonitor.yaml").read_text())
    namespace, name = resource["metadata"]["namespace"], resource["metadata"]["name"]
    result: dict[str, subprocess.CompletedProcess] = {}
    deploying = threading.Thread(target=lambda: result.update(deploy=deploy(kube_cluster.kubeconfig, env)))
    deploying.start()
    # The chart's operator pod is a kwok stand-in: run its container's process here once installed.
    wait_for(
        lambda: kube.get("apps/v1", "deployments", OPERATOR_NAMESPACE, "fleet-operator") or not deploying.is_alive(),
        300,
        "the operator chart installed",
    )
    command, operator_env = operator_pod_command(kube_cluster, OPERATOR_NAMESPACE, "fleet-operator", tmp_path)
    log = tmp_path / "operator.log"
    with open(log, "ab") as out:
        operator = subprocess.Popen(command, env=operator_env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deploying.join(900)
        deployed = result["deploy"]
        assert deployed.returncode == 0, (
            f"{deployed.stdout}\n{deployed.stderr}\n--- operator\n{log.read_text()[-4000:]}"
        )
        # deploy.sh ends with `kubectl get fleetmonitor`: the CRD's printer columns say Ready.
        header, row = deployed.stdout.strip().splitlines()[-2:]
        assert header.split()[:4] == ["NAME", "ENVIRONMENT", "PHASE", "READY"]
        assert row.split()[:4] == [name, env, "Ready", "True"]
        fleet = kube.get("fleet-monitor.io/v1alpha1", "fleetmonitors", namespace, name)
        enabled = {c: entry for c, entry in fleet["status"]["components"].items() if entry["state"] != "Disabled"}
        assert enabled and {entry["state"] for entry in enabled.values()} == {"Ready"}
        secrets = kube.list("v1", "secrets", namespace, selector="owner=helm,status=deployed")
        assert {s["metadata"]["labels"]["name"] for s in secrets} == {entry["release"] for entry in enabled.values()}
        pods = kube.list("v1", "pods", namespace)
        assert pods and all(pod["status"]["phase"] in ("Running", "Succeeded") for pod in pods)
        claims = kube.list("v1", "persistentvolumeclaims", namespace)
        assert claims and {claim["status"]["phase"] for claim in claims} == {"Bound"}
        _operator_reaches_kafka_and_flink(kube, namespace)

        kept = {claim["metadata"]["name"] for claim in claims if claim["metadata"]["name"].startswith("data-")}
        undeployed = deploy(kube_cluster.kubeconfig, "--undeploy", env)
        assert undeployed.returncode == 0, f"{undeployed.stdout}\n{undeployed.stderr}"
        assert kube.get("fleet-monitor.io/v1alpha1", "fleetmonitors", namespace, name) is None
        assert kube.list("v1", "secrets", namespace, selector="owner=helm") == []
        wait_for(lambda: not kube.list("v1", "pods", namespace), 120, "every pod of the environment gone")
        # StatefulSet volumes stay (unless the FleetMonitor says deleteClaim), and with them the
        # generated credentials they were initialised with.
        left = {claim["metadata"]["name"] for claim in kube.list("v1", "persistentvolumeclaims", namespace)}
        delete_claim = {
            c
            for c, spec in resource["spec"].get("components", {}).items()
            if spec.get("storage", {}).get("deleteClaim")
        }
        assert {c for c in kept if not any(f"-{component}-" in c for component in delete_claim)} <= left
        if any("-kafka-" in claim for claim in left):
            assert kube.get("v1", "secrets", namespace, f"{name}-kafka-kraft")
    finally:
        operator.terminate()
        operator.wait(60)


def _operator_reaches_kafka_and_flink(kube: Kube, namespace: str) -> None:
    """The operator (its own namespace) may open Kafka's client port (topics) and each JobManager's
    REST port (savepoints) under the NetworkPolicies the cluster holds; a pod of another namespace
    may not. Evaluated on the API's objects: no network plugin runs here (tests.support.netpol)."""
    policies = kube.list("networking.k8s.io/v1", "networkpolicies", namespace)
    (operator,) = kube.list("v1", "pods", OPERATOR_NAMESPACE, selector="app.kubernetes.io/name=fleet-operator")
    operator_namespace = kube.get("v1", "namespaces", None, OPERATOR_NAMESPACE)
    stranger = {"metadata": {"name": "x", "namespace": "default", "labels": operator["metadata"]["labels"]}}
    default_namespace = kube.get("v1", "namespaces", None, "default")
    targets = [(pod, 9092) for pod in kube.list("v1", "pods", namespace, selector="app.kubernetes.io/name=kafka")]
    targets += [
        (pod, 8081) for pod in kube.list("v1", "pods", namespace, selector="app.kubernetes.io/component=jobmanager")
    ]
    assert len(targets) >= 2 and policies
    for pod, port in targets:
        name = pod["metadata"]["name"]
        assert admits(policies, pod, port, operator, operator_namespace), f"the operator cannot reach {name}:{port}"
        assert not admits(policies, pod, port, stranger, default_namespace), f"any namespace reaches {name}:{port}"


def _processes_of(state: Path) -> list[int]:
    """Pids whose command line or KUBECONFIG points into the cluster's state directory."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            text = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if str(state).encode() in text:
            found.append(int(proc.name))
    return found


def test_make_cluster_then_make_deploy_dev_reaches_ready(tmp_path):
    """What the README's deploy section says, as a user types it: `make cluster` (the CLI behind it,
    which also runs the operator's pods as local processes), `make deploy-dev` until the
    FleetMonitor is Ready, `make undeploy-dev`, `make cluster-down`: nothing is left running."""
    state = tmp_path / "cluster"
    cli = [sys.executable, "-m", "devstack.kube"]
    up = subprocess.run([*cli, "up", "--state-dir", str(state)], check=False, capture_output=True, text=True)
    assert up.returncode == 0, up.stderr
    try:
        deployed = deploy(state / "kubeconfig", "dev")
        assert deployed.returncode == 0, f"{deployed.stdout}\n{deployed.stderr}\n{_operator_logs(state)}"
        row = deployed.stdout.strip().splitlines()[-1]  # deploy.sh ends with `kubectl get fleetmonitor`
        assert row.split()[:4] == ["fleet-monitor", "dev", "Ready", "True"], deployed.stdout
        undeployed = deploy(state / "kubeconfig", "--undeploy", "dev")
        assert undeployed.returncode == 0, f"{undeployed.stdout}\n{undeployed.stderr}\n{_operator_logs(state)}"
        assert _processes_of(state)  # the control plane, the runner and the operator
    finally:
        down = subprocess.run([*cli, "down", "--state-dir", str(state)], check=False, capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    wait_for(lambda: not _processes_of(state), 60, "every process of the cluster gone, the operator's too")


def _operator_logs(state: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in (state / "logs").glob("operator*.log"))
