"""The operator's computed values against the REAL component charts: every release of every
environment renders with the real helm (the charts' values.schema.json are strict, so a key the
operator sets that a chart does not accept fails here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from fleet_operator import model, openapi

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / ".tools/bin/helm"
CRD = yaml.safe_load((ROOT / "charts/fleet-operator/crds/fleetmonitors.yaml").read_text())

pytestmark = pytest.mark.integration


def _releases(env: str) -> list[model.Release]:
    obj = yaml.safe_load((ROOT / f"environments/{env}/fleetmonitor.yaml").read_text())
    spec = openapi.apply_defaults(openapi.version_schema(CRD), obj)["spec"]
    return model.desired_releases(obj["metadata"]["name"], spec, ROOT / "charts", ROOT / "environments")


@pytest.mark.parametrize("env", ["dev", "qa", "prod"])
def test_every_release_renders_with_the_real_chart(env, tmp_path):
    for release in _releases(env):
        chart = ROOT / "charts" / release.chart
        if not (chart / "Chart.yaml").is_file():
            pytest.skip(f"charts/{release.chart} is not written yet (the charts are another engineer's part)")
        values = tmp_path / f"{release.name}.yaml"
        values.write_text(yaml.safe_dump(release.values))
        result = subprocess.run(
            [str(HELM), "template", release.name, str(chart), "-n", f"fleet-{env}", "-f", str(values)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"{release.name} ({release.chart}): {result.stderr[-2000:]}"
        documents = [d for d in yaml.safe_load_all(result.stdout) if d]
        names = {d["metadata"]["name"] for d in documents}
        assert any(name.startswith(release.name) for name in names), names


def test_the_operator_chart_renders_and_its_rbac_is_namespaced_when_asked(tmp_path):
    result = subprocess.run(
        [
            str(HELM),
            "template",
            "fleet-operator",
            str(ROOT / "charts/fleet-operator"),
            "-n",
            "fleet-system",
            "--set",
            "watchNamespaces={fleet-dev,fleet-qa}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = sorted(f"{d['kind']}/{d['metadata'].get('namespace', '-')}" for d in documents)
    assert "Role/fleet-dev" in kinds and "Role/fleet-qa" in kinds
    assert not any(d["kind"] == "ClusterRole" and d["metadata"]["name"] == "fleet-operator" for d in documents)
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--namespace=fleet-dev" in container["args"] and "--peering=fleet-operator" in container["args"]
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    role = next(d for d in documents if d["kind"] == "Role")
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert "*" not in verbs and all("*" not in rule["resources"] for rule in role["rules"])
    bad = subprocess.run(
        [str(HELM), "template", "x", str(ROOT / "charts/fleet-operator"), "--set", "replicaCount=-1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode != 0 and "replicaCount" in bad.stderr
