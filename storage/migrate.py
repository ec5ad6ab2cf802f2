"""Versioned, idempotent schema migrations for fleet-monitor, and their CLI.

    python -m storage.migrate up     --database-url URL [--timescaledb auto|require|off] [--retention table=period ...]
    python -m storage.migrate status --database-url URL [--json] [--check]
    python -m storage.migrate prune  --database-url URL [--retention table=period ...]
    python -m storage.migrate roles  --database-url ADMIN_URL [--password-file role=path ...]

Migrations are `storage/migrations/NNNN_name.sql`, applied once each, in order, each in its own
transaction, recorded in `schema_migrations` with a checksum. A migration may come in two
variants, `NNNN_name.timescale.sql` and `NNNN_name.plain.sql`: the first is used when the
TimescaleDB extension is available, the second on plain PostgreSQL, so both keep the same tables,
views and queries. A session advisory lock lets concurrent runners (Helm hook retries, tests)
wait for each other instead of racing. With TimescaleDB, `up` then (re)applies the retention,
compression and rollup refresh policies from the settings (storage.policies).

Migration 0015_roles creates the least-privilege group roles (storage.roles) and hands the schema
to `fleet_owner`; every later migration runs as that role (SET LOCAL ROLE), so the connected user
must be a superuser or a member of it. `roles` then creates or updates each role's LOGIN user
from the passwords given (FLEET_DB_PASSWORD_<ROLE> or --password-file), as a CREATEROLE user.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from contracts import jsonlog
from storage.policies import HYPERTABLES, PolicyError, PolicySettings, apply_timescale_policies, prune
from storage.roles import OWNER, ROLES, ROLES_MIGRATION, RoleError, ensure_login_users, passwords_from

log = logging.getLogger("storage.migrate")
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VARIANTS = ("timescale", "plain")
_LOCK_KEY = 7_245_100_001  # pg_advisory_lock key shared by every migration runner


@dataclass(frozen=True)
class Migration:
    version: str  # e.g. 0003_rollups
    files: dict[str, Path]  # variant ("any", "timescale", "plain") -> file

    def file_for(self, timescale: bool) -> tuple[str, Path]:
        if "any" in self.files:
            return "any", self.files["any"]
        variant = "timescale" if timescale else "plain"
        return variant, self.files[variant]


def migrations() -> list[Migration]:
    """Every migration in version order; raises ValueError for ambiguous or incomplete sets."""
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        stem, _, variant = path.name.removesuffix(".sql").partition(".")
        found.setdefault(stem, {})[variant or "any"] = path
    numbers: dict[str, str] = {}
    for stem, files in found.items():
        if stem[:4] in numbers:
            raise ValueError(f"migration number {stem[:4]} used twice: {numbers[stem[:4]]} and {stem}")
        numbers[stem[:4]] = stem
        if "any" not in files and set(files) != set(VARIANTS):
            raise ValueError(f"migration {stem} needs both .timescale.sql and .plain.sql variants")
    return [Migration(stem, files) for stem, files in sorted(found.items())]


def migration_files() -> list[Path]:
    """Every migration file (all variants), for callers of the minimal runner's API."""
    return [path for migration in migrations() for path in migration.files.values()]


def expected_versions() -> list[str]:
    return [migration.version for migration in migrations()]


def _checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def timescaledb_available(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    return row is not None


def timescaledb_version(conn: psycopg.Connection) -> str | None:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return row[0] if row else None


def _use_timescaledb(conn: psycopg.Connection, mode: str) -> bool:
    if mode not in ("auto", "require", "off"):
        raise ValueError(f"timescaledb mode must be auto, require or off, got {mode!r}")
    if mode == "off":
        return False
    if timescaledb_available(conn):
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        return True
    if mode == "require":
        raise RuntimeError("TimescaleDB required (--timescaledb require) but the extension is not available")
    return False


def _ensure_ledger(conn: psycopg.Connection) -> None:
    # Columns added after the minimal runner created the table, hence ADD COLUMN IF NOT EXISTS.
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    conn.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS variant text")
    conn.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text")


def _applied(conn: psycopg.Connection) -> dict[str, tuple]:
    """version -> (variant, checksum, applied_at); NULLs for rows the minimal runner wrote."""
    if "checksum" not in _columns(conn, "schema_migrations"):
        rows = conn.execute("SELECT version, NULL, NULL, applied_at FROM schema_migrations").fetchall()
    else:
        rows = conn.execute("SELECT version, variant, checksum, applied_at FROM schema_migrations").fetchall()
    return {row[0]: row[1:] for row in rows}


def _is_hypertable(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = %s", (table,)
    ).fetchone()
    return row is not None


def _as_owner(conn: psycopg.Connection, version: str) -> None:
    """Run the migrations after the roles' as the owner role, so what they create is the owner's
    (and gets its default privileges) whichever member or superuser runs them. Those up to the
    roles' run as the connected user: the roles migration itself needs CREATEROLE."""
    if version <= ROLES_MIGRATION:
        return
    member = conn.execute(
        "SELECT pg_has_role(current_user, oid, 'MEMBER') FROM pg_roles WHERE rolname = %s", (OWNER,), prepare=False
    ).fetchone()
    if not member or not member[0]:
        raise RuntimeError(f"migration {version} must run as {OWNER}: connect as a member of it or as a superuser")
    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(OWNER)))


