"""`python -m devstack.kube up|down|status`: the local Kubernetes cluster behind `make cluster`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from devstack.kube.cluster import STATE_FILE, LocalCluster, NodePool, stop_from_state
from devstack.processes import REPO

DEFAULT_STATE = REPO / ".cluster"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.kube",
        description="A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, "
        "kube-scheduler) with kwok nodes, on free loopback ports.",
    )
    parser.add_argument("command", choices=("up", "down", "status"), help="start, stop and remove, or describe it")
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE, help=f"where it lives (default {DEFAULT_STATE})"
    )
    parser.add_argument("--nodes", type=int, default=NodePool.count, help=f"kwok nodes (default {NodePool.count})")
    parser.add_argument("--node-cpu", default=NodePool.cpu, help=f"CPU of each node (default {NodePool.cpu})")
    parser.add_argument(
        "--node-memory", default=NodePool.memory, help=f"memory of each node (default {NodePool.memory})"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.nodes < 1:
        parser.error(f"--nodes must be at least 1, got {args.nodes}")
    logging.basicConfig(level=logging.WARNING)
    state = args.state_dir.resolve()
    if args.command == "down":
        print("stopped and removed" if stop_from_state(state) else f"no cluster in {state}")
        return 0
    if args.command == "status":
        if not (state / STATE_FILE).exists():
            print(f"no cluster in {state}")
            return 1
        print(json.dumps(json.loads((state / STATE_FILE).read_text()), indent=2))
        return 0
    if (state / STATE_FILE).exists():
        print(f"a cluster already runs from {state}: export KUBECONFIG={state / 'kubeconfig'}")
        return 0
    started = time.monotonic()
    print(f"starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and {args.nodes} kwok nodes ...")
    nodes = NodePool(count=args.nodes, cpu=args.node_cpu, memory=args.node_memory)
    cluster = LocalCluster(state, nodes=nodes)
    try:
        cluster.start()
    except Exception as error:
        print(f"cluster did not start: {error}\nlogs: {state / 'logs'}", file=sys.stderr)
        cluster.stop()
        return 1
    # kwok runs no containers: the operator's pods run as processes here (devstack.kube.operator_runner).
    runner = ["--kubeconfig", str(cluster.kubeconfig), "--root", str(state / "operators")]
    cluster.run_beside("operator-runner", [sys.executable, "-m", "devstack.kube.operator_runner", *runner])
    print(f"ready in {time.monotonic() - started:.0f} s: {cluster.server}")
    print(f"  export KUBECONFIG={cluster.kubeconfig}")
    print(f"  logs: {state / 'logs'}; stop and remove: make cluster-down")
    print("  the operator's pods run as local processes (logs/operator-<pod>.log): make deploy-dev reaches Ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
