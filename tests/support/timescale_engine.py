"""Test launcher for the real TimescaleDB engine available here.

No TimescaleDB extension installs from Debian or pip, so the tests use PGlite
(PostgreSQL 17 + TimescaleDB 2.23 in WebAssembly) served over TCP by
tests/support/timescale-engine/serve.mjs, installed into .tools/timescaledb by
scripts/setup.d/timescaledb.sh. It serves ONE client connection at a time and has no background
job scheduler: policies are registered but only run when called (`CALL run_job(id)`).

    with TimescaleEngine() as engine:
        migrate_up(engine.url)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from devstack.ports import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
ENGINE_DIR = Path(os.environ.get("FLEET_TOOLS_DIR", ROOT / ".tools")) / "timescaledb"


def engine_installed() -> bool:
    return (ENGINE_DIR / "serve.mjs").exists() and (ENGINE_DIR / "node_modules" / "@electric-sql").is_dir()


class TimescaleEngine:
    """A throw-away TimescaleDB engine on a free port; `url` connects to it (password is ignored
    by PGlite but required by its socket handshake)."""

    def __init__(self, port: int | None = None, persistent_dir: Path | None = None):
        if not engine_installed():
            raise FileNotFoundError(f"TimescaleDB engine not installed in {ENGINE_DIR}: run `make setup`")
        self.port = port or free_port()
        self.url = f"postgresql://postgres:postgres@127.0.0.1:{self.port}/postgres?sslmode=disable"
        self._data_dir = persistent_dir
        self._process: subprocess.Popen | None = None
        self._log_dir = Path(tempfile.mkdtemp(prefix="fleet-timescale-"))

    def start(self, timeout_s: float = 90) -> TimescaleEngine:
        command = [shutil.which("node") or "node", "serve.mjs", "--port", str(self.port)]
        if self._data_dir:
            command += ["--data-dir", str(self._data_dir)]
        log = (self._log_dir / "engine.log").open("wb")
        self._process = subprocess.Popen(command, cwd=ENGINE_DIR, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._accepts, timeout_s, f"TimescaleDB engine on port {self.port}", interval_s=0.2)
        except TimeoutError:
            self.stop()
            raise
        return self

    def _accepts(self) -> bool:
        if self._process and self._process.poll() is not None:
            output = (self._log_dir / "engine.log").read_text(errors="replace")
            raise RuntimeError(f"TimescaleDB engine exited with {self._process.returncode}: {output[-2000:]}")
        try:
            psycopg.connect(self.url, connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._log_dir, ignore_errors=True)

    def __enter__(self) -> TimescaleEngine:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