def migrate_up(url: str, *, timescaledb: str = "auto", policies: PolicySettings | None = None) -> list[str]:
    """Apply every pending migration; returns the versions applied (empty when current).

    With TimescaleDB in use, also (re)applies the policies: `policies` or the defaults/environment."""
    applied: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            timescale = _use_timescaledb(conn, timescaledb)
            _ensure_ledger(conn)
            done = _applied(conn)
            for migration in migrations():
                if migration.version in done:
                    continue
                variant, path = migration.file_for(timescale)
                with conn.transaction():
                    _as_owner(conn, migration.version)
                    conn.execute(path.read_text())
                    # Never prepared (psycopg prepares a query run 5 times): a server-side prepared
                    # statement outlives the connection where one session serves every client (the
                    # PGlite TimescaleDB engine of the tests), and the next client's name collides.
                    conn.execute(
                        "INSERT INTO schema_migrations (version, variant, checksum) VALUES (%s, %s, %s)",
                        (migration.version, variant, _checksum(path)),
                        prepare=False,
                    )
                log.info("migration applied", extra={"version": migration.version, "variant": variant})
                applied.append(migration.version)
            if timescale and _is_hypertable(conn, "readings"):
                settings = policies or PolicySettings.build()
                with conn.transaction():
                    for policy in apply_timescale_policies(conn, settings):
                        log.info("policy set", extra={"policy": policy})
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied


def migration_status(url: str) -> dict:
    """Each migration's state (applied, pending, changed) and the TimescaleDB policies in force."""
    with psycopg.connect(url, autocommit=True) as conn:
        ledger = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
        done = _applied(conn) if ledger else {}
        extension = timescaledb_version(conn)
        jobs = _policies(conn) if extension else []
    rows = []
    for migration in migrations():
        if migration.version not in done:
            rows.append({"version": migration.version, "state": "pending"})
            continue
        variant, checksum, applied_at = done[migration.version]
        path = migration.files.get(variant or "any")
        changed = checksum is not None and path is not None and _checksum(path) != checksum
        rows.append(
            {
                "version": migration.version,
                "state": "changed" if changed else "applied",
                "variant": variant,
                "applied_at": applied_at.isoformat() if applied_at else None,
            }
        )
    unknown = sorted(set(done) - set(expected_versions()))
    return {
        "timescaledb": extension,
        "migrations": rows,
        "unknown_applied": unknown,
        "pending": [row["version"] for row in rows if row["state"] == "pending"],
        "policies": jobs,
    }


def _columns(conn: psycopg.Connection, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND table_schema = current_schema()",
        (table,),
    )
    return {row[0] for row in rows}


def _policies(conn: psycopg.Connection) -> list[dict]:
    rows = conn.execute(
        "SELECT proc_name, hypertable_name, config::text FROM timescaledb_information.jobs"
        " WHERE proc_name LIKE 'policy_%%' AND hypertable_name IS NOT NULL ORDER BY hypertable_name, proc_name"
    ).fetchall()
    return [
        {"policy": name.removeprefix("policy_"), "table": table, "config": json.loads(config)}
        for name, table, config in rows
    ]


