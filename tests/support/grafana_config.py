"""Grafana's view of a rendered grafana pod, standing in for the real program (no Grafana binary
runs here): the GF_* settings, the datasource and dashboard provisioning files, parsed with the
field types and checks of Grafana 12.2 (charts/grafana's appVersion 12.2.1), each rule one that
Grafana itself applies:

- settings: `GF_<SECTION>_<KEY>` overrides a key of conf/defaults.ini (`.` and `-` in names as
  `_`); a name matching no key is ignored by Grafana, so here it is an error (a typo that silently
  does nothing). Values go through the key's parser: booleans via go-ini's Bool (here exactly
  true/false), ports and counts as integers, durations in Grafana's gtime syntax.
- datasources (pkg/services/provisioning/datasources, apiVersion 1): the v1 YAML struct's types
  (yaml.Unmarshal into bool/int64/string refuses anything else and Grafana does not start); one
  default per org (ErrInvalidConfigToManyDefault); UIDs in the format Grafana 12 enforces
  (util.ValidateUID: [a-zA-Z0-9-_], at most 40); url at most 255 characters. `$VAR`/`${VAR}` in
  string values are expanded from the process environment before use (provisioning/values).
- the PostgreSQL datasource's jsonData is json.Unmarshal'ed into sqleng.JsonData (an int field
  refuses a string or a float: "error reading settings"), sslmode is one of tls.GetTLSConfig's
  modes, and the url's port is parsed with strconv.Atoi (generateConnectionString).
- dashboard providers (pkg/services/provisioning/dashboards): options.path must be a string (the
  file reader refuses otherwise) naming a directory Grafana can read; `folder` and
  foldersFromFilesStructure exclude each other; each dashboard's uid in the same format as above.
"""

# ruff: noqa: N815 - the models' fields are Grafana's own camelCase keys

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

GRAFANA_VERSION = "12.2.1"  # the field set modelled here; charts/grafana/Chart.yaml's appVersion

# The official grafana/grafana image's ENV (its Dockerfile): run.sh passes them to the server.
IMAGE_ENV = {
    "GF_PATHS_CONFIG": "/etc/grafana/grafana.ini",
    "GF_PATHS_DATA": "/var/lib/grafana",
    "GF_PATHS_HOME": "/usr/share/grafana",
    "GF_PATHS_LOGS": "/var/log/grafana",
    "GF_PATHS_PLUGINS": "/var/lib/grafana/plugins",
    "GF_PATHS_PROVISIONING": "/etc/grafana/provisioning",
}
# Read by the image's run.sh (--homepath, --config), not keys of defaults.ini.
RUN_SH_ENV = {"GF_PATHS_CONFIG", "GF_PATHS_HOME"}

Bool = Literal["true", "false"]
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")
# conf/defaults.ini keys (section, key) -> the type Grafana reads them as. Only keys a chart may
# set are listed; extend it from defaults.ini when the chart sets another.
SETTINGS: dict[tuple[str, str], str] = {
    ("paths", "data"): "path",
    ("paths", "logs"): "path",
    ("paths", "plugins"): "path",
    ("paths", "provisioning"): "path",
    ("server", "http_port"): "port",
    ("server", "protocol"): "protocol",
    ("server", "root_url"): "str",
    ("server", "serve_from_sub_path"): "bool",
    ("database", "type"): "database",
    ("database", "wal"): "bool",
    ("security", "admin_user"): "str",
    ("security", "admin_password"): "str",
    ("security", "disable_initial_admin_creation"): "bool",
    ("security", "cookie_secure"): "bool",
    ("analytics", "reporting_enabled"): "bool",
    ("analytics", "check_for_updates"): "bool",
    ("analytics", "check_for_plugin_updates"): "bool",
    ("users", "allow_sign_up"): "bool",
    ("auth.anonymous", "enabled"): "bool",
    ("dashboards", "min_refresh_interval"): "duration",
    ("dashboards", "versions_to_keep"): "int",
    ("log", "level"): "log_level",
}
DEFAULTS = {("server", "http_port"): "3000"}
# Grafana's gtime.ParseDuration: a number and a unit (ms, s, m, h, d, w, M, y).
DURATION = re.compile(r"^\d+(ms|s|m|h|d|w|M|y)$")


def env_name(section: str, key: str) -> str:
    return "GF_" + "_".join(part.upper().replace(".", "_").replace("-", "_") for part in (section, key))


ENV_KEYS = {env_name(section, key): (section, key) for section, key in SETTINGS}


def _check_value(kind: str, value: str) -> str | None:
    """None when Grafana's parser for `kind` takes `value`, else what it accepts."""
    accepted = {
        "bool": (lambda v: v in ("true", "false"), "true or false"),
        "port": (lambda v: v.isdigit() and 0 < int(v) < 65536, "an integer port 1-65535"),
        "int": (lambda v: re.fullmatch(r"-?\d+", v) is not None, "an integer"),
        "duration": (lambda v: DURATION.match(v) is not None, "a duration like 5s or 1m"),
        "path": (lambda v: v.startswith("/"), "an absolute path"),
        "protocol": (lambda v: v in ("http", "https", "h2", "socket"), "http, https, h2 or socket"),
        "database": (lambda v: v in ("sqlite3", "mysql", "postgres"), "sqlite3, mysql or postgres"),
        "log_level": (lambda v: v in LOG_LEVELS, ", ".join(LOG_LEVELS)),
        "str": (lambda v: True, ""),
    }
    check, allowed = accepted[kind]
    return None if check(value) else allowed


