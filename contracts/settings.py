"""Errors and help of the services' pydantic-settings models (api.settings, fleet_operator.settings)
as people read them: the environment variable (and flag) at fault and what is allowed.

pydantic's own message repeats the bad input; a setting may be a secret (DATABASE_URL holds a
password, an API_KEYS entry may be a pasted token), so a field marked SECRET is never echoed.
Only pydantic is imported here: every image installs it (pydantic-settings only the services')."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ValidationError
from pydantic.fields import FieldInfo

SECRET = {"secret": True}
"""json_schema_extra of a field whose value must never appear in an error."""


def env_name(model: type[BaseModel], name: str) -> str:
    """The environment variable of a field: its alias (the last of AliasChoices), else the
    model's env_prefix + the field's name."""
    alias = model.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        alias = alias.choices[-1]
    if isinstance(alias, str):
        return alias.upper()
    return (str(model.model_config.get("env_prefix", "")) + name).upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _field_of(model: type[BaseModel], key: object) -> str | None:
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        if key == name or key in choices:
            return name
    return None


def _allowed(item: dict, info: FieldInfo | None) -> str:
    """What the setting may be, from the pydantic error (its type and context)."""
    kind, ctx = item["type"], item.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind in ("bool_parsing", "bool_type"):
        return "must be true or false"
    if kind == "greater_than" and ctx.get("gt") == 0:
        number = "float" if info is not None and info.annotation is float else "int"
        return f"must be a positive {number}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind == "value_error":
        return str(ctx.get("error"))
    return item["msg"].replace("Input should be", "must be")


def problems(model: type[BaseModel], error: ValidationError, flags: bool = False) -> list[str]:
    """One sentence per bad setting: `API_POOL_MAX must be ..., got '0'` (with flags:
    `--pool-max / API_POOL_MAX ...`). A validator's own message that already names its variable
    (e.g. `API_KEYS entry 2: ...`) stands as written."""
    found = []
    for item in error.errors(include_input=True):
        name = _field_of(model, item["loc"][0]) if item["loc"] else None
        info = model.model_fields.get(name) if name else None
        allowed = _allowed(item, info)
        if name is None or allowed.startswith(env_name(model, name)):
            found.append(allowed)
            continue
        where = f"{flag_name(name)} / {env_name(model, name)}" if flags else env_name(model, name)
        secret = info is not None and (info.json_schema_extra or {}) == SECRET
        shown = "" if secret or item["type"] == "missing" else f", got {item.get('input')!r}"
        found.append(f"{where} {allowed}{shown}")
    return found


def environment_help(model: type[BaseModel]) -> str:
    """`environment:` lines of a --help epilog, one per field: variable, description, default."""
    lines = ["environment:"]
    for name, info in model.model_fields.items():
        default = "" if info.is_required() else f" (default: {info.get_default(call_default_factory=True)})"
        lines.append(f"  {env_name(model, name):<26} {info.description}{default}")
    return "\n".join(lines) + "\n"
