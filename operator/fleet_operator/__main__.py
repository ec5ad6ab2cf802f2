"""python -m fleet_operator: run the FleetMonitor operator (kopf) with JSON logs.

Everything else is configured through the environment; see --help."""

from __future__ import annotations

import argparse
import sys

from contracts.settings import environment_help
from fleet_operator.settings import Settings

ENVIRONMENT_HELP = (
    environment_help(Settings)
    + "  KUBECONFIG                 outside a cluster: which cluster (in a pod: its service account)\n"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fleet_operator",
        description="Run the FleetMonitor operator: FleetMonitor resources -> Helm releases.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    parser.add_argument("--peering", help="kopf peering name: only one operator instance is active")
    parser.add_argument("--standalone", action="store_true", help="no peering (a single replica, or tests)")
    parser.add_argument("--liveness", default="", help="liveness endpoint, e.g. http://0.0.0.0:8081/healthz")
    parser.add_argument("--check", action="store_true", help="only check the configuration and exit")
    args = parser.parse_args(argv)

    try:
        problems = Settings.from_env().missing()
    except ValueError as error:
        problems = [str(error)]
    if problems:
        for problem in problems:
            print(f"fleet-operator: {problem}", file=sys.stderr)
        return 2
    if args.check:
        print("fleet-operator: configuration ok")
        return 0

    import kopf.cli

    command = ["run", "--log-format=json", "-m", "fleet_operator.handlers"]
    command += [f"--namespace={ns}" for ns in args.namespace] or ["--all-namespaces"]
    if args.peering:
        command.append(f"--peering={args.peering}")
    if args.standalone:
        command.append("--standalone")
    if args.liveness:
        command.append(f"--liveness={args.liveness}")
    return kopf.cli.main(command, standalone_mode=True) or 0


if __name__ == "__main__":
    sys.exit(main())