def prune_expired(url: str, settings: PolicySettings) -> dict[str, int]:
    """Delete rows past retention where no TimescaleDB retention policy does it."""
    with psycopg.connect(url, autocommit=True) as conn:
        covered = tuple(table for table in HYPERTABLES if timescaledb_version(conn) and _is_hypertable(conn, table))
        with conn.transaction():
            return prune(conn, settings, skip=covered)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m storage.migrate", description="fleet-monitor schema migrations and data retention."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{up,status,prune,roles}")
    up = commands.add_parser("up", help="apply pending migrations and (with TimescaleDB) the policies")
    status = commands.add_parser("status", help="show applied and pending migrations and the policies")
    pruner = commands.add_parser("prune", help="delete rows past retention from tables without a TimescaleDB policy")
    roles = commands.add_parser(
        "roles",
        help="create or update the roles' LOGIN users from the given passwords (after `up`)",
        description="Create or update the LOGIN user of each role whose password is given, as a member of its "
        "group role (made by `up`): "
        + "; ".join(f"{r.login} in {r.group} ({r.purpose}, env {r.password_env})" for r in ROLES.values())
        + ". Roles without a password are left as they are. Connect as a superuser or a CREATEROLE user.",
    )
    up.add_argument(
        "--login-users",
        action="store_true",
        help="then create or update the roles' LOGIN users, as `roles` does (the charts' migration Job)",
    )
    for command in (up, roles):
        command.add_argument(
            "--password-file",
            action="append",
            default=[],
            metavar="ROLE=PATH",
            help=f"read ROLE's password from PATH (repeatable; ROLE one of {', '.join(ROLES)}); "
            "over env FLEET_DB_PASSWORD_<ROLE>",
        )
    for command in (up, status, pruner, roles):
        command.add_argument(
            "--database-url", default=os.environ.get("DATABASE_URL"), help="PostgreSQL URL (env DATABASE_URL)"
        )
        command.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"), help="log level (INFO)")
    up.add_argument(
        "--timescaledb",
        choices=("auto", "require", "off"),
        default=os.environ.get("FLEET_TIMESCALEDB", "auto"),
        help="use the extension when available (auto), insist on it (require) or never (off); env FLEET_TIMESCALEDB",
    )
    for command in (up, pruner):
        command.add_argument(
            "--retention",
            action="append",
            metavar="TABLE=PERIOD",
            help="keep TABLE's rows for PERIOD, e.g. 'readings=7 days' (repeatable; env FLEET_RETENTION, comma-separated)",
        )
    up.add_argument("--compress-after", help="compress chunks older than this (env FLEET_COMPRESS_AFTER; 2 days)")
    up.add_argument("--refresh-window", help="hourly rollup refresh start offset (env FLEET_REFRESH_WINDOW; 1 day)")
    up.add_argument("--refresh-lag", help="rollup refresh end offset (env FLEET_REFRESH_LAG; 1 hour)")
    up.add_argument("--refresh-every", help="rollup refresh schedule (env FLEET_REFRESH_EVERY; 30 minutes)")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument("--check", action="store_true", help="exit 1 when a migration is pending or changed")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url is required (or set DATABASE_URL)")
    jsonlog.configure(args.log_level)
    # Before any database work: a bad password source fails fast, not after the migrations.
    passwords = (
        _passwords(args.password_file, parser) if args.command == "roles" or getattr(args, "login_users", False) else {}
    )
    try:
        if args.command == "up":
            settings = PolicySettings.build(
                args.retention, args.compress_after, args.refresh_window, args.refresh_lag, args.refresh_every
            )
            applied = migrate_up(args.database_url, timescaledb=args.timescaledb, policies=settings)
            log.info("database is current", extra={"applied": applied})
            return _make_logins(args.database_url, passwords) if passwords else 0
        if args.command == "roles":
            return _make_logins(args.database_url, passwords)
        if args.command == "prune":
            deleted = prune_expired(args.database_url, PolicySettings.build(args.retention))
            log.info("pruned", extra={"deleted": deleted})
            return 0
        return _print_status(migration_status(args.database_url), args.json, args.check)
    except PolicyError as exc:
        parser.error(str(exc))
    except (psycopg.Error, RuntimeError, ValueError, OSError) as exc:
        log.error("migration command failed", extra={"error": str(exc)})
        return 1


def _passwords(files: list[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    """Role key -> password from --password-file ROLE=PATH and FLEET_DB_PASSWORD_<ROLE>; exits 2
    naming the bad entry, or when none is given."""
    paths = {}
    for entry in files:
        key, sep, path = entry.partition("=")
        if not sep or not path:
            parser.error(f"--password-file takes ROLE=PATH, got {entry!r}")
        paths[key] = path
    try:
        passwords = passwords_from(files=paths)
    except RoleError as exc:
        parser.error(str(exc))
    if not passwords:
        parser.error("no password given: set FLEET_DB_PASSWORD_<ROLE> or --password-file ROLE=PATH")
    return passwords


def _make_logins(url: str, passwords: dict[str, str]) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        logins = ensure_login_users(conn, passwords)
    log.info("login users ready", extra={"logins": logins})
    return 0


def _print_status(report: dict, as_json: bool, check: bool) -> int:
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(f"timescaledb: {report['timescaledb'] or 'not installed (plain PostgreSQL)'}")
        for row in report["migrations"]:
            print(
                f"  {row['version']:<28} {row['state']:<8} {row.get('variant') or '':<10} {row.get('applied_at') or ''}"
            )
        for policy in report["policies"]:
            print(f"  policy {policy['policy']:<30} {policy['table']:<14} {json.dumps(policy['config'])}")
    stale = report["pending"] or any(row["state"] == "changed" for row in report["migrations"])
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
