"""Run the API: `python -m api --host 0.0.0.0 --port 8000`. Every setting is a flag and an
environment variable (DATABASE_URL, API_KEYS / API_KEYS_FILE, API_READ_AUTH, ..., LOG_LEVEL): both
generated from api.settings.Settings, so `--help` lists each with its variable and default."""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError
from pydantic_settings import CliApp

from api.app import create_app
from api.observability import RequestIdFilter
from api.server import serve
from api.settings import Settings
from contracts import jsonlog
from contracts.settings import problems


def settings_from(argv: list[str] | None) -> Settings:
    """Flags over the environment; a bad value exits 2 naming the flag, its variable and what is allowed."""
    try:
        return CliApp.run(Settings, cli_args=argv)
    except ValidationError as error:
        for problem in problems(Settings, error, flags=True):
            print(f"python -m api: error: {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> int:
    settings = settings_from(argv)
    jsonlog.configure(settings.log_level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())
    serve(create_app(settings), settings, settings.host, settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
