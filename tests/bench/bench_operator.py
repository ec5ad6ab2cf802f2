"""Operator benchmark (tests/bench/README.md interface).

1. create -> Ready: a FleetMonitor is created and the operator, run as its chart deploys it (on the
   local Kubernetes cluster, devstack.kube, real helm, kwok nodes), installs every release and
   waits for its workloads, until the resource's Ready condition. Baseline: the same releases with
   the same values installed by bare `helm upgrade --install --wait`, stage after stage (a stage's
   releases at once), on the same cluster: the operator's overhead on top of Helm itself.
2. reconcile cost of 100 unchanged resources: the operator's reconcile over 100 FleetMonitors
   whose releases are all up to date (input hashes match, so no Helm call). Baseline: ONE
   `helm list` per resource, the least a resync that asks Helm would cost.

    python -m tests.bench.bench_operator [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kopf

from devstack.kube.cluster import LocalCluster
from tests.support.kube import Kube

RESULTS = Path(__file__).parent / "results" / "operator.json"


def _release_count() -> int:
    from fleet_operator.model import STAGES

    return sum(len(stage) for stage in STAGES)


def measure_create(root: Path, cluster: LocalCluster) -> tuple[float, float]:
    """Seconds from creating a FleetMonitor to its Ready condition (every release installed and its
    workloads Ready on the kwok nodes), and the same releases with the same values installed by
    bare `helm upgrade --install --wait`, stage after stage as the operator orders them."""
    from fleet_operator import model

    from tests.support.operator_harness import platform

    namespace = "bench-create"
    Kube(cluster.kubeconfig).ensure_namespace(namespace)
    (root / "op").mkdir()
    with platform(root / "op", cluster, namespace) as p, p.operator():
        started = time.perf_counter()
        p.create(p.fleet())
        p.wait_condition("Ready", timeout=900)
        operator_s = time.perf_counter() - started

        env = p.operator_env
        charts, environments = Path(env["FLEET_CHARTS_DIR"]), Path(env["FLEET_ENVIRONMENTS_DIR"])
        peer = model.operator_peer(
            env.get("FLEET_OPERATOR_NAMESPACE"), json.loads(env.get("FLEET_OPERATOR_POD_LABELS", "{}"))
        )
        releases = model.desired_releases("demo", p.get()["spec"], charts, environments, peer)
        admin = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
        started = time.perf_counter()
        for stage in model.by_stage(releases):  # a stage's releases at once, as the operator installs them
            with ThreadPoolExecutor() as pool:
                installs = [
                    pool.submit(
                        _helm_install_ready, env["FLEET_HELM"], charts / r.chart, namespace, r, root=root, env=admin
                    )
                    for r in stage
                    if r.enabled
                ]
                for install in installs:
                    install.result()
        helm_s = time.perf_counter() - started
    return operator_s, helm_s


def _helm_install_ready(helm: str, chart: Path, namespace: str, release, *, root: Path, env: dict) -> None:
    name = f"base-{release.component}"
    values = root / f"{name}.values.json"
    values.write_text(json.dumps(release.values | {"fullnameOverride": name}))
    command = [helm, "upgrade", "--install", name, str(chart), "-n", namespace, "-f", str(values)]
    subprocess.run(
        [*command, "--wait", "--wait-for-jobs", "--timeout", "15m"], check=True, capture_output=True, env=env
    )


def measure_unchanged(root: Path, cluster: LocalCluster, resources: int) -> tuple[float, float]:
    from fleet_operator import handlers, model

    from tests.support.operator_harness import platform

    namespace = "bench-unchanged"
    Kube(cluster.kubeconfig).ensure_namespace(namespace)
    (root / "rs").mkdir()
    with platform(root / "rs", cluster, namespace) as p:
        saved = dict(os.environ)
        os.environ.update(p.operator_env)  # the operator's settings, in this process
        handlers._State.runtime = None
        settings = kopf.OperatorSettings()
        asyncio.run(handlers.startup(settings=settings, logger=logging.getLogger("bench")))
        rt = handlers.runtime()
        bodies = []
        for index in range(resources):
            name = f"fleet-{index:03d}"
            spec = {"environment": "dev"}
            components = {
                r.component: {
                    "release": r.name,
                    "chart": r.chart,
                    "revision": 1,
                    "state": "Ready",
                    "inputsHash": r.inputs_hash,
                }
                for r in model.desired_releases(name, spec, *rt.release_inputs())
            }
            bodies.append(
                kopf.Body(
                    {
                        "apiVersion": "fleet-monitor.io/v1alpha1",
                        "kind": "FleetMonitor",
                        "metadata": {"name": name, "namespace": namespace, "generation": 1},
                        "spec": spec,
                        "status": {"components": components, "phase": "Ready"},
                    }
                )
            )
        calls = len(p.helm_calls())

        async def all_unchanged() -> float:
            started = time.perf_counter()
            for body in bodies:
                status = await handlers.reconcile(body, logging.getLogger("bench"))
                assert status["phase"] == "Ready", status
            return time.perf_counter() - started

        reconcile_s = asyncio.run(all_unchanged())
        assert p.helm_calls()[calls:] == [], "an unchanged reconcile called helm"
        started = time.perf_counter()
        for _ in range(resources):
            subprocess.run(
                [os.environ["FLEET_HELM"], "list", "-n", namespace, "-o", "json"], check=True, capture_output=True
            )
        helm_s = time.perf_counter() - started
        handlers._State.runtime = None
        os.environ.clear()
        os.environ.update(saved)
    return reconcile_s, helm_s


def run(quick: bool = False) -> dict:
    resources = 20 if quick else 100
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        cluster = LocalCluster(Path(tmp) / "cluster").start()
        try:
            operator_s, helm_s = measure_create(Path(tmp), cluster)
            reconcile_s, list_s = measure_unchanged(Path(tmp), cluster, resources)
        finally:
            cluster.stop()
    figures = {
        "create_to_ready_s": round(operator_s, 3),
        f"reconcile_{resources}_unchanged_s": round(reconcile_s, 4),
        "reconcile_unchanged_per_resource_ms": round(reconcile_s / resources * 1000, 3),
    }
    baseline = {
        "create_to_ready_s": round(helm_s, 3),
        f"reconcile_{resources}_unchanged_s": round(list_s, 3),
        "reconcile_unchanged_per_resource_ms": round(list_s / resources * 1000, 3),
    }
    ratios = {
        "create_to_ready_s": round(operator_s / helm_s, 2),  # operator time / bare helm time
        f"reconcile_{resources}_unchanged_s": round(list_s / reconcile_s, 1),  # speed-up over asking helm
        "reconcile_unchanged_per_resource_ms": round(list_s / reconcile_s, 1),
    }
    targets = {
        "create_to_ready_s": "<= 1.5x the same releases installed with bare helm --wait, in dependency order",
        f"reconcile_{resources}_unchanged_s": ">= 10x cheaper than one `helm list` per resource (no Helm call)",
        "reconcile_unchanged_per_resource_ms": ">= 10x cheaper than one `helm list`",
    }
    met = ratios["create_to_ready_s"] <= 1.5 and ratios[f"reconcile_{resources}_unchanged_s"] >= 10
    return {
        "component": "operator",
        "figures": figures,
        "baseline": baseline,
        "ratios": ratios,
        "targets": targets,
        "met": met,
        "resources": resources,
        "releases_per_resource": _release_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 resources instead of 100")
    args = parser.parse_args()
    result = run(quick=args.quick)
    for name, value in result["figures"].items():
        print(
            f"{name:42s} {value:>10} baseline {result['baseline'][name]:>10} ratio {result['ratios'][name]:>6}  "
            f"target {result['targets'][name]}"
        )
    print(f"met: {result['met']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
