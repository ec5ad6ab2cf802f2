"""Write each chart's values.schema.json and README.md (its parameters table) from its typed source,
scripts/chart_values/<chart>.py: one TypedDict per object of the chart's values, attribute docstrings
as descriptions. Defaults in the README are the chart's values.yaml.

`--check` exits 1 when a committed file differs from what this writes (the chart tests run it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chart_values import CHARTS  # noqa: E402

DRAFT = "https://json-schema.org/draft-07/schema#"
LIBRARY = "fleet-common"  # charts/fleet-common: every chart depends on it
# Helm hands each dependency a slot in the parent's values (with `global` in it); the library chart
# takes no values, so the slot may hold nothing else.
LIBRARY_SLOT = {
    "type": "object",
    "description": "Values Helm hands the fleet-common library chart (it takes none).",
    "additionalProperties": False,
    "properties": {"global": {"type": "object"}},
}
# Keyword order in the written schema: what a reader looks for first.
ORDER = ("$schema", "title", "description", "type", "enum", "const", "required", "additionalProperties")
SIMPLE_TYPES = ("string", "number", "integer", "boolean", "null")
MAX_DEFAULT = 80  # longer defaults (documents, long lists) are left to values.yaml in the README


def _inline(node: Any, defs: dict) -> Any:
    """Replace pydantic's $refs by the definitions (a field's own description wins over the class's)."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {**target, **{k: _inline(v, defs) for k, v in node.items() if k != "$ref"}}
    return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}


def _merge_types(branches: list[dict]) -> dict | None:
    """anyOf of single-type branches as one schema with a type list (`str | float` -> ["string",
    "number"]): equivalent, as each keyword applies to its own type only. None when they overlap."""
    merged: dict = {"type": []}
    for branch in branches:
        kind = branch.get("type")
        if kind not in SIMPLE_TYPES or kind in merged["type"] or set(branch) - {"type"} & set(merged):
            return None
        merged["type"].append(kind)
        merged.update({k: v for k, v in branch.items() if k != "type"})
    return merged


def _tidy(schema: dict) -> dict:
    """pydantic's output as a hand-written draft-07 schema: no titles, no `additionalProperties:
    true` or `items: {}` (the defaults), unions as type lists, keywords in reading order."""
    schema = {k: v for k, v in schema.items() if k != "title"}
    if schema.get("additionalProperties") is True:
        del schema["additionalProperties"]
    if schema.get("items") == {}:
        del schema["items"]
    if "anyOf" in schema and (merged := _merge_types(schema["anyOf"])) is not None:
        del schema["anyOf"]
        schema = {**merged, **schema}
    for key in ("items", "additionalProperties", "propertyNames", "not"):
        if isinstance(schema.get(key), dict):
            schema[key] = _tidy(schema[key])
    if "anyOf" in schema:
        schema["anyOf"] = [_tidy(branch) for branch in schema["anyOf"]]
    if "properties" in schema:
        schema["properties"] = {name: _tidy(sub) for name, sub in schema["properties"].items()}
    first = [k for k in ORDER if k in schema]
    return {k: schema[k] for k in [*first, *(k for k in schema if k not in ORDER)]}


def values_schema(chart: str) -> dict:
    """The chart's values.schema.json document."""
    raw = TypeAdapter(CHARTS[chart].Values).json_schema()
    schema = _tidy(_inline(raw, raw.get("$defs", {})))
    schema["properties"][LIBRARY] = LIBRARY_SLOT
    description = schema.pop("description", None)
    head = {"$schema": DRAFT, "title": f"{chart} chart values"}
    return {**head, **({"description": description} if description else {}), **schema}


def _cell(text: str) -> str:
    """Text in a Markdown table cell: pipes escaped, <placeholders> shown instead of taken as HTML."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def _rows(schema: dict, values: Any, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) of every leaf and of every object without properties."""
    rows = []
    for name, sub in schema.get("properties", {}).items():
        key = f"{prefix}{name}"
        default = values.get(name) if isinstance(values, dict) else None
        if "properties" in sub:
            rows += _rows(sub, default, f"{key}.")
            continue
        kind = sub.get("type", "")
        kind = " \\| ".join(kind) if isinstance(kind, list) else kind
        if "enum" in sub:
            kind = " \\| ".join(f"`{v}`" for v in sub["enum"])
        shown = json.dumps(default, separators=(", ", ": ")) if isinstance(values, dict) and name in values else ""
        shown = f"`{shown}`" if len(shown) <= MAX_DEFAULT else "see values.yaml" if shown else ""
        rows.append((f"`{key}`", kind, _cell(shown), _cell(sub.get("description", ""))))
    return rows


def readme(chart: str, schema: dict) -> str:
    meta = yaml.safe_load((ROOT / "charts" / chart / "Chart.yaml").read_text())
    values = yaml.safe_load((ROOT / "charts" / chart / "values.yaml").read_text()) or {}
    lines = [
        f"# {chart}",
        "",
        meta.get("description", ""),
        "",
        f"Generated by `make charts-sync` (scripts/chart-schemas.py) from scripts/chart_values/"
        f"{CHARTS[chart].__name__.rsplit('.', 1)[-1]}.py, like values.schema.json; defaults are values.yaml's.",
        f"Names, labels, the ServiceAccount, NetworkPolicy and PodDisruptionBudget come from the `{LIBRARY}` library chart.",
        "",
        "## Parameters",
        "",
        "| Key | Type | Default | Description |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {' | '.join(row)} |" for row in _rows(schema, values) if not row[0].startswith(f"`{LIBRARY}")]
    return "\n".join(lines) + "\n"


def generated() -> dict[Path, str]:
    files = {}
    for chart in CHARTS:
        schema = values_schema(chart)
        files[ROOT / "charts" / chart / "values.schema.json"] = json.dumps(schema, indent=2) + "\n"
        files[ROOT / "charts" / chart / "README.md"] = readme(chart, schema)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a chart differs instead of writing")
    args = parser.parse_args(argv)
    drifted = []
    for path, text in generated().items():
        if not path.is_file() or path.read_text() != text:
            drifted.append(str(path.relative_to(ROOT)))
            if not args.check:
                path.write_text(text)
    if args.check and drifted:
        print("out of date with scripts/chart_values (run make charts-sync): " + ", ".join(drifted), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
