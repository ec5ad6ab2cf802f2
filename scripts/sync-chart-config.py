"""Write the chart-facing copies of the contracts (topic names, Kafka users and their ACLs, default
thresholds) into the charts' values.yaml, between `# BEGIN generated` / `# END generated` markers.

Charts cannot import Python, so this is how contracts stay the one source of truth:
`--check` exits 1 when a chart has drifted (the chart tests run it).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from contracts.kafka_auth import JOBS_GROUP_PREFIX, USERS  # noqa: E402
from contracts.thresholds import DEFAULT_RULES, Thresholds  # noqa: E402
from contracts.topics import ALERTS_TOPIC, ALL_TOPICS  # noqa: E402

BLOCK = re.compile(r"(# BEGIN generated[^\n]*\n)(.*?)(# END generated)", re.DOTALL)


def default_thresholds() -> dict:
    """Every rule's default spelled out, so operators see and tune them per environment."""
    document = Thresholds().model_dump(mode="json")
    document["defaults"] = {
        rule.alert_type.value: {"threshold": rule.threshold, "clear": rule.clear, "severity": rule.severity.value}
        for rule in DEFAULT_RULES
    }
    return Thresholds.model_validate(document).model_dump(mode="json")


def generated() -> dict[str, dict]:
    return {
        "charts/kafka/values.yaml": {"topics": list(ALL_TOPICS), "authUsers": USERS},
        "charts/vector/values.yaml": {"alertsTopic": ALERTS_TOPIC},
        "charts/flink-job/values.yaml": {
            "thresholds": default_thresholds(),
            "kafkaJobsGroupPrefix": JOBS_GROUP_PREFIX,
        },
    }


def render(path: Path, values: dict) -> str:
    text = path.read_text()
    body = yaml.safe_dump(values, sort_keys=False, default_flow_style=False)
    updated, count = BLOCK.subn(lambda m: m.group(1) + body + m.group(3), text)
    if count != 1:
        raise SystemExit(f"{path}: expected one '# BEGIN generated' ... '# END generated' block, found {count}")
    return updated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a chart differs instead of writing")
    args = parser.parse_args(argv)
    drifted = []
    for relative, values in generated().items():
        path = ROOT / relative
        updated = render(path, values)
        if updated != path.read_text():
            drifted.append(relative)
            if not args.check:
                path.write_text(updated)
    if args.check and drifted:
        print("out of date with contracts (run scripts/sync-chart-config.py): " + ", ".join(drifted), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
