"""One pydantic-settings model per program: its fields are the program's flags (`--kebab-case`) and
environment variables (PREFIX_NAME), each default and help text written once, on the field.

`parse` builds the argparse parser from the model (pydantic-settings' CLI source) and reports a
bad value the way argparse does: exit status 2, the usage, and a line naming the flag and what it
allows. Imported only by programs whose image installs pydantic-settings (jobs, generator).
"""

from __future__ import annotations

import argparse
from typing import NoReturn, TypeVar

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, CliPositionalArg, CliSettingsSource, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)


def cli_config(env_prefix: str, prog: str) -> SettingsConfigDict:
    """The model_config every program's settings share. Aliases (a flag name other than the
    field's, e.g. --window for window_s) get the prefix too, so flag and variable always match."""
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


_POSITIONAL = CliPositionalArg.__metadata__[0]  # the marker CliPositionalArg[...] puts on a field


def _named(settings: type[BaseSettings], name: str) -> tuple[str, FieldInfo | None]:
    """The field a validation error's location names (its field name or alias)."""
    for field_name, field in settings.model_fields.items():
        if name in (field_name, field.alias):
            return field.alias or field_name, field
    return name, None


def flag(settings: type[BaseSettings], name: str) -> str:
    """The command-line spelling of a field: --kebab-case, or the metavar of a positional."""
    spelled, field = _named(settings, name)
    if field is not None and _POSITIONAL in field.metadata:
        return spelled.upper()
    return "--" + spelled.replace("_", "-")


def env_name(settings: type[BaseSettings], name: str) -> str:
    return (settings.model_config.get("env_prefix", "") + _named(settings, name)[0]).upper()


_PHRASES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_parsing": "expected a number",
    "bool_parsing": "expected true or false",
}


def explain(exc: ValidationError, settings: type[BaseSettings]) -> str:
    """One line per problem, each naming the flag (as argparse does) and what it allows."""
    missing = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "missing" and e["loc"]]
    lines = []
    if missing:
        flags = ", ".join(flag(settings, name) for name in missing)
        envs = ", ".join(env_name(settings, name) for name in missing)
        lines.append(f"the following arguments are required: {flags} (or the environment: {envs})")
    for error in exc.errors():
        if error["type"] == "missing":
            continue
        message = _message(error)
        if error["loc"]:
            lines.append(f"argument {flag(settings, str(error['loc'][0]))}: {message}")
        else:
            lines.append(message)
    return "; ".join(lines)


def _message(error: dict) -> str:
    kind, context, given = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    if kind == "literal_error":
        return f"invalid choice: {given!r} (choose from {context.get('expected')})"
    if kind in _PHRASES:
        return f"{_PHRASES[kind].format(**context)}, got {given!r}"
    return f"{error['msg']}, got {given!r}"
