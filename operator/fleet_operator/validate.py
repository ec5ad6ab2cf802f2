"""python -m fleet_operator.validate FILE...: check FleetMonitor files as the API server and the
operator would (CRD schema with defaults, then thresholds and topics), naming each bad field."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from fleet_operator import model, openapi
from fleet_operator.settings import Settings


def problems(document: dict, crd: dict, settings: Settings | None = None) -> list[str]:
    schema = openapi.version_schema(crd, document.get("apiVersion", "/").split("/")[-1])
    document = openapi.apply_defaults(schema, document)
    found = openapi.validate(schema, document)
    if not found:
        settings = settings or Settings.from_env()
        name = (document.get("metadata") or {}).get("name", "fleet-monitor")
        try:  # thresholds, and topics against the environment's Kafka values, as the operator does
            model.desired_releases(name, document["spec"], settings.charts_dir, settings.environments_dir)
        except model.SpecError as error:
            found.append(str(error))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet_operator.validate", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path, help="FleetMonitor YAML files")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    crd_path = settings.crd_path
    if not crd_path.is_file():
        print(f"validate: CRD file {crd_path} not found (set FLEET_CRD_PATH)", file=sys.stderr)
        return 2
    crd = openapi.read_crd(crd_path)
    failed = False
    for path in args.files:
        if not path.is_file():
            print(f"{path}: no such file", file=sys.stderr)
            failed = True
            continue
        for document in yaml.safe_load_all(path.read_text()):
            name = (document or {}).get("metadata", {}).get("name", "?")
            for problem in problems(document or {}, crd, settings):
                print(f"{path}: FleetMonitor {name}: {problem}", file=sys.stderr)
                failed = True
    if not failed:
        print(f"validate: {len(args.files)} file(s) ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
