"""The real kopf operator (kopf.testing.KopfRunner, its own thread) against the Kubernetes API
emulator, with the real helm binary storing releases as Secrets in the emulator.

Component charts here are small real charts with the common keys of every component chart
(replicaCount, resources, persistence.size, image.*), so these tests do not depend on the
component charts' details; test_operator_charts.py renders the real ones."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from kopf.testing import KopfRunner

from tests.support.kube_emulator import KubeEmulator, wait_for

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "charts/fleet-operator/crds/fleetmonitors.yaml"
HELM = ROOT / ".tools/bin/helm"
API_VERSION = "fleet-monitor.io/v1alpha1"
GROUP, PLURAL = "fleet-monitor.io", "fleetmonitors"
CHARTS = ("kafka", "timescaledb", "vector", "loader", "api", "grafana", "generator", "flink-job")
NAMESPACE = "fleet"

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
            defaults["job"] = {"name": "", "initialSavepointPath": ""}
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
    kube: KubeEmulator
    root: Path
    helm_log: Path

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
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"environment": environment, **spec},
        }

    def create(self, obj: dict) -> dict:
        return self.kube.create(obj)

    def get(self, name: str = "demo") -> dict | None:
        return self.kube.get(API_VERSION, PLURAL, NAMESPACE, name)

    def patch_spec(self, spec: dict, name: str = "demo") -> dict:
        return self.kube.patch(API_VERSION, PLURAL, NAMESPACE, name, {"spec": spec})

    def delete(self, name: str = "demo") -> None:
        self.kube.delete(API_VERSION, PLURAL, NAMESPACE, name)

    def condition(self, type_: str, name: str = "demo") -> str | None:
        obj = self.get(name) or {}
        for item in obj.get("status", {}).get("conditions", []):
            if item["type"] == type_:
                return item["status"]
        return None

    def wait_condition(self, type_: str, value: str = "True", name: str = "demo", timeout: float = 60) -> dict:
        wait_for(lambda: self.condition(type_, name) == value, timeout, f"{name}: {type_}={value}")
        return self.get(name)

    def wait_generation_settled(self, name: str = "demo", timeout: float = 60) -> dict:
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
        secrets = self.kube.list("v1", "secrets", NAMESPACE, selector="owner=helm,status=deployed")
        return {s["metadata"]["labels"]["name"]: s["metadata"]["labels"] for s in secrets}

    def events(self, reason: str | None = None) -> list[dict]:
        events = self.kube.list("v1", "events", NAMESPACE)
        return [e for e in events if reason is None or e.get("reason") == reason]

    @contextlib.contextmanager
    def operator(self) -> Iterator[KopfRunner]:
        args = ["run", "--standalone", f"--namespace={NAMESPACE}", "-m", "fleet_operator.handlers", "--log-format=json"]
        with KopfRunner(args, timeout=60) as runner:
            self.kube.wait_for_watch(GROUP, PLURAL)
            yield runner
        # The operator must stop cleanly: a crash would surface here.
        assert runner.exception is None, runner.output[-3000:]


@contextlib.contextmanager
def platform(tmp_path: Path, **environment: str) -> Iterator[Platform]:
    charts, environments = write_charts(tmp_path), write_environments(tmp_path)
    shim, log = helm_shim(tmp_path)
    with KubeEmulator(crds=[CRD_PATH]) as kube:
        kube.ensure_namespace(NAMESPACE)
        settings = {
            "KUBECONFIG": str(kube.kubeconfig),
            "FLEET_CHARTS_DIR": str(charts),
            "FLEET_ENVIRONMENTS_DIR": str(environments),
            "FLEET_HELM": str(shim),
            "FLEET_READY_TIMEOUT_S": "3",
            "FLEET_HEAL_INTERVAL_S": "3600",
            "HELM_CACHE_HOME": str(tmp_path / "helm/cache"),
            "HELM_CONFIG_HOME": str(tmp_path / "helm/config"),
            "HELM_DATA_HOME": str(tmp_path / "helm/data"),
            **environment,
        }
        saved = {key: os.environ.get(key) for key in settings}
        os.environ.update(settings)
        try:
            yield Platform(kube, tmp_path, log)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
