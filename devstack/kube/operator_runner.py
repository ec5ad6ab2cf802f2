"""The operator's pods of the local cluster, run as processes of this machine.

kwok nodes run no containers, so on `make cluster` a fleet-operator pod would be Running without
an operator in it and no FleetMonitor would ever be reconciled. This runner, which `make cluster`
starts beside the control plane (`make cluster-down` stops it), plays the kubelet for that one
image: for each Running fleet-operator pod it starts the container as operator/Dockerfile's
ENTRYPOINT with the pod's args and env (the downward API's namespace and name resolved), acting as
the pod's ServiceAccount (a token from the TokenRequest API), and stops it when the pod goes away.
All pods share this machine's loopback, so the probe and metrics ports are free ones instead of
the pod's. Logs: <state>/logs/operator-<pod>.log.

    python -m devstack.kube.operator_runner --kubeconfig .cluster/kubeconfig --root .cluster/operators
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import yaml

from devstack.dockerfile import parse_dockerfile
from devstack.kube.cluster import TOOLS
from devstack.ports import free_port
from devstack.processes import REPO

log = logging.getLogger("devstack.kube.operator_runner")
SELECTOR = "app.kubernetes.io/name=fleet-operator"
DOCKERFILE = REPO / "operator" / "Dockerfile"
POLL_S = 2.0


def entrypoint(dockerfile: Path = DOCKERFILE) -> list[str]:
    """The image's ENTRYPOINT, its `python` this machine's interpreter."""
    command = parse_dockerfile(dockerfile).entrypoint
    return [sys.executable if command[0] == "python" else command[0], *command[1:]]


class OperatorRunner:
    def __init__(self, kubeconfig: Path, root: Path):
        self.kubeconfig, self.root = kubeconfig, root
        self.running: dict[str, subprocess.Popen] = {}  # pod uid -> its process

    def kubectl(self, *args: str) -> str:
        command = [str(TOOLS / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60).stdout

    def sync(self) -> None:
        pods = json.loads(self.kubectl("get", "pods", "-A", "-l", SELECTOR, "-o", "json"))["items"]
        live = {
            pod["metadata"]["uid"]: pod
            for pod in pods
            if pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
        }
        for uid in set(self.running) - set(live):
            self._stop(uid)
        for uid, pod in live.items():
            if uid not in self.running or self.running[uid].poll() is not None:
                self.running[uid] = self._start(pod)

    def _start(self, pod: dict) -> subprocess.Popen:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        container = pod["spec"]["containers"][0]
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        command, env = self.process(pod, container, home)
        log.warning("starting the operator of pod %s/%s", namespace, name)
        with open(self.root.parent / "logs" / f"operator-{name}.log", "ab") as out:
            return subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)

    def process(self, pod: dict, container: dict, home: Path) -> tuple[list[str], dict[str, str]]:
        """The container's command line and environment as the pod's spec makes them."""
        fields = {"metadata.namespace": pod["metadata"]["namespace"], "metadata.name": pod["metadata"]["name"]}
        env = {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}
        env |= {
            item["name"]: fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
            for item in container.get("env", [])
            if "fieldRef" in item.get("valueFrom", {})
        }
        if env.get("FLEET_METRICS_PORT", "0") != "0":
            env["FLEET_METRICS_PORT"] = str(free_port())
        env.update(
            KUBECONFIG=str(self._service_account_kubeconfig(pod, home)),
            PYTHONPATH=os.pathsep.join([str(REPO / "operator"), str(REPO)]),
            PATH=os.pathsep.join([str(TOOLS), os.environ["PATH"]]),
            HOME=str(home),
            HELM_CACHE_HOME=str(home / "helm/cache"),
            HELM_CONFIG_HOME=str(home / "helm/config"),
            HELM_DATA_HOME=str(home / "helm/data"),
        )
        args = [arg for arg in container.get("args", []) if not arg.startswith("--liveness=")]
        return [*entrypoint(), *args, f"--liveness=http://127.0.0.1:{free_port()}/healthz"], env

    def _service_account_kubeconfig(self, pod: dict, home: Path) -> Path:
        namespace, account = pod["metadata"]["namespace"], pod["spec"]["serviceAccountName"]
        token = self.kubectl("create", "token", account, "-n", namespace, "--duration=24h").strip()
        config = yaml.safe_load(self.kubeconfig.read_text())
        config["users"] = [{"name": account, "user": {"token": token}}]
        for context in config["contexts"]:
            context["context"]["user"] = account
        path = home / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def _stop(self, uid: str) -> None:
        process = self.running.pop(uid)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # kopf finishes its handlers and exits
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.sync()
            except (subprocess.SubprocessError, OSError, ValueError, KeyError) as error:
                log.warning("sync failed, retrying: %s", error)
            stop.wait(POLL_S)
        for uid in list(self.running):
            self._stop(uid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.kube.operator_runner", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True, help="the cluster's admin kubeconfig")
    parser.add_argument("--root", type=Path, required=True, help="working directories of the operators")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    OperatorRunner(args.kubeconfig, args.root).run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
