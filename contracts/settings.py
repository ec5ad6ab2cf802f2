"""Settings as pydantic-settings models, and their errors and help as people read them. Shared by
every program: the services (api.settings, fleet_operator.settings: read from the environment) and
the command lines (jobs, generator, devstack.run: flags, then the environment). Each default and
description is written once, on its field.

A bad value is named by its flag and/or variable with what is allowed. pydantic's own message
repeats the input; a setting may be a secret (DATABASE_URL holds a password, an API_KEYS entry may
be a pasted token), so a field marked SECRET is never echoed."""

from __future__ import annotations

import argparse
from typing import NoReturn, TypeVar

from pydantic import AliasChoices, BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, CliPositionalArg, CliSettingsSource, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)
SECRET = {"secret": True}
"""json_schema_extra of a field whose value must never appear in an error."""
_POSITIONAL = CliPositionalArg.__metadata__[0]  # the marker CliPositionalArg[...] puts on a field


def cli_config(env_prefix: str, prog: str) -> SettingsConfigDict:
    """The model_config of a command line's settings. Aliases (a flag name other than the field's,
    e.g. --window for window_s) get the prefix too, so flag and variable always match."""
    return SettingsConfigDict(
        env_prefix=env_prefix,
        env_prefix_target="all",
        validate_by_name=False,  # else each aliased field would get a second flag under its field name
        cli_prog_name=prog,
        cli_kebab_case=True,
        cli_implicit_flags="toggle",  # a bool defaulting to False is a plain --flag
        cli_hide_none_type=True,
        cli_show_env_vars=True,
    )


# ---------------------------------------------------------------- names


def field_of(model: type[BaseModel], key: object) -> str | None:
    """The field an error's location names: by its name, alias or one of its alias choices."""
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias, info.alias]
        if key == name or key in choices:
            return name
    return None


def env_name(model: type[BaseModel], name: str) -> str:
    """A field's environment variable: an alias choice names it (DATABASE_URL), a plain alias gets
    the prefix when the model prefixes aliases (cli_config), else the prefix + the field's name."""
    info, config = model.model_fields[name], model.model_config
    alias = info.validation_alias or info.alias
    prefix = str(config.get("env_prefix", ""))
    if isinstance(alias, AliasChoices):
        return str(alias.choices[-1]).upper()
    if isinstance(alias, str):
        return ((prefix if config.get("env_prefix_target") == "all" else "") + alias).upper()
    return (prefix + name).upper()


def flag(model: type[BaseModel], name: str) -> str:
    """A field's command-line spelling: --kebab-case of its alias or name, a positional's METAVAR."""
    info = model.model_fields[name]
    spelled = info.alias or name
    if _POSITIONAL in info.metadata:
        return spelled.upper()
    return "--" + spelled.replace("_", "-")


# ---------------------------------------------------------------- messages

_PHRASES = {
    "missing": "is required",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_parsing": "must be a number",
    "literal_error": "must be one of {expected}",
}


def allowed(item: dict, info: FieldInfo | None) -> str:
    """What the setting may be, from one pydantic error (its type and context)."""
    kind, context = item["type"], item.get("ctx") or {}
    if kind == "value_error":
        return str(context.get("error", item["msg"]))
    if kind == "greater_than" and context.get("gt") == 0:
        return "must be a positive " + ("integer" if info is not None and info.annotation is int else "number")
    if kind in _PHRASES:
        return _PHRASES[kind].format(**context)
    return item["msg"].replace("Input should be", "must be")


def _given(item: dict, info: FieldInfo | None) -> str:
    """`, got <input>`: not for a secret, nor after a validator's own message (it says what it got)."""
    if item["type"] in ("missing", "value_error") or "input" not in item:
        return ""
    if info is not None and info.json_schema_extra == SECRET:
        return ""
    return f", got {item['input']!r}"


def problems(model: type[BaseModel], error: ValidationError, flags: bool = False) -> list[str]:
    """One sentence per bad setting: `API_POOL_MAX must be ..., got '0'` (with flags:
    `--pool-max / API_POOL_MAX ...`). A validator's own message that already names its variable
    (e.g. `API_KEYS entry 2: ...`) stands as written."""
    found = []
    for item in error.errors(include_input=True):
        name = field_of(model, item["loc"][0]) if item["loc"] else None
        info = model.model_fields.get(name) if name else None
        what = allowed(item, info)
        if name is None or what.startswith(env_name(model, name)):
            found.append(what)
            continue
        where = f"{flag(model, name)} / {env_name(model, name)}" if flags else env_name(model, name)
        found.append(f"{where} {what}{_given(item, info)}")
    return found


def environment_help(model: type[BaseModel]) -> str:
    """`environment:` lines of a --help epilog, one per field: variable, description, default."""
    lines = ["environment:"]
    for name, info in model.model_fields.items():
        default = "" if info.is_required() else f" (default: {info.get_default(call_default_factory=True)})"
        lines.append(f"  {env_name(model, name):<26} {info.description}{default}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- command lines


def _parser(settings: type[BaseSettings], description: str | None) -> tuple[argparse.ArgumentParser, CliSettingsSource]:
    parser = argparse.ArgumentParser(
        prog=settings.model_config.get("cli_prog_name"),
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser, CliSettingsSource(settings, root_parser=parser)


def parse(settings: type[S], argv: list[str] | None, description: str | None = None) -> S:
    """The settings from `argv` (None: sys.argv), then the environment, then the field defaults.
    Exits with status 2 and an argparse-style message on a bad or missing value."""
    parser, source = _parser(settings, description)
    try:
        return settings(_cli_settings_source=source(args=True if argv is None else argv))
    except ValidationError as exc:
        parser.error(explain(exc, settings))


def usage_error(settings: type[BaseSettings], message: str) -> NoReturn:
    """A problem found after parsing (options that do not fit together), reported as argparse does."""
    _parser(settings, None)[0].error(message)


def explain(exc: ValidationError, settings: type[BaseSettings]) -> str:
    """One line per problem, each naming the flag (as argparse does) and what it allows."""
    errors = exc.errors(include_input=True)
    named = [(item, field_of(settings, item["loc"][0]) if item["loc"] else None) for item in errors]
    missing = [name for item, name in named if item["type"] == "missing" and name]
    lines = []
    if missing:
        flags = ", ".join(flag(settings, name) for name in missing)
        envs = ", ".join(env_name(settings, name) for name in missing)
        lines.append(f"the following arguments are required: {flags} (or the environment: {envs})")
    for item, name in named:
        if item["type"] == "missing" and name:
            continue
        info = settings.model_fields[name] if name else None
        what = f"{allowed(item, info)}{_given(item, info)}"
        lines.append(f"argument {flag(settings, name)}: {what}" if name else what)
    return "; ".join(lines)
