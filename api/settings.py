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


@dataclass(frozen=True)
class Settings:
    database_url: str
    api_keys: tuple[ApiKey, ...] = ()
    read_auth: bool = False  # reads need a key too (mutations always do)
    cors_origins: tuple[str, ...] = ()
    pool_min: int = 1
    pool_max: int = 10
    stale_after_s: float = 300.0  # a source silent this long counts as inactive
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        env = os.environ.get
        keys_text = env("API_KEYS", "")
        if env("API_KEYS_FILE"):
            with open(env("API_KEYS_FILE"), encoding="utf-8") as handle:
                keys_text += "," + handle.read().replace("\n", ",")
        values = {
            "database_url": env("DATABASE_URL", ""),
            "api_keys": parse_api_keys(keys_text),
            "read_auth": _flag("API_READ_AUTH", False),
            "cors_origins": tuple(
                origin.strip() for origin in env("API_CORS_ORIGINS", "").split(",") if origin.strip()
            ),
            "pool_min": int(env("API_POOL_MIN", "1")),
            "pool_max": int(env("API_POOL_MAX", "10")),
            "stale_after_s": float(env("API_STALE_AFTER_S", "300")),
            "log_level": env("LOG_LEVEL", "INFO"),
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        if not values["database_url"]:
            raise ValueError("DATABASE_URL (or --database-url) is required")
        return cls(**values)
