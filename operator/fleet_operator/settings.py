"""Operator configuration from the environment (the chart sets these; tests override them): one
pydantic-settings model, each default written once here; `python -m fleet_operator --help` lists
the variables from it."""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.settings import problems
from fleet_operator.model import operator_peer

REPO_ROOT = Path(__file__).resolve().parents[2]


def _helm() -> str:
    return shutil.which("helm") or str(REPO_ROOT / ".tools/bin/helm")


class Settings(BaseSettings):
    """Variables are FLEET_<FIELD>."""

    model_config = SettingsConfigDict(
        env_prefix="FLEET_", env_ignore_empty=True, frozen=True, hide_input_in_errors=True
    )

    charts_dir: Path = Field(REPO_ROOT / "charts", description="component charts")
    environments_dir: Path = Field(
        REPO_ROOT / "environments", description="values overlays, <dir>/<env>/values/<chart>.yaml"
    )
    crd_path: Path = Field(
        REPO_ROOT / "charts/fleet-operator/crds/fleetmonitors.yaml", description="the FleetMonitor CRD"
    )
    helm: str = Field(default_factory=_helm, description="helm binary (helm on PATH, else .tools/bin/helm)")
    helm_timeout: str = Field("5m", description="helm --timeout of one install/upgrade/rollback/uninstall")
    ready_timeout_s: float = Field(
        600.0, gt=0, description="how long one stage may take to become ready before a retry"
    )
    heal_interval_s: float = Field(60.0, gt=0, description="self-healing interval: topics and releases")
    flink_rest: str = Field(
        "http://{release}-rest.{namespace}.svc:8081", description="a job's Flink REST URL ({release}, {namespace})"
    )
    savepoint_timeout_s: float = Field(300.0, gt=0, description="how long a savepoint may take before an upgrade")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics port, 0 = off")
    operator_namespace: str | None = Field(None, description="where the operator's pods run (its chart sets it)")
    operator_pod_labels: dict[str, str] | None = Field(
        None, description="the operator pods' selector labels, JSON (its chart sets them)"
    )

    @property
    def network_peer(self) -> dict | None:
        return operator_peer(self.operator_namespace, self.operator_pod_labels)

    @classmethod
    def from_env(cls) -> Settings:
        """ValueError names each bad variable and what is allowed."""
        try:
            return cls()
        except ValidationError as error:
            raise ValueError("; ".join(problems(cls, error))) from None

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
