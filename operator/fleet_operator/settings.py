"""Operator configuration from the environment (the chart sets these; tests override them)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from fleet_operator.model import operator_peer

REPO_ROOT = Path(__file__).resolve().parents[2]


def _path(variable: str, default: Path) -> Path:
    return Path(os.environ.get(variable) or default)


@dataclass(frozen=True)
class Settings:
    charts_dir: Path
    environments_dir: Path
    crd_path: Path
    helm: str
    helm_timeout: str  # Helm's own --timeout for one install/upgrade/rollback/uninstall
    ready_timeout_s: float  # how long one stage may take to become ready before a retry
    heal_interval_s: float  # the self-healing timer (topics, releases)
    flink_rest: str  # template for a job's Flink REST API ({release}, {namespace})
    savepoint_timeout_s: float
    metrics_port: int  # 0 = no metrics endpoint
    namespace: str | None = None  # where the operator's pods run (its chart sets it)
    pod_labels: dict | None = None  # the operator pods' selector labels (its chart sets them)

    @property
    def network_peer(self) -> dict | None:
        return operator_peer(self.namespace, self.pod_labels)

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            charts_dir=_path("FLEET_CHARTS_DIR", REPO_ROOT / "charts"),
            environments_dir=_path("FLEET_ENVIRONMENTS_DIR", REPO_ROOT / "environments"),
            crd_path=_path("FLEET_CRD_PATH", REPO_ROOT / "charts/fleet-operator/crds/fleetmonitors.yaml"),
            helm=os.environ.get("FLEET_HELM") or shutil.which("helm") or str(REPO_ROOT / ".tools/bin/helm"),
            helm_timeout=os.environ.get("FLEET_HELM_TIMEOUT", "5m"),
            ready_timeout_s=float(os.environ.get("FLEET_READY_TIMEOUT_S", "600")),
            heal_interval_s=float(os.environ.get("FLEET_HEAL_INTERVAL_S", "60")),
            flink_rest=os.environ.get("FLEET_FLINK_REST", "http://{release}-rest.{namespace}.svc:8081"),
            savepoint_timeout_s=float(os.environ.get("FLEET_SAVEPOINT_TIMEOUT_S", "300")),
            metrics_port=int(os.environ.get("FLEET_METRICS_PORT", "0")),
            namespace=os.environ.get("FLEET_OPERATOR_NAMESPACE") or None,
            pod_labels=json.loads(os.environ.get("FLEET_OPERATOR_POD_LABELS") or "{}") or None,
        )

    def missing(self) -> list[str]:
        """What this operator cannot work without, said plainly."""
        problems = []
        if not Path(self.helm).is_file() and not shutil.which(self.helm):
            problems.append(f"helm binary not found at {self.helm} (set FLEET_HELM or put helm on PATH)")
        if not self.charts_dir.is_dir():
            problems.append(f"charts directory {self.charts_dir} does not exist (set FLEET_CHARTS_DIR)")
        if not self.environments_dir.is_dir():
            problems.append(
                f"environments directory {self.environments_dir} does not exist (set FLEET_ENVIRONMENTS_DIR)"
            )
        if not self.crd_path.is_file():
            problems.append(f"CRD file {self.crd_path} does not exist (set FLEET_CRD_PATH)")
        return problems