def settings(env: dict[str, str]) -> dict[tuple[str, str], str]:
    """The (section, key) -> value Grafana runs with from the container's env (image ENV under
    it); raises ValueError naming each GF_* variable that matches no key or has a bad value."""
    merged = {**IMAGE_ENV, **env}
    errors, values = [], dict(DEFAULTS)
    for name, value in merged.items():
        if not name.startswith("GF_") or name in RUN_SH_ENV:
            continue
        key = ENV_KEYS.get(name)
        if key is None:
            errors.append(f"{name}: no Grafana {GRAFANA_VERSION} setting is named so (known: {sorted(ENV_KEYS)})")
            continue
        allowed = _check_value(SETTINGS[key], value)
        if allowed is not None:
            errors.append(f"{name}={value!r}: [{key[0]}] {key[1]} takes {allowed}")
        values[key] = value
    if errors:
        raise ValueError("\n".join(errors))
    return values


# --- $VAR expansion of provisioning files (pkg/services/provisioning/values) ----------------------

_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+)|\$)")


def expand(value, env: dict[str, str], missing: set[str]):
    """Every string inside `value` with $VAR / ${VAR} replaced from `env` ($$ is a literal $);
    names `env` lacks are added to `missing` (Grafana would expand them to "")."""
    if isinstance(value, dict):
        return {k: expand(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, env, missing) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        name = match[1] or match[2]
        if name is None:
            return "$"
        if name not in env:
            missing.add(name)
        return env.get(name, "")

    return _VARIABLE.sub(replace, value)


# --- datasources -------------------------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


Uid = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9\-_]{1,40}$")]


class PostgresJsonData(Strict):
    """sqleng.JsonData (json.Unmarshal'ed by the datasource) plus the keys its config page keeps
    (database, postgresVersion): anything else is a key Grafana ignores, i.e. a typo."""

    database: str = Field(min_length=1)
    sslmode: Literal["disable", "require", "verify-ca", "verify-full"]
    maxOpenConns: int = Field(default=0, ge=0)
    maxIdleConns: int = Field(default=0, ge=0)
    connMaxLifetime: int = Field(default=0, ge=0)
    connectionTimeout: int = Field(default=0, ge=0)
    timescaledb: bool = False
    postgresVersion: int = Field(default=903, ge=903)  # the config page's 903 (9.3) ... numbering
    tlsConfigurationMethod: Literal["file-path", "file-content"] = "file-path"
    sslRootCertFile: str = ""
    sslCertFile: str = ""
    sslKeyFile: str = ""
    timeInterval: str = ""


class Datasource(Strict):
    """DataSourceFromConfigV1 (yaml.Unmarshal'ed: the types are Go's)."""

    name: str = Field(min_length=1, max_length=190)
    type: str = Field(min_length=1)
    uid: Uid
    access: Literal["proxy", "direct"] = "proxy"
    url: str = Field(default="", max_length=255)
    user: str = ""
    orgId: int = 1
    isDefault: bool = False
    editable: bool = False
    version: int = 0
    basicAuth: bool = False
    jsonData: dict = {}
    secureJsonData: dict[str, str] = {}


POSTGRES_TYPES = ("grafana-postgresql-datasource", "postgres")  # the plugin id and its alias


class DatasourceFile(Strict):
    apiVersion: Literal[1]
    datasources: list[Datasource]
    deleteDatasources: list[dict] = []


def postgres_host_port(url: str) -> tuple[str, int]:
    """generateConnectionString: host before the first ':', the rest strconv.Atoi'd."""
    host, _, port = url.partition(":")
    if not port.isdigit():
        raise ValueError(f"url {url!r}: Grafana parses the port {port!r} with strconv.Atoi and refuses it")
    return host, int(port)


def check_datasources(document: dict, env: dict[str, str]) -> DatasourceFile:
    """The provisioning file as Grafana reads it with the container's env; raises with the field."""
    missing: set[str] = set()
    parsed = DatasourceFile.model_validate(expand(document, env, missing))
    if missing:
        raise ValueError(f"datasources.yaml uses ${{{', '.join(sorted(missing))}}}, unset in the container's env")
    defaults: dict[int, list[str]] = {}
    for source in parsed.datasources:
        if source.isDefault:
            defaults.setdefault(source.orgId, []).append(source.name)
        if source.type in POSTGRES_TYPES:
            PostgresJsonData.model_validate(source.jsonData)
            postgres_host_port(source.url)
    for org, names in defaults.items():
        if len(names) > 1:
            raise ValueError(f"org {org}: more than one default datasource ({names}): Grafana refuses to start")
    return parsed


# --- dashboard providers -------------------------------------------------------------------------------


class ProviderOptions(Strict):
    path: str = Field(pattern=r"^/")
    foldersFromFilesStructure: bool = False


class DashboardProvider(Strict):
    name: str = Field(min_length=1)
    orgId: int = 1
    folder: str = ""
    folderUid: str = ""
    type: Literal["file"] = "file"
    disableDeletion: bool = False
    allowUiUpdates: bool = False
    updateIntervalSeconds: int = Field(default=10, ge=0)
    options: ProviderOptions


class DashboardProviderFile(Strict):
    apiVersion: Literal[1]
    providers: list[DashboardProvider]


class Dashboard(BaseModel):
    """The fields Grafana's file provisioner checks before saving a dashboard."""

    uid: Uid
    title: str = Field(min_length=1)


def check_providers(document: dict) -> DashboardProviderFile:
    parsed = DashboardProviderFile.model_validate(document)
    for provider in parsed.providers:
        if provider.options.foldersFromFilesStructure and (provider.folder or provider.folderUid):
            raise ValueError(
                f"provider {provider.name}: 'folder' and 'folderUid' must be empty with foldersFromFilesStructure"
            )
    return parsed
