"""A private PostgreSQL server for tests and the local run, or the one DATABASE_URL names.

Uses the Debian PostgreSQL binaries (scripts/setup.sh installs them). initdb refuses to run as
root, so as root the server runs as the `postgres` system user (created if missing).
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from devstack.ports import free_port, wait_until

log = logging.getLogger(__name__)
SERVER_USER = "postgres"


def postgres_url() -> str | None:
    """The externally provided database, if any."""
    return os.environ.get("DATABASE_URL") or None


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise FileNotFoundError("PostgreSQL server binaries not found: run scripts/setup.sh (installs postgresql)")


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVER_USER], check=True)
    return ["runuser", "-u", SERVER_USER, "--"]


class PrivatePostgres:
    """`with PrivatePostgres() as pg:` starts a throw-away server; `pg.url` connects to it."""

    def __init__(self, port: int | None = None, data_dir: Path | None = None):
        self.port = port or free_port()
        self._owned_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="fleet-pg-"))
        self.url = f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/postgres?sslmode=disable"
        self._prefix = _as_server_user()
        self._bin = _bin_dir()

    def _run(self, *args: str) -> None:
        subprocess.run([*self._prefix, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self, timeout_s: float = 30) -> PrivatePostgres:
        if self._prefix:
            shutil.chown(self.data_dir, SERVER_USER)
        pgdata = self.data_dir / "data"
        if not pgdata.exists():
            self._run(
                str(self._bin / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                SERVER_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            )
        # fsync off for speed (an OS crash may lose data), but commits are written before they are
        # acknowledged: a killed server (PrivatePostgres.restart) keeps every commit it reported.
        options = (
            f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self._bin / "pg_ctl"),
            "-D",
            str(pgdata),
            "-o",
            options,
            "-l",
            str(self.data_dir / "server.log"),
            "-w",
            "-t",
            str(int(timeout_s)),
            "start",
        )
        wait_until(self._accepts, timeout_s, f"postgres on port {self.port}")
        log.info("private postgres ready", extra={"port": self.port, "data_dir": str(self.data_dir)})
        return self

    def _accepts(self) -> bool:
        try:
            psycopg.connect(self.url, connect_timeout=1).close()
            return True
        except psycopg.OperationalError:
            return False

    def restart(self, timeout_s: float = 30) -> None:
        """Stop as a crash would (`pg_ctl -m immediate`: no shutdown checkpoint, clients cut off),
        then start on the same port and data: the server recovers from its WAL."""
        pgdata = self.data_dir / "data"
        self._run(str(self._bin / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "-w", "stop")
        self.start(timeout_s)

    def stop(self) -> None:
        pgdata = self.data_dir / "data"
        if pgdata.exists():
            subprocess.run(
                [*self._prefix, str(self._bin / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        if self._owned_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
