"""What a project image starts as, read from its Dockerfile: the final stage's ENTRYPOINT, CMD,
ENV, WORKDIR and USER (stages, ARG and variable substitution followed). No container runtime runs
here: `make cluster`'s operator runner and the rendered-pod tests (tests/support/pods.py) start
the image's process from this instead."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

# The PATH of the official python:*-slim images, which the project images start from.
BASE_IMAGE_ENV = {
    "PATH": "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}


@dataclass
class Image:
    """What a container starts from: the final stage's ENTRYPOINT, CMD, ENV and WORKDIR."""

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=lambda: dict(BASE_IMAGE_ENV))
    workdir: str = "/"
    user: str | None = None


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") and not current:
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            lines.append(current.strip())
        current = ""
    result = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_]\w*)(?::-(?P<default>[^}]*))?\}|(?P<bare>[A-Za-z_]\w*))")


def _substitute(text: str, variables: dict[str, str]) -> str:
    """Dockerfile variable substitution: $VAR, ${VAR}, ${VAR:-default}."""

    def replace(match: re.Match) -> str:
        value = variables.get(match["braced"] or match["bare"])
        return value if value else (match["default"] or "")

    return _VARIABLE.sub(replace, text)


def _exec_or_shell(rest: str) -> list[str]:
    """JSON (exec) form as is; shell form runs under /bin/sh -c."""
    if rest.startswith("["):
        return json.loads(rest)
    return ["/bin/sh", "-c", rest]


def parse_dockerfile(path: Path) -> Image:
    """The final stage's runtime settings. A stage FROM an earlier stage inherits it; a stage FROM
    a base image starts from that base's settings (BASE_IMAGE_ENV: the python images')."""
    stages: dict[str, Image] = {}
    args: dict[str, str] = {}
    image = Image()
    for keyword, rest in _instructions(path.read_text()):
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args.setdefault(name, default)
        elif keyword == "FROM":
            parts = rest.split()
            base = _substitute(parts[0], args)
            parent = stages.get(base)
            image = (
                Image(list(parent.entrypoint), list(parent.cmd), dict(parent.env), parent.workdir)
                if parent
                else Image()
            )
            if len(parts) == 3 and parts[1].upper() == "AS":
                stages[parts[2]] = image
        elif keyword == "ENV":
            image.env.update(_parse_env(rest, image.env))
        elif keyword == "WORKDIR":
            workdir = _substitute(rest, image.env)
            image.workdir = workdir if workdir.startswith("/") else f"{image.workdir.rstrip('/')}/{workdir}"
        elif keyword == "ENTRYPOINT":
            image.entrypoint = _exec_or_shell(rest)
            image.cmd = []  # a new ENTRYPOINT resets the CMD inherited from the base
        elif keyword == "CMD":
            image.cmd = _exec_or_shell(rest)
        elif keyword == "USER":
            image.user = rest
    return image


def _parse_env(rest: str, current: dict[str, str]) -> dict[str, str]:
    tokens = shlex.split(rest, posix=True)
    if tokens and "=" not in tokens[0]:  # legacy `ENV KEY value with spaces`
        return {tokens[0]: _substitute(rest.split(None, 1)[1], current)}
    values: dict[str, str] = {}
    for token in tokens:  # every value sees the variables as they were before this instruction
        key, _, value = token.partition("=")
        values[key] = _substitute(value, current)
    return values
