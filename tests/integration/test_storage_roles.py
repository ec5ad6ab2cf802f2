"""The least-privilege database roles (migration 0015_roles, storage.roles) on real PostgreSQL:
each LOGIN user is refused what its component must never do, the migrations and the login users
re-run idempotently, a later migration runs as the owner and its tables get the default grants,
and the passwords authenticate over SCRAM. What each role IS allowed is proven by the components'
own tests running as it: the loader (test_loader), the alert shipper (test_alert_shipper),
Vector's statement (test_vector), the API (test_api)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

import storage.migrate
from devstack.postgres import PrivatePostgres
from storage.migrate import Migration, migrate_up
from storage.roles import GRAFANA_STATEMENT_TIMEOUT, ROLES, ROLES_MIGRATION, login_url
from tests.support.db_roles import PASSWORDS, role_urls

pytestmark = pytest.mark.integration

NOW = datetime(2025, 3, 3, tzinfo=UTC)
# What no role may do: make objects, run programs on the server, read server files.
EVERYONE_REFUSED = [
    "CREATE TABLE public.intruder (x int)",
    "CREATE FUNCTION public.intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "COPY (SELECT 1) TO PROGRAM 'true'",
    "COPY readings FROM PROGRAM 'true'",
    "SELECT pg_read_file('PG_VERSION')",
    "CREATE ROLE intruder",
    "ALTER ROLE CURRENT_USER SUPERUSER",
]
REFUSED = {
    "writer": [
        "DROP TABLE readings",
        "ALTER TABLE readings ADD COLUMN x int",
        "TRUNCATE readings",
        "DELETE FROM alarms",
        "SELECT acknowledged_by FROM alarms",  # who acknowledged is the API's business
        "SELECT * FROM alarms",
        "UPDATE alarms SET acknowledged_by = 'forged'",
        "SELECT * FROM alarm_events",  # appends only
        "SELECT * FROM schema_migrations",
    ],
    "api": [
        "INSERT INTO readings VALUES (now(), 's', 'f', 'x', 'm', 1, 'e', '')",
        "UPDATE alarms SET severity = 'info'",
        "UPDATE alarms SET count = 1",
        "UPDATE alarms SET fleet_id = 'other'",
        "DELETE FROM alarms",
        "INSERT INTO alarms (alert_id) VALUES ('forged')",
        "SELECT * FROM dead_letters",
        "SELECT * FROM loader_offsets",
        "DROP TABLE alarms",
    ],
    "grafana": [
        "INSERT INTO readings VALUES (now(), 's', 'f', 'x', 'm', 1, 'e', '')",
        "UPDATE alarms SET status = 'cleared'",
        "DELETE FROM readings",
        "DROP VIEW readings_1h",
    ],
}


@pytest.fixture
def roles(pg_url) -> dict[str, str]:
    migrate_up(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO alarms (alert_id, alert_type, severity, status, source_id, fleet_id, first_seen, last_seen,"
            " count, acknowledged_by) VALUES ('a1', 't', 'info', 'acknowledged', 's', 'f', %s, %s, 1, 'ops')",
            (NOW, NOW),
        )
    return role_urls(pg_url)


def refused(url: str, statement: str, read_only_off: bool = False) -> bool:
    """True when the server refuses `statement` for lack of a privilege (or for read-only)."""
    with psycopg.connect(url, autocommit=True) as conn:
        if read_only_off:
            conn.execute("SET default_transaction_read_only = off")
        try:
            conn.execute(statement)
        except (errors.InsufficientPrivilege, errors.ReadOnlySqlTransaction):
            return True
        return False


@pytest.mark.parametrize("key", ["writer", "api", "grafana"])
def test_each_role_is_refused_what_it_must_not_do(roles, key):
    allowed = [s for s in REFUSED[key] + EVERYONE_REFUSED if not refused(roles[key], s)]
    assert allowed == []


def test_grafana_cannot_write_even_when_it_turns_read_only_off(roles):
    # The login's read-only default is a setting the session may change: the grants are the wall.
    for statement in REFUSED["grafana"]:
        assert refused(roles["grafana"], statement, read_only_off=True), statement
    with psycopg.connect(roles["grafana"]) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == GRAFANA_STATEMENT_TIMEOUT
        assert conn.execute("SELECT acknowledged_by FROM alarms").fetchall() == [("ops",)]
        conn.rollback()
        conn.execute("SET statement_timeout = '50ms'")  # the timeout cancels as PostgreSQL does
        with pytest.raises(errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(5)")


def test_no_login_is_superuser_or_may_make_roles_or_databases(roles, pg_url):
    with psycopg.connect(pg_url) as conn:
        attributes = conn.execute(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin"
            " FROM pg_roles WHERE rolname LIKE 'fleet\\_%' ORDER BY rolname"
        ).fetchall()
        config = dict(conn.execute("SELECT rolname, rolconfig FROM pg_roles WHERE rolname LIKE 'fleet\\_%'").fetchall())
    logins = {r.login for r in ROLES.values()}
    assert {row[0] for row in attributes} == logins | {r.group for r in ROLES.values()}
    assert all(row[1:6] == (False,) * 5 for row in attributes), attributes
    assert {row[0] for row in attributes if row[6]} == logins  # the groups cannot log in (but the owner)
    assert config["fleet_grafana_login"] == [
        "default_transaction_read_only=on",
        f"statement_timeout={GRAFANA_STATEMENT_TIMEOUT}",
    ]


def test_the_owner_owns_every_object_and_the_others_own_nothing(roles, pg_url):
    with psycopg.connect(pg_url) as conn:
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        ).fetchall()
        schema_owner = conn.execute("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'")
        assert schema_owner.fetchone()[0] == "fleet_owner"
    assert owners == [("fleet_owner",)]


def test_migrations_and_logins_rerun_idempotently(roles, pg_url):
    assert migrate_up(pg_url) == []
    roles_sql = next(m for m in storage.migrate.migrations() if m.version == ROLES_MIGRATION).files["any"]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(roles_sql.read_text())  # the statements themselves, as after a lost ledger row
    assert role_urls(pg_url) == roles
    assert not refused(roles["api"], "UPDATE alarms SET status = 'cleared', cleared_at = now() WHERE alert_id = 'a1'")
    assert refused(roles["writer"], "SELECT acknowledged_by FROM alarms")


def roles_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "storage.migrate", "roles", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_cli_makes_login_users_from_env_and_files(pg_url, tmp_path):
    migrate_up(pg_url)
    secret = tmp_path / "api-password"
    secret.write_text("from-a-file\n")
    env = {"PATH": "/usr/bin:/bin", ROLES["grafana"].password_env: "from-env"}
    result = roles_cli("--database-url", pg_url, "--password-file", f"api={secret}", env=env)
    assert result.returncode == 0, result.stderr
    assert "fleet_api_login" in result.stderr and "fleet_writer_login" not in result.stderr
    bad = roles_cli("--database-url", pg_url, "--password-file", "root=/x", env={"PATH": "/usr/bin:/bin"})
    assert bad.returncode == 2 and "unknown database role 'root' (known: owner, writer, api, grafana)" in bad.stderr
    none = roles_cli("--database-url", pg_url, env={"PATH": "/usr/bin:/bin"})
    assert none.returncode == 2 and "FLEET_DB_PASSWORD_<ROLE>" in none.stderr


def test_a_later_migration_runs_as_the_owner_with_default_grants(roles, pg_url, monkeypatch, tmp_path):
    later = tmp_path / "0099_later.sql"
    later.write_text("CREATE TABLE later_table (x int); INSERT INTO later_table VALUES (1);")
    everything = [*storage.migrate.migrations(), Migration("0099_later", {"any": later})]
    monkeypatch.setattr(storage.migrate, "migrations", lambda: everything)
    assert migrate_up(pg_url) == ["0099_later"]
    with psycopg.connect(pg_url) as conn:
        owner = conn.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'later_table'").fetchone()
    assert owner == ("fleet_owner",)
    assert not refused(roles["api"], "SELECT * FROM later_table")
    assert not refused(roles["grafana"], "SELECT * FROM later_table")
    assert refused(roles["writer"], "INSERT INTO later_table VALUES (2)")  # write grants are explicit


def test_passwords_authenticate_over_scram_and_wrong_ones_do_not():
    with PrivatePostgres() as server:
        hba = Path(server.data_dir, "data", "pg_hba.conf")
        hba.write_text(
            "host all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )  # the server superuser as before; everyone else by password
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
        migrate_up(server.url)
        urls = role_urls(server.url)
        for key, url in urls.items():
            with psycopg.connect(url) as conn:
                assert conn.execute("SELECT current_user").fetchone()[0] == ROLES[key].login
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(login_url(server.url, "api", PASSWORDS["writer"])).close()


def test_the_audit_of_0014_is_written_by_the_api_alone_and_kept(pg_url):
    """The API records who acknowledged or cleared an alarm (alarm_audit, alarms.cleared_by); the
    loader's alarm upsert may only forget a person's clear (cleared_by = NULL), never forge one."""
    migrate_up(pg_url)
    urls = role_urls(pg_url)
    audit = "INSERT INTO alarm_audit (alert_id, action, key_name, fleet_id) VALUES ('a1', 'clear', 'ops', 'f1')"
    assert not refused(urls["api"], audit)
    assert not refused(urls["api"], "UPDATE alarms SET cleared_by = 'ops' WHERE false")
    assert refused(urls["api"], "DELETE FROM alarm_audit")  # the record stays
    assert refused(urls["api"], "UPDATE alarm_audit SET key_name = 'someone else'")
    assert not refused(urls["writer"], "UPDATE alarms SET cleared_by = NULL WHERE false")
    assert refused(urls["writer"], "SELECT * FROM alarm_audit")
    assert refused(urls["writer"], audit.replace("'ops'", "'forged'"))
