"""API configuration: one pydantic-settings model read from the environment (12-factor) and, by
`python -m api`, from flags generated from the same fields (api.__main__). Each default is
written once, here; `python -m api --help` lists every option with its variable and default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import CLI_SUPPRESS, BaseSettings, NoDecode, SettingsConfigDict

from api.security import ApiKey, parse_api_keys
from contracts.settings import SECRET, problems


def _keys(value: object) -> object:
    return parse_api_keys(value) if isinstance(value, str) else value


def _origins(value: object) -> object:
    return tuple(origin.strip() for origin in value.split(",") if origin.strip()) if isinstance(value, str) else value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    """Variables are API_<FIELD> unless the field names its own (DATABASE_URL, API_KEYS, LOG_LEVEL)."""

    model_config = SettingsConfigDict(
        env_prefix="API_",
        env_ignore_empty=True,  # a chart's empty value keeps the default
        frozen=True,
        hide_input_in_errors=True,
        cli_prog_name="python -m api",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_show_env_vars=True,
    )

    database_url: str = Field(
        validation_alias=AliasChoices("database_url", "DATABASE_URL"),
        min_length=1,
        description="PostgreSQL/TimescaleDB URL",
        json_schema_extra=SECRET,
    )
    api_keys: Annotated[tuple[ApiKey, ...], NoDecode, BeforeValidator(_keys), CLI_SUPPRESS] = Field(
        (),
        validation_alias=AliasChoices("api_keys", "API_KEYS"),
        description="key entries name:sha256hex:role:fleets, comma-separated (environment only)",
        json_schema_extra=SECRET,
    )
    keys_file: str = Field("", description="a file of more key entries, one per line")
    read_auth: bool = Field(True, description="reads need a key too (mutations always do); false opens them")
    metrics_auth: bool = Field(False, description="/metrics needs a key (Prometheus then scrapes with one)")
    docs_auth: bool = Field(False, description="/openapi.json needs a key; /docs and /redoc are then off")
    cors_origins: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_origins)] = Field(
        (), description="browser origins allowed by CORS, comma-separated"
    )
    pool_min: int = Field(1, ge=0, description="smallest database pool")
    pool_max: int = Field(10, ge=1, description="largest database pool")
    pool_timeout_s: float = Field(3.0, gt=0, description="wait this long for a database connection, then 503")
    max_concurrency: int = Field(
        64, gt=0, description="requests in flight, beyond: 503 at once (/health, /ready exempt)"
    )
    max_header_bytes: int = Field(32 * 1024, gt=0, description="request line + headers, beyond: 431 (api.server)")
    stale_after_s: float = Field(300.0, gt=0, description="a source silent this long counts as inactive")
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = Field(
        "INFO", validation_alias=AliasChoices("log_level", "LOG_LEVEL"), description="log level"
    )
    host: str = Field("127.0.0.1", description="bind address (python -m api)")
    port: int = Field(8000, ge=1, le=65535, description="port (python -m api)")

    @model_validator(mode="after")
    def _keys_file(self) -> Settings:
        """API_KEYS_FILE's entries join API_KEYS' (named by line in errors, never by content)."""
        if self.keys_file:
            try:
                text = Path(self.keys_file).read_text(encoding="utf-8")
            except OSError as error:
                raise ValueError(f"API_KEYS_FILE: cannot read {self.keys_file}: {error.strerror}") from None
            keys = self.api_keys + parse_api_keys(text, source="API_KEYS_FILE")
            object.__setattr__(self, "api_keys", keys)  # frozen: set once, while validating
        if self.pool_min > self.pool_max:
            raise ValueError(f"API_POOL_MIN ({self.pool_min}) must not exceed API_POOL_MAX ({self.pool_max})")
        return self

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """The environment with `overrides` (None: not given) over it. ValueError names what is wrong."""
        try:
            return cls(**{key: value for key, value in overrides.items() if value is not None})
        except ValidationError as error:
            raise ValueError("; ".join(problems(cls, error))) from None


def default(name: str):
    """A field's default (the one place it is written)."""
    return Settings.model_fields[name].default
