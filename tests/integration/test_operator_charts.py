"""The operator's computed values against the REAL component charts: every release of every
environment renders with the real helm (the charts' values.schema.json are strict, so a key the
operator sets that a chart does not accept fails here)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from fleet_operator import model

from tests.support.crd import defaulted

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / ".tools/bin/helm"

pytestmark = pytest.mark.integration


def _releases(env: str, obj: dict | None = None) -> list[model.Release]:
    obj = obj or yaml.safe_load((ROOT / f"environments/{env}/fleetmonitor.yaml").read_text())
    return model.desired_releases(
        obj["metadata"]["name"], defaulted(obj["spec"]), ROOT / "charts", ROOT / "environments"
    )


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


def _fleetmonitor(env: str, **spec) -> dict:
    """The environment's FleetMonitor, optionally with more spec keys (e.g. topics)."""
    obj = yaml.safe_load((ROOT / f"environments/{env}/fleetmonitor.yaml").read_text())
    obj["spec"].update(spec)
    return obj


def _render(release: model.Release, env: str, tmp_path: Path) -> list[dict]:
    values = tmp_path / f"{release.name}.yaml"
    values.write_text(yaml.safe_dump(release.values))
    chart = ROOT / "charts" / release.chart
    rendered = subprocess.run(
        [str(HELM), "template", release.name, str(chart), "-n", f"fleet-{env}", "-f", str(values)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(rendered) if d]


@pytest.mark.parametrize(
    ("env", "topics"),
    [
        ("dev", None),
        ("qa", None),
        ("prod", None),
        ("qa", {"partitions": 6, "config": {"min.insync.replicas": "2"}}),
        ("prod", {"replicationFactor": 3, "config": {"min.insync.replicas": "2"}}),
        ("prod", {"overrides": {"fleet.alerts": {"replicationFactor": 3}}}),
    ],
    ids=["dev", "qa", "prod", "qa-spec-topics", "prod-spec-topics", "prod-spec-override"],
)
def test_kafka_min_insync_replicas_never_exceed_the_replication_factor(env, topics, tmp_path):
    """The kafka release as the operator renders it: three brokers mean replication factor 3 with
    min.insync.replicas 2 (topics, offsets and transaction logs), whether or not the FleetMonitor
    declares topics; a spec without them used to get factor 1 beside the overlay's min ISR 2. In
    any environment no topic asks for more in-sync replicas than it has (acks=all would fail). The
    chart's topics Job is the topics' one owner: the operator only checks what it cannot create."""
    obj = _fleetmonitor(env, **({"topics": topics} if topics else {}))
    releases = _releases(env, obj)
    documents = _render(next(r for r in releases if r.component == "kafka"), env, tmp_path)
    brokers = next(d for d in documents if d["kind"] == "StatefulSet")["spec"]["replicas"]
    properties = next(d for d in documents if d["kind"] == "ConfigMap")["data"]["server.properties"]
    broker = dict(line.strip().split("=", 1) for line in properties.splitlines() if "=" in line and "#" not in line)
    script = next(d for d in documents if d["kind"] == "Job")["spec"]["template"]["spec"]["containers"][0]["args"][0]
    created = {
        topic: (int(factor), dict(re.findall(r'--config "([^=]+)=([^"]*)"', rest)))
        for topic, factor, rest in re.findall(
            r'--create --if-not-exists --topic "([^"]+)" .*?--replication-factor (\d+)(.*)', script
        )
    }
    assert len(created) == len(model.ALL_TOPICS)
    for factor, min_isr in (
        ("default.replication.factor", "min.insync.replicas"),
        ("transaction.state.log.replication.factor", "transaction.state.log.min.isr"),
    ):
        assert int(broker[min_isr]) <= int(broker[factor]) <= brokers
        if brokers >= 3:
            assert (int(broker[factor]), int(broker[min_isr])) == (3, 2)
    assert int(broker["offsets.topic.replication.factor"]) == min(brokers, 3)
    for topic, (factor, config) in created.items():
        assert int(config.get("min.insync.replicas", broker["min.insync.replicas"])) <= factor, topic
        if brokers >= 3:
            assert factor == 3, topic


@pytest.mark.parametrize("env", ["dev", "qa", "prod"])
def test_kafka_heap_fits_the_container_the_operator_sizes(env, tmp_path):
    """-Xmx at most 60% of the broker's memory limit as the operator sizes it (prod's FleetMonitor
    once set 4Gi, where the overlay's fixed 4g heap left nothing for page cache and off-heap memory)."""
    kafka = next(r for r in _releases(env) if r.component == "kafka")
    workload = next(d for d in _render(kafka, env, tmp_path) if d["kind"] == "StatefulSet")
    container = workload["spec"]["template"]["spec"]["containers"][0]
    heap = next(e["value"] for e in container["env"] if e["name"] == "KAFKA_HEAP_OPTS")
    number, unit = re.search(r"-Xmx([0-9]+)([kKmMgG]?)", heap).groups()
    heap_bytes = int(number) * {"k": 2**10, "m": 2**20, "g": 2**30, "": 1}[unit.lower()]
    limit, limit_unit = re.fullmatch(r"([0-9]+)(Mi|Gi)", container["resources"]["limits"]["memory"]).groups()
    limit_bytes = int(limit) * {"Mi": 2**20, "Gi": 2**30}[limit_unit]
    assert 0.25 * limit_bytes <= heap_bytes <= 0.6 * limit_bytes, f"{heap} in {limit}{limit_unit}"


# Kinds of CRDs this cluster does not serve (the Prometheus operator's); anything else unserved fails.
THIRD_PARTY_KINDS = {"PrometheusRule", "ServiceMonitor", "PodMonitor"}


@pytest.mark.slow
@pytest.mark.parametrize("env", ["dev", "qa", "prod"])
def test_every_release_passes_a_strict_server_side_dry_run(env, kube, kube_cluster, tmp_path):
    """What the operator would install for the environment, as the real API server sees it:
    `kubectl apply --dry-run=server --validate=strict` (admission, schema, unknown fields)."""
    namespace = f"fleet-{env}"  # the namespace _render renders into
    kube.ensure_namespace(namespace)
    unserved: set[str] = set()
    for release in _releases(env):
        documents = _render(release, env, tmp_path)
        served = [d for d in documents if d["kind"] not in THIRD_PARTY_KINDS]
        unserved |= {d["kind"] for d in documents} - {d["kind"] for d in served}
        result = kube_cluster.kubectl(
            "apply", "--dry-run=server", "--validate=strict", "-n", namespace, "-f", "-",
            input=yaml.safe_dump_all(served), check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{release.name} ({release.chart}, {env}): {result.stderr[-3000:]}"
    assert unserved <= THIRD_PARTY_KINDS
