"""The operator as its chart deploys it, on the local Kubernetes cluster (devstack.kube): the
fleet-operator chart installed with helm (CRDs, ServiceAccount, RBAC, peering), then
`python -m fleet_operator` started with the arguments and environment of the chart's rendered
Deployment, authenticated with a token of the chart's ServiceAccount, so a verb missing from
its RBAC fails the test. Only the process runs here instead of in the (kwok) pod.

Component charts here are small real charts with the common keys of every component chart
(replicaCount, resources, persistence.size, image.*), so these tests do not depend on the
component charts' details; test_operator_charts.py renders the real ones."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from fleet_operator import model

from devstack.kube.cluster import LocalCluster
from devstack.kube.operator_runner import OperatorRunner
from devstack.ports import free_port
from tests.support.kube import Kube, wait_for

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_CHART = ROOT / "charts/fleet-operator"
HELM = ROOT / ".tools/bin/helm"
API_VERSION = "fleet-monitor.io/v1alpha1"
GROUP, PLURAL = "fleet-monitor.io", "fleetmonitors"
CHARTS = model.CHARTS  # stand-ins for every installable chart (fleet_operator.model)

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Values.fullnameOverride | default .Release.Name }}
  labels: {app.kubernetes.io/instance: {{ .Release.Name }}, app.kubernetes.io/name: {{ .Chart.Name }}}
spec:
  replicas: {{ .Values.replicaCount }}
  selector: {matchLabels: {app.kubernetes.io/instance: {{ .Release.Name }}}}
  template:
    metadata: {labels: {app.kubernetes.io/instance: {{ .Release.Name }}}}
    spec:
      containers:
        - name: main
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          args: [{{ toJson .Values.job | quote }}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-values
  labels: {app.kubernetes.io/instance: {{ .Release.Name }}}
data:
  values.json: {{ toJson .Values | quote }}
"""


