"""Rendering the charts with the real helm binary, shared by the chart tests: `helm`, `render`
(chart + environment overlay), `release_manifests` (an environment's releases as the operator
computes their values), `find`, `pod_spec`. The helm binary is the one `make setup-kube` builds
into ~/.cache/fleet-monitor/kube and links into .tools/bin."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import yaml
from fleet_operator import model

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / ".tools" / "bin" / "helm"
CHARTS = model.CHARTS  # the installable charts, listed once (fleet_operator.model)
ENVIRONMENTS = ("dev", "qa", "prod")


def helm(*args: str, env: dict | None = None) -> str:
    result = subprocess.run(
        [str(HELM), *args], check=False, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120
    )
    if result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def overlay(chart: str, environment: str | None) -> list[str]:
    return ["-f", str(ROOT / "environments" / environment / "values" / f"{chart}.yaml")] if environment else []


@functools.cache
def _render(chart: str, environment: str | None, sets: tuple[str, ...]) -> tuple[dict, ...]:
    args = ["template", f"fleet-monitor-{chart}", str(ROOT / "charts" / chart), "--namespace", "fleet"]
    args += overlay(chart, environment)
    for item in sets:
        args += ["--set", item]
    return tuple(doc for doc in yaml.safe_load_all(helm(*args)) if doc)


def render(chart: str, environment: str | None = None, *sets: str) -> list[dict]:
    """Rendered manifests (hooks included) of chart + environment overlay + `--set` items."""
    return list(_render(chart, environment, tuple(sets)))


def render_values(release: str, chart: str | Path, namespace: str, values: dict, workdir: Path) -> list[dict]:
    """`helm template` of one release with a values document (as the operator installs it)."""
    path = workdir / f"{release}.values.yaml"
    path.write_text(yaml.safe_dump(values))
    chart_dir = chart if isinstance(chart, Path) else ROOT / "charts" / chart
    output = helm("template", release, str(chart_dir), "--namespace", namespace, "-f", str(path))
    return [doc for doc in yaml.safe_load_all(output) if doc]


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]
