"""An environment's releases rendered as the operator installs them (values from the
FleetMonitor of environments/<env>/fleetmonitor.yaml, `helm template` with the real helm), and the
Kafka chart's broker pod run from its rendered StatefulSet as a local process (tests/support/pods.py).
Shared by tests/integration/test_pods_as_rendered.py and tests/integration/test_kafka_auth.py."""

from __future__ import annotations

from pathlib import Path

import yaml
from fleet_operator import model

from devstack.broker import LOG4J
from devstack.dockerfile import Image
from tests.support.charts import ROOT, find, render_values
from tests.support.crd import defaulted
from tests.support.pods import Endpoints, ImageLayout, LocalContainer, Objects, PodContext, pod_of

NAME = "fleet-monitor"  # the FleetMonitor of environments/*/fleetmonitor.yaml


def releases(environment: str, components: dict | None = None) -> list[model.Release]:
    """The environment's releases with the values the operator installs them with; `components`
    is merged over the FleetMonitor's spec.components, as a user would write it."""
    obj = yaml.safe_load((ROOT / f"environments/{environment}/fleetmonitor.yaml").read_text())
    obj["spec"].setdefault("components", {}).update(components or {})
    spec = defaulted(obj["spec"])
    return [r for r in model.desired_releases(NAME, spec, ROOT / "charts", ROOT / "environments") if r.enabled]


class Environment:
    """An environment's rendered releases: manifests per component, the namespace's objects."""

    def __init__(self, environment: str, workdir: Path, components: dict | None = None):
        obj = yaml.safe_load((ROOT / f"environments/{environment}/fleetmonitor.yaml").read_text())
        self.namespace = obj["metadata"]["namespace"]
        workdir.mkdir(parents=True, exist_ok=True)
        self.docs = {
            r.component: render_values(r.name, r.chart, self.namespace, r.values, workdir)
            for r in releases(environment, components)
        }
        self.objects = Objects([doc for docs in self.docs.values() for doc in docs])
        self.claims = workdir / "claims"

    def workload(self, component: str, kind: str, suffix: str = "") -> dict:
        found = find(self.docs[component], kind, f"{NAME}-{component}{suffix}")
        assert found, f"{component}: no {kind} {NAME}-{component}{suffix} rendered"
        return found[0]

    def context(self, workload: dict, endpoints: Endpoints, workdir: Path, ordinal: int = 0) -> tuple[PodContext, dict]:
        pod, spec = pod_of(workload, self.namespace, ordinal)
        workdir.mkdir(parents=True, exist_ok=True)
        return PodContext(self.objects, pod, endpoints, workdir, self.claims), spec


def kafka_install(root: Path, *, start: bool) -> Path:
    """/opt/kafka of the Kafka image as far as the chart's start.sh uses it: bin/kafka-storage.sh
    and bin/kafka-server-start.sh run the same main classes (kafka-run-class.sh's job) with the
    pinned Kafka jars. Without `start`, the server script only proves the JVM takes the rendered
    KAFKA_HEAP_OPTS (prod's three brokers are too heavy to run here; their config is formatted)."""
    from jobs.connectors import kafka_classpath

    bin_dir = root / "opt-kafka" / "bin"
    bin_dir.mkdir(parents=True)
    (root / "log4j2.properties").write_text(LOG4J)  # the local broker's logging (devstack.broker)
    java = f'java -Dlog4j2.configurationFile={root / "log4j2.properties"} -cp "{kafka_classpath()}"'
    main = 'kafka.Kafka "$@"' if start else "-version"
    scripts = {
        "kafka-storage.sh": f'exec {java} kafka.tools.StorageTool "$@"',
        "kafka-server-start.sh": f"exec {java} $KAFKA_HEAP_OPTS {main}",
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir.parent


def kafka_pod(env: Environment, ordinal: int, workdir: Path, *, start: bool) -> LocalContainer:
    """The broker pod `<name>-<ordinal>` running the chart's start.sh. Every pod's addresses (the
    headless Service names in the quorum voters and advertised listeners) -> 127.0.0.1, its
    ports -> free ones; with several brokers each gets its own, as pods have their own network."""
    workload = env.workload("kafka", "StatefulSet")
    headless = f"{NAME}-kafka-headless.{env.namespace}.svc.cluster.local"
    routes = Endpoints({f"@POD@.{headless}": "127.0.0.1"})
    for index in range(workload["spec"]["replicas"]):
        routes.add(f"{NAME}-kafka-{index}.{headless}", "127.0.0.1")
    context, spec = env.context(workload, routes, workdir, ordinal)
    layout = ImageLayout({"/opt/kafka": kafka_install(workdir, start=start)})
    container = LocalContainer.build(Image(), layout, spec, spec["containers"][0], context)
    container.env["HOSTNAME"] = context.pod.name  # the kubelet sets it to the pod's name
    return container
