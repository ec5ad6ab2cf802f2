"""Run the API: `python -m api --host 0.0.0.0 --port 8000` (configuration from the environment:
DATABASE_URL, API_KEYS / API_KEYS_FILE, API_READ_AUTH, API_METRICS_AUTH, API_DOCS_AUTH,
API_CORS_ORIGINS, API_POOL_MIN/MAX, API_POOL_TIMEOUT_S, API_MAX_CONCURRENCY, API_MAX_HEADER_BYTES,
API_STALE_AFTER_S, LOG_LEVEL; see README "API configuration")."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from api.app import create_app
from api.observability import RequestIdFilter
from api.server import serve
from api.settings import Settings
from contracts import jsonlog


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m api", description="fleet-monitor HTTP API (FastAPI on uvicorn).")
    parser.add_argument("--host", default=os.environ.get("API_HOST", "127.0.0.1"), help="bind address (env API_HOST)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("API_PORT", "8000")), help="port (env API_PORT)")
    parser.add_argument("--database-url", help="PostgreSQL/TimescaleDB URL (env DATABASE_URL)")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="log level (env LOG_LEVEL)",
    )
    parser.add_argument("--pool-max", type=int, help="largest database pool (env API_POOL_MAX, 10)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be 1..65535, got {args.port}")
    if args.pool_max is not None and args.pool_max < 1:
        parser.error("--pool-max must be at least 1")
    try:
        settings = Settings.from_env(database_url=args.database_url, log_level=args.log_level, pool_max=args.pool_max)
    except ValueError as exc:
        parser.error(str(exc))
    jsonlog.configure(settings.log_level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())
    serve(create_app(settings), settings, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