def write_charts(root: Path) -> Path:
    charts = root / "charts"
    for name in CHARTS:
        chart = charts / name
        (chart / "templates").mkdir(parents=True)
        (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n")
        defaults = {
            "replicaCount": 1,
            "image": {"repository": f"example/{name}", "tag": "1.0"},
            "persistence": {"size": "1Gi"},
        }
        if name == "flink-job":
            # as charts/flink-job: the upgrade mode a job gets unless the overlay or spec says
            defaults["job"] = {"name": "", "initialSavepointPath": "", "upgradeMode": "savepoint"}
        if name == "kafka":  # the real chart's topic and replication defaults, which the operator reads
            real = yaml.safe_load((ROOT / "charts/kafka/values.yaml").read_text())
            defaults.update({key: real[key] for key in ("replication", "topicDefaults", "topicOverrides", "topics")})
        (chart / "values.yaml").write_text(yaml.safe_dump(defaults))
        (chart / "templates/workload.yaml").write_text(DEPLOYMENT)
    return charts


def write_environments(root: Path) -> Path:
    environments = root / "environments"
    for env, replicas in (("dev", 1), ("qa", 2), ("prod", 3)):
        values = environments / env / "values"
        values.mkdir(parents=True)
        for name in CHARTS:
            (values / f"{name}.yaml").write_text(yaml.safe_dump({"replicaCount": replicas, "environment": env}))
    return environments


def helm_shim(root: Path) -> tuple[Path, Path]:
    """The real helm, with each invocation's arguments appended to a log the tests read."""
    log = root / "helm-calls.log"
    log.touch()
    shim = root / "bin/helm"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{HELM}" "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    return shim, log


@dataclass
class Platform:
    kube: Kube
    namespace: str
    root: Path
    helm_log: Path
    operator_command: list[str]
    operator_env: dict[str, str]
    operator_namespace: str
    operator_log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.operator_log = self.root / "operator.log"

    def helm_calls(self, verb: str | None = None) -> list[str]:
        lines = [line for line in self.helm_log.read_text().splitlines() if not line.startswith("version")]
        return [line for line in lines if verb is None or line.split()[0] == verb]

    def mutations(self) -> list[tuple[str, str]]:
        """(verb, release) of every Helm call that changes something, in order."""
        return [
            (line.split()[0], line.split()[1])
            for line in self.helm_calls()
            if line.split()[0] in ("upgrade", "rollback", "uninstall")
        ]

    # --- the FleetMonitor resource ----------------------------------------------------------------

    def fleet(self, name: str = "demo", environment: str = "dev", **spec) -> dict:
        return {
            "apiVersion": API_VERSION,
            "kind": "FleetMonitor",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"environment": environment, **spec},
        }

    def create(self, obj: dict) -> dict:
        return self.kube.create(obj)

    def get(self, name: str = "demo") -> dict | None:
        return self.kube.get(API_VERSION, PLURAL, self.namespace, name)

    def patch_spec(self, spec: dict, name: str = "demo") -> dict:
        return self.kube.patch(API_VERSION, PLURAL, self.namespace, name, {"spec": spec})

    def delete(self, name: str = "demo") -> None:
        self.kube.delete(API_VERSION, PLURAL, self.namespace, name)

    def condition(self, type_: str, name: str = "demo") -> str | None:
        obj = self.get(name) or {}
        for item in obj.get("status", {}).get("conditions", []):
            if item["type"] == type_:
                return item["status"]
        return None

    def wait_condition(self, type_: str, value: str = "True", name: str = "demo", timeout: float = 120) -> dict:
        wait_for(lambda: self.condition(type_, name) == value, timeout, f"{name}: {type_}={value}{self._log_tail()}")
        return self.get(name)

    def wait_generation_settled(self, name: str = "demo", timeout: float = 120) -> dict:
        """The operator has handled the latest spec (observedGeneration) and is not progressing."""

        def settled():
            obj = self.get(name) or {}
            status = obj.get("status", {})
            progressing = any(
                c["type"] == "Progressing" and c["status"] == "True" for c in status.get("conditions", [])
            )
            return status.get("observedGeneration") == obj["metadata"]["generation"] and not progressing and obj

        return wait_for(settled, timeout, f"{name} to settle")

    def releases(self) -> dict[str, dict]:
        """Helm's own records (Secrets owned by helm) of the deployed releases: name -> labels."""
        secrets = self.kube.list("v1", "secrets", self.namespace, selector="owner=helm,status=deployed")
        return {s["metadata"]["labels"]["name"]: s["metadata"]["labels"] for s in secrets}

    def events(self, reason: str | None = None) -> list[dict]:
        events = self.kube.list("v1", "events", self.namespace)
        return [e for e in events if reason is None or e.get("reason") == reason]

    def workload(self, name: str, plural: str = "deployments") -> dict | None:
        return self.kube.get("apps/v1", plural, self.namespace, name)

    def processed(self, cause: str) -> int:
        """How often kopf logged that it finished handling a cause ("Creation", "Updating",
        "Resuming", "Deletion") with nothing left to retry: a positive signal that no Helm call
        for it is still to come."""
        if not self.operator_log.exists():
            return 0
        return self.operator_log.read_text().count(f"{cause} is processed:")

    def wait_processed(self, cause: str, before: int, timeout: float = 120) -> None:
        wait_for(lambda: self.processed(cause) > before, timeout, f"kopf: {cause} is processed{self._log_tail()}")

    def _log_tail(self, lines: int = 15) -> str:
        if not self.operator_log.exists():
            return ""
        return "\n--- operator log\n" + "\n".join(self.operator_log.read_text().splitlines()[-lines:])

    @contextlib.contextmanager
    def operator(self) -> Iterator[subprocess.Popen]:
        """`python -m fleet_operator` as the chart's Deployment runs it; SIGTERM at the end, and a
        clean exit expected (a crash would surface here)."""
        with open(self.operator_log, "ab") as out:
            process = subprocess.Popen(
                self.operator_command,
                env=self.operator_env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if not getattr(process, "killed", False):
            assert process.returncode in (0, -signal.SIGTERM), (
                f"operator exited {process.returncode}{self._log_tail(40)}"
            )

    def kill_operator(self, process: subprocess.Popen) -> None:
        """kill -9 of the operator and the helm it runs, as a node loss or an OOM kill would."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        process.killed = True


def helm_as(kubeconfig: Path, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    result = subprocess.run([str(HELM), *args], capture_output=True, text=True, env=env, check=False, timeout=300)
    assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stderr}"
    return result.stdout


def install_operator_chart(cluster: LocalCluster, namespace: str, watch: str | None = None) -> str:
    """Install charts/fleet-operator as an administrator would (watching every namespace, or only
    `watch` with a Role there); returns the release name."""
    release = f"op-{uuid.uuid4().hex[:6]}"
    values = ["--set", f"peering.name={release}"]  # a cluster-wide name: one per installation
    if watch:
        values += ["--set", f"watchNamespaces={{{watch}}}"]
    helm_as(cluster.kubeconfig, "upgrade", "--install", release, str(OPERATOR_CHART), "-n", namespace, *values)
    return release


def operator_pod_command(
    cluster: LocalCluster, namespace: str, release: str, root: Path
) -> tuple[list[str], dict[str, str]]:
    """The command and environment of the installed operator Deployment's container, run here as
    its ServiceAccount, as `make cluster`'s runner (devstack.kube.operator_runner) runs its pods."""
    rendered = helm_as(cluster.kubeconfig, "get", "manifest", release, "-n", namespace)
    deployment = next(doc for doc in yaml.safe_load_all(rendered) if doc and doc["kind"] == "Deployment")
    pod = {"metadata": {"namespace": namespace, "name": release}, "spec": deployment["spec"]["template"]["spec"]}
    command, env = OperatorRunner(cluster.kubeconfig, root).process(pod, pod["spec"]["containers"][0], root)
    env["FLEET_METRICS_PORT"] = str(free_port())  # the tests read the operator's metrics
    return command, env


@contextlib.contextmanager
def platform(
    tmp_path: Path, cluster: LocalCluster, namespace: str, *, namespaced: bool = False, **environment: str
) -> Iterator[Platform]:
    """FleetMonitors in `namespace`; the operator installed in a namespace of its own, as in
    production, with a ClusterRole or (namespaced) a Role in `namespace` only. Afterwards the
    operator is uninstalled and what it left is released."""
    charts, environments = write_charts(tmp_path), write_environments(tmp_path)
    shim, log = helm_shim(tmp_path)
    kube = Kube(cluster.kubeconfig)
    operator_namespace = f"{namespace}-operator"
    kube.ensure_namespace(operator_namespace)
    release = install_operator_chart(cluster, operator_namespace, watch=namespace if namespaced else None)
    command, env = operator_pod_command(cluster, operator_namespace, release, tmp_path)
    env.update(
        FLEET_CHARTS_DIR=str(charts),
        FLEET_ENVIRONMENTS_DIR=str(environments),
        FLEET_HELM=str(shim),
        FLEET_READY_TIMEOUT_S="3",
        FLEET_HEAL_INTERVAL_S="3600",
    )
    env.update(environment)
    try:
        yield Platform(kube, namespace, tmp_path, log, command, env, operator_namespace)
    finally:
        # With no operator left to run them, finalizers would hold the namespace forever.
        for item in kube.list(API_VERSION, PLURAL, namespace) if kube.get("v1", "namespaces", None, namespace) else []:
            kube.patch(API_VERSION, PLURAL, namespace, item["metadata"]["name"], {"metadata": {"finalizers": None}})
        helm_as(cluster.kubeconfig, "uninstall", release, "-n", operator_namespace, "--ignore-not-found")
        kube.delete_namespace(operator_namespace)
