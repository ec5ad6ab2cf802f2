"""scripts/deploy.sh and scripts/port-forward.sh against fake helm and kubectl that record their
calls (no cluster): a copy of the script runs in a scratch root whose .tools/bin holds the fakes,
since both scripts put the repository's .tools/bin first on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fleet_operator import model

from tests.support.charts import HELM, ROOT, find
from tests.support.crd import defaulted

# kubectl: `get svc` answers from $SERVICES/<release> (lines "name port", as the scripts' jsonpath
# prints them); a Namespace applied from stdin is remembered in $STATE. helm: the operator chart's
# install fails while the FleetMonitor's namespace is missing, as its namespaced Role would.
FAKE_KUBECTL = """#!/usr/bin/env bash
echo "kubectl $*" >> "$CALLS"
case "$1" in
  create) [ "$2" = namespace ] && printf 'apiVersion: v1\\nkind: Namespace\\nmetadata:\\n  name: %s\\n' "$3" ;;
  apply)
    if [ "$3" = - ]; then
      manifest="$(cat)"
      if grep -q '^kind: Namespace' <<<"$manifest"; then
        name="$(sed -n 's/^  name: //p' <<<"$manifest")"
        touch "$STATE/namespace-$name"
        echo "kubectl applied Namespace $name" >> "$CALLS"
      fi
    fi ;;
  get)
    if [ "$2" = svc ]; then
      for arg in "$@"; do
        case "$arg" in app.kubernetes.io/instance=*) cat "$SERVICES/${arg#*=}" 2>/dev/null ;; esac
      done
    fi ;;
esac
exit 0
"""
FAKE_HELM = """#!/usr/bin/env bash
echo "helm $*" >> "$CALLS"
if [ "$1 $2" = "upgrade --install" ] && [ ! -e "$STATE/namespace-$WATCHED" ]; then
  echo "Error: namespaces \\"$WATCHED\\" not found" >&2
  exit 1
fi
exit 0
"""


def fleetmonitor(env: str) -> dict:
    return yaml.safe_load((ROOT / "environments" / env / "fleetmonitor.yaml").read_text())


def scratch_root(tmp_path: Path, script: str, env: str) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "root"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / script, root / "scripts" / script)
    (root / "environments" / env).mkdir(parents=True)
    shutil.copy(ROOT / "environments" / env / "fleetmonitor.yaml", root / "environments" / env)
    tools, venv = root / ".tools" / "bin", root / ".venv" / "bin"
    tools.mkdir(parents=True)
    venv.mkdir(parents=True)
    (tools / "kubectl").write_text(FAKE_KUBECTL)
    (tools / "helm").write_text(FAKE_HELM)
    (venv / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # the validation CLI
    for tool in (tools / "kubectl", tools / "helm", venv / "python"):
        tool.chmod(0o755)
    for folder in ("state", "services"):
        (tmp_path / folder).mkdir()
    env_vars = {
        **{key: value for key, value in os.environ.items() if key not in ("KUBE_CONTEXT", "OPERATOR_IMAGE")},
        "CALLS": str(tmp_path / "calls"),
        "STATE": str(tmp_path / "state"),
        "SERVICES": str(tmp_path / "services"),
        "WATCHED": fleetmonitor(env)["metadata"]["namespace"],
    }
    return root, env_vars


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls").read_text().splitlines()


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_deploy_creates_the_namespace_before_the_operator_chart(env: str, tmp_path: Path) -> None:
    """With watchNamespaces the operator chart installs a Role into the FleetMonitor's namespace,
    so on a first deploy that namespace must exist before the chart goes in."""
    root, env_vars = scratch_root(tmp_path, "deploy.sh", env)
    namespace = env_vars["WATCHED"]
    command = ["bash", str(root / "scripts" / "deploy.sh"), env]
    result = subprocess.run(command, check=False, env=env_vars, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    log = calls(tmp_path)
    created = log.index(f"kubectl applied Namespace {namespace}")
    operator = next(i for i, line in enumerate(log) if line.startswith("helm upgrade --install fleet-operator"))
    applied = log.index(f"kubectl apply -f {root}/environments/{env}/fleetmonitor.yaml")
    assert created < operator < applied
    assert log[-2].startswith(f"kubectl wait --for=condition=Ready fleetmonitor/fleet-monitor -n {namespace}")


def _services(env: str, tmp_path: Path) -> dict[str, list[tuple[str, int, str]]]:
    """Per release the operator installs for port-forward.sh's targets: its Services (name, first
    port, that port's name), rendered from the real charts with the operator's values."""
    obj = fleetmonitor(env)
    found = {}
    for release in model.desired_releases(
        obj["metadata"]["name"], defaulted(obj["spec"]), ROOT / "charts", ROOT / "environments"
    ):
        if release.chart not in ("api", "grafana", "flink-job"):
            continue
        values = tmp_path / f"{release.name}.yaml"
        values.write_text(yaml.safe_dump(release.values))
        rendered = subprocess.run(
            [str(HELM), "template", release.name, str(ROOT / "charts" / release.chart), "-f", str(values)],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        services = find([d for d in yaml.safe_load_all(rendered) if d], "Service")
        found[release.name] = sorted(
            (s["metadata"]["name"], s["spec"]["ports"][0]["port"], s["spec"]["ports"][0]["name"]) for s in services
        )
    return found


def test_port_forward_reaches_the_flink_ui_not_its_rpc_port(tmp_path: Path) -> None:
    """Each job's forward goes to the Service port named rest (8081, the UI and REST API), never
    to the JobManager Service's first port, RPC 6123."""
    env = "dev"
    root, env_vars = scratch_root(tmp_path, "port-forward.sh", env)
    services = _services(env, tmp_path)
    for release, entries in services.items():
        (tmp_path / "services" / release).write_text("".join(f"{name} {port}\n" for name, port, _ in entries))
    command = ["bash", str(root / "scripts" / "port-forward.sh"), env]
    result = subprocess.run(command, check=False, env=env_vars, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    forwards = [line.split() for line in calls(tmp_path) if " port-forward " in line]
    targets = {words[-2]: words[-1] for words in forwards}  # svc/<name> -> local:remote
    ports = {f"svc/{name}": (port, port_name) for entries in services.values() for name, port, port_name in entries}
    for index, job in enumerate(model.JOBS):
        release = f"fleet-monitor-job-{job}"
        assert any(name.endswith("-jobmanager") and port == 6123 for name, port, _ in services[release])
        service = next(target for target in targets if target.startswith(f"svc/{release}-"))
        assert ports[service] == (8081, "rest"), f"{job}: forwards {service} {ports[service]}"
        assert targets[service] == f"{8081 + index}:8081"
    assert {"svc/fleet-monitor-grafana", "svc/fleet-monitor-api"} <= set(targets)
    assert not any(mapping.endswith(":6123") for mapping in targets.values())
