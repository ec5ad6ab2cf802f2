"""The database roles (made by migration 0015_roles) and their LOGIN users: one source of truth
for their names, the settings each login carries, and where its password comes from.

The migration creates NOLOGIN group roles that hold the privileges. Each component logs in as a
LOGIN user that is a member of one group (`fleet_api_login` in `fleet_api`, ...; the owner logs
in as `fleet_owner` itself, see Role.own_login), created or
updated by `python -m storage.migrate roles` from passwords the deployer provides (the
timescaledb chart's per-role Secrets, or `make run`'s generated ones). The passwords reach the
server as SCRAM-SHA-256 verifiers made by libpq, never in clear text (a statement log would
show them).

Settings live on the LOGIN user: PostgreSQL does not pass `ALTER ROLE ... SET` from a group role
to its members. A session may still change them (`SET statement_timeout = 0`): for Grafana they
are guard rails against a runaway query, not a boundary; the boundary is that its group may only
SELECT, so a write fails whatever the session sets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROLES_MIGRATION = "0015_roles"
"""The migration that creates the group roles; those after it run as the owner role."""


@dataclass(frozen=True)
class Role:
    key: str
    """Short name: the CLI's and the charts' (Secret `<timescaledb>-<key>`), env FLEET_DB_PASSWORD_<KEY>."""
    purpose: str
    settings: tuple[tuple[str, str], ...] = ()
    """Session defaults of its LOGIN user."""
    own_login: bool = False
    """The group role logs in itself (the owner: TimescaleDB runs policy jobs as a hypertable's
    owner and wants it to have LOGIN), instead of a member user."""

    @property
    def group(self) -> str:
        return f"fleet_{self.key}"

    @property
    def login(self) -> str:
        return self.group if self.own_login else f"fleet_{self.key}_login"

    @property
    def password_env(self) -> str:
        return f"FLEET_DB_PASSWORD_{self.key.upper()}"


GRAFANA_STATEMENT_TIMEOUT = "30s"
ROLES: dict[str, Role] = {
    role.key: role
    for role in (
        Role("owner", "owns the schema; runs the migrations", own_login=True),
        Role("writer", "the loader, the alert shipper and Vector: writes the pipeline's tables"),
        Role("api", "the API: reads, and acknowledges/clears alarms"),
        Role(
            "grafana",
            "Grafana's datasource: reads only",
            (("default_transaction_read_only", "on"), ("statement_timeout", GRAFANA_STATEMENT_TIMEOUT)),
        ),
    )
}
OWNER = ROLES["owner"].group


class RoleError(ValueError):
    pass


def role(key: str) -> Role:
    if key not in ROLES:
        raise RoleError(f"unknown database role {key!r} (known: {', '.join(ROLES)})")
    return ROLES[key]


def passwords_from(environ: dict[str, str] | None = None, files: dict[str, str] | None = None) -> dict[str, str]:
    """Role key -> password: from files (`--password-file api=/path`) over the environment
    (FLEET_DB_PASSWORD_API=...). A file's trailing newline is not part of the password."""
    environ = os.environ if environ is None else environ
    found = {key: environ[r.password_env] for key, r in ROLES.items() if environ.get(r.password_env)}
    for key, path in (files or {}).items():
        role(key)
        with open(path, encoding="utf-8") as handle:
            found[key] = handle.read().rstrip("\r\n")
    for key, password in found.items():
        if not password:
            raise RoleError(f"the password of role {key!r} is empty")
    return found


def ensure_login_users(conn: psycopg.Connection, passwords: dict[str, str]) -> list[str]:
    """Create or update the LOGIN user of each role in `passwords` (idempotent): member of its
    group, the given password, its settings. Needs CREATEROLE; returns the login names."""
    done = []
    for key, password in sorted(passwords.items()):
        r = role(key)
        with conn.transaction():
            _ensure_login(conn, r, password)
        done.append(r.login)
    return done


def _ensure_login(conn: psycopg.Connection, r: Role, password: str) -> None:
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (r.group,)).fetchone() is None:
        raise RoleError(f"group role {r.group} does not exist: run `python -m storage.migrate up` first")
    existing = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (r.login,)).fetchone()
    if existing and existing[0]:
        raise RoleError(f"{r.login} exists as a superuser: refusing to make it a least-privilege login")
    verb = "ALTER" if existing else "CREATE"
    conn.execute(
        sql.SQL(verb + " ROLE {} WITH LOGIN PASSWORD {}").format(
            sql.Identifier(r.login), sql.Literal(_verifier(conn, r.login, password))
        )
    )
    if r.login != r.group:
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(r.group), sql.Identifier(r.login)))
    for name, value in r.settings:
        conn.execute(
            sql.SQL("ALTER ROLE {} SET {} = {}").format(
                sql.Identifier(r.login), sql.Identifier(name), sql.Literal(value)
            )
        )


def _verifier(conn: psycopg.Connection, login: str, password: str) -> str:
    # libpq's PQencryptPasswordConn: SCRAM-SHA-256 (the server's password_encryption), made here.
    return conn.pgconn.encrypt_password(password.encode(), login.encode(), b"scram-sha-256").decode()


def login_url(url: str, key: str, password: str) -> str:
    """`url` with the LOGIN user of role `key` and its password instead of the admin's."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = f"{quote(role(key).login, safe='')}:{quote(password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))
