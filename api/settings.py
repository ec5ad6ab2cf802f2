"""API configuration from the environment (12-factor); `python -m api` flags override some of it."""

from __future__ import annotations

import os
from dataclasses import dataclass

from api.security import ApiKey, parse_api_keys


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


def _positive(name: str, kind: type, default):
    value = os.environ.get(name) or str(default)
    try:
        number = kind(value)
    except ValueError:
        number = None
    if number is None or number <= 0:
        raise ValueError(f"{name} must be a positive {kind.__name__}, got {value!r}")
    return number


@dataclass(frozen=True)
class Settings:
    database_url: str
    api_keys: tuple[ApiKey, ...] = ()
    read_auth: bool = True  # reads need a key too (mutations always do); API_READ_AUTH=false opens them
    metrics_auth: bool = False  # /metrics needs a key (Prometheus then scrapes with one)
    docs_auth: bool = False  # /openapi.json needs a key; /docs and /redoc are then off
    cors_origins: tuple[str, ...] = ()
    pool_min: int = 1
    pool_max: int = 10
    pool_timeout_s: float = 3.0  # wait for a connection at most this long, then 503
    max_concurrency: int = 64  # requests in flight (beyond: 503 at once); /health and /ready exempt
    max_header_bytes: int = 32 * 1024  # request line + headers; beyond: 431 (api.server)
    stale_after_s: float = 300.0  # a source silent this long counts as inactive
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        env = os.environ.get
        keys = parse_api_keys(env("API_KEYS", ""))
        if env("API_KEYS_FILE"):
            with open(env("API_KEYS_FILE"), encoding="utf-8") as handle:
                keys += parse_api_keys(handle.read(), source="API_KEYS_FILE")
        values = {
            "database_url": env("DATABASE_URL", ""),
            "api_keys": keys,
            "read_auth": _flag("API_READ_AUTH", cls.read_auth),
            "metrics_auth": _flag("API_METRICS_AUTH", cls.metrics_auth),
            "docs_auth": _flag("API_DOCS_AUTH", cls.docs_auth),
            "cors_origins": tuple(
                origin.strip() for origin in env("API_CORS_ORIGINS", "").split(",") if origin.strip()
            ),
            "pool_min": int(env("API_POOL_MIN", "1")),
            "pool_max": int(env("API_POOL_MAX", "10")),
            "pool_timeout_s": _positive("API_POOL_TIMEOUT_S", float, cls.pool_timeout_s),
            "max_concurrency": _positive("API_MAX_CONCURRENCY", int, cls.max_concurrency),
            "max_header_bytes": _positive("API_MAX_HEADER_BYTES", int, cls.max_header_bytes),
            "stale_after_s": float(env("API_STALE_AFTER_S", "300")),
            "log_level": env("LOG_LEVEL", "INFO"),
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        if not values["database_url"]:
            raise ValueError("DATABASE_URL (or --database-url) is required")
        return cls(**values)
