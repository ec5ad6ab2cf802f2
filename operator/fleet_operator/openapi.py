"""What the API server does with a CRD's openAPIV3Schema, for checks without a cluster: apply
defaults, then reject an invalid object with a message naming the field. Used by
`scripts/deploy.sh --check` and `python -m fleet_operator.validate`, so a bad environment file
fails before it reaches a cluster; on a cluster the API server itself does this, and
tests/integration/test_operator.py holds the two to the same verdicts and defaults."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError


def read_crd(path: Path) -> dict:
    """The CRD file (Settings.crd_path): the one reader of it, for the operator and its tests."""
    return yaml.safe_load(Path(path).read_text())


def default_spec(crd: dict, spec: dict, version: str | None = None) -> dict:
    """`spec` as the API server stores it: the CRD's defaults applied. The operator's model reads
    those defaults and repeats none of them, so a spec built without an API server (validate,
    unit tests) goes through here first."""
    return apply_defaults(version_schema(crd, version)["properties"]["spec"], spec)


def version_schema(crd: dict, version: str | None = None) -> dict:
    """The openAPIV3Schema of `version` (default: the storage version)."""
    for item in crd["spec"]["versions"]:
        if item["name"] == version or (version is None and item.get("storage")):
            return item["schema"]["openAPIV3Schema"]
    raise KeyError(f"CRD {crd['metadata']['name']} has no version {version!r}")


def _strict(schema: dict) -> dict:
    """Structural schemas list every field; unknown ones are rejected (kubectl --validate=strict)
    unless the schema preserves them. Map that onto JSON Schema's additionalProperties."""
    schema = dict(schema)
    if "properties" in schema:
        schema["properties"] = {key: _strict(value) for key, value in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = _strict(schema["additionalProperties"])
    if isinstance(schema.get("items"), dict):
        schema["items"] = _strict(schema["items"])
    if schema.get("nullable") and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    return schema


def apply_defaults(schema: dict, value: Any) -> Any:
    """Fill absent fields that declare a default, recursively, as the API server does on write."""
    value = copy.deepcopy(value)
    _default_into(schema, value)
    return value


def _default_into(schema: dict, value: Any) -> None:
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _default_into(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in set(value) - set(schema.get("properties", {})):
                _default_into(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default_into(schema["items"], item)


def _path(error: ValidationError) -> str:
    parts = ""
    for part in error.absolute_path:
        parts += f"[{part}]" if isinstance(part, int) else (f".{part}" if parts else str(part))
    return parts


def _messages(error: ValidationError) -> Iterator[str]:
    path = _path(error)
    if error.validator == "required":
        missing = error.message.split("'")[1]
        yield f"{path + '.' if path else ''}{missing}: Required value"
    elif error.validator == "additionalProperties":
        extras = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        for extra in extras:
            yield f"{path + '.' if path else ''}{extra}: unknown field"
    elif error.validator == "enum":
        allowed = ", ".join(f'"{item}"' for item in error.validator_value)
        yield f"{path}: Unsupported value: {error.instance!r}: supported values: {allowed}"
    else:
        yield f"{path}: Invalid value: {error.instance!r}: {error.message}"


def validate(schema: dict, obj: dict) -> list[str]:
    """Every problem of `obj` against an openAPIV3Schema, as 'field.path: reason' strings.
    `metadata`, `apiVersion` and `kind` are the API server's own business and not checked here."""
    body = {key: value for key, value in obj.items() if key not in ("metadata", "apiVersion", "kind")}
    schema = _strict(schema)
    properties = {k: v for k, v in schema.get("properties", {}).items() if k not in ("metadata", "apiVersion", "kind")}
    schema = {**schema, "properties": properties}
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))
    return [message for error in errors for message in _messages(error)]
