"""`make deploy-dev` (scripts/deploy.sh) on the local Kubernetes cluster: the operator chart, then
environments/dev/fleetmonitor.yaml, until the FleetMonitor is Ready; every component release is
installed from the real charts with the dev overlay, its pods scheduled on kwok nodes and Ready,
its claims bound, its hook Jobs complete. The operator runs here as its installed Deployment's
container would (its args, environment and ServiceAccount); `--undeploy` removes it all again."""

from __future__ import annotations

import os
import subprocess
import threading

import pytest
import yaml

from tests.integration.operator_harness import ROOT, operator_pod_command
from tests.support.kube import Kube, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
OPERATOR_NAMESPACE = "fleet-system"


def deploy(kubeconfig, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "WAIT_TIMEOUT": "10m"}
    return subprocess.run(
        [str(ROOT / "scripts/deploy.sh"), *args], capture_output=True, text=True, env=env, timeout=900, check=False
    )


def test_deploy_dev_reaches_ready_and_undeploy_removes_it(kube_cluster, kube: Kube, tmp_path):
    resource = yaml.safe_load((ROOT / "environments/dev/fleetmonitor.yaml").read_text())
    namespace, name = resource["metadata"]["namespace"], resource["metadata"]["name"]
    result: dict[str, subprocess.CompletedProcess] = {}
    deploying = threading.Thread(target=lambda: result.update(deploy=deploy(kube_cluster.kubeconfig, "dev")))
    deploying.start()
    # The chart's operator pod is a kwok stand-in: run its container's process here once installed.
    wait_for(
        lambda: kube.get("apps/v1", "deployments", OPERATOR_NAMESPACE, "fleet-operator") or not deploying.is_alive(),
        300,
        "the operator chart installed",
    )
    command, env = operator_pod_command(kube_cluster, OPERATOR_NAMESPACE, "fleet-operator", tmp_path)
    log = tmp_path / "operator.log"
    with open(log, "ab") as out:
        operator = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deploying.join(900)
        deployed = result["deploy"]
        assert deployed.returncode == 0, (
            f"{deployed.stdout}\n{deployed.stderr}\n--- operator\n{log.read_text()[-4000:]}"
        )
        fleet = kube.get("fleet-monitor.io/v1alpha1", "fleetmonitors", namespace, name)
        components = fleet["status"]["components"]
        assert components and {entry["state"] for entry in components.values()} == {"Ready"}
        secrets = kube.list("v1", "secrets", namespace, selector="owner=helm,status=deployed")
        assert {s["metadata"]["labels"]["name"] for s in secrets} == {entry["release"] for entry in components.values()}
        pods = kube.list("v1", "pods", namespace)
        assert pods and all(pod["status"]["phase"] in ("Running", "Succeeded") for pod in pods)
        claims = kube.list("v1", "persistentvolumeclaims", namespace)
        assert claims and {claim["status"]["phase"] for claim in claims} == {"Bound"}

        undeployed = deploy(kube_cluster.kubeconfig, "--undeploy", "dev")
        assert undeployed.returncode == 0, f"{undeployed.stdout}\n{undeployed.stderr}"
        assert kube.get("fleet-monitor.io/v1alpha1", "fleetmonitors", namespace, name) is None
        assert kube.list("v1", "secrets", namespace, selector="owner=helm") == []
        wait_for(lambda: not kube.list("v1", "pods", namespace), 120, "every pod of the environment gone")
    finally:
        operator.terminate()
        operator.wait(60)
