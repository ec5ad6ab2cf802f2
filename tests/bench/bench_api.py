"""API latency under concurrent load: one million readings, 10k sources, real PostgreSQL.

Fleet status, trends and alarm listing are measured against a bare `SELECT 1` endpoint served by
the same process, pool and middleware in the same run (the baseline), in interleaved rounds; each
figure is the median over the rounds. Target: fleet status p99 under 50 ms.

    python -m tests.bench.bench_api [--quick]         # run, print, write results/api.json
    python -m tests.bench.bench_api serve --port N --database-url URL   # (internal) the server
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

from api.auth import KEY_REQUIRED
from api.db import Db
from api.security import hash_token, new_token
from devstack import PrivatePostgres, postgres_url
from devstack.ports import free_port, wait_until
from storage.migrate import migrate_up

RESULTS = Path(__file__).parent / "results" / "api.json"
SOURCES = 10_000
READINGS_PER_SOURCE = 100  # 1,000,000 readings
CONCURRENCY = 16
TOKEN = new_token()  # the server's only key (its hash in API_KEYS); every request sends it
ROUNDS = 3
TARGET_P99_MS = 50.0
T0 = "2025-06-01 00:00:00+00"

_LOAD = [
    # 8k vehicles, 2k building devices across 20 sites x 10 zones.
    f"""INSERT INTO source_state (source_id, kind, fleet_id, site_id, zone_id, last_seen, last_schema, latest)
    SELECT format('src-%s', lpad(i::text, 5, '0')), CASE WHEN i < 8000 THEN 'vehicle' ELSE 'building_device' END,
           'fleet-' || (i % 10), CASE WHEN i >= 8000 THEN 'site-' || (i % 20) END,
           CASE WHEN i >= 8000 THEN 'zone-' || (i % 10) END, now() - (i % 600) * interval '1 second', 'x', '{{}}'
    FROM generate_series(0, {SOURCES - 1}) i""",
    f"""INSERT INTO readings
    SELECT '{T0}'::timestamptz + m * interval '1 minute', format('src-%s', lpad(i::text, 5, '0')), 'fleet-' || (i % 10),
           'tire.reading', 'pressure_kpa', 200 + (i * 7 + m) % 50, format('e-%s-%s', i, m), 'FL'
    FROM generate_series(0, {SOURCES - 1}) i, generate_series(0, {READINGS_PER_SOURCE - 1}) m""",
    f"""INSERT INTO aggregates
    SELECT '{T0}'::timestamptz + w * interval '5 minutes', '{T0}'::timestamptz + (w + 1) * interval '5 minutes', 300,
           format('src-%s', lpad(i::text, 5, '0')), 'fleet-' || (i % 10), 'tire.reading', 'pressure_kpa',
           220, 200, 249, 5, 'FL'
    FROM generate_series(0, {SOURCES - 1}) i, generate_series(0, {READINGS_PER_SOURCE // 5 - 1}) w""",
    # 50k alarms: every 5th source has one open alarm, the rest are cleared history.
    f"""INSERT INTO alarms (alert_id, alert_type, severity, status, source_id, fleet_id, first_seen, last_seen,
                            cleared_at, count, value, threshold, message)
    SELECT format('al-%s-%s', i, k), (ARRAY['tire_pressure_low','speeding','battery_low','co2_high'])[1 + (i + k) % 4],
           (ARRAY['info','warning','critical'])[1 + (i + k) % 3], CASE WHEN k = 0 AND i % 5 = 0 THEN 'active' ELSE 'cleared' END,
           format('src-%s', lpad(i::text, 5, '0')), 'fleet-' || (i % 10),
           '{T0}'::timestamptz + (i + k * 977) % 100000 * interval '1 minute',
           '{T0}'::timestamptz + ((i + k * 977) % 100000 + 5) * interval '1 minute',
           CASE WHEN k = 0 AND i % 5 = 0 THEN NULL ELSE '{T0}'::timestamptz + ((i + k * 977) % 100000 + 5) * interval '1 minute' END,
           1 + k, 190, 200, ''
    FROM generate_series(0, {SOURCES - 1}) i, generate_series(0, 4) k""",
    "ANALYZE",
]


def _scenarios(rng: random.Random) -> dict:
    def source() -> str:
        return f"src-{rng.randrange(SOURCES):05d}"

    return {
        "select1": lambda: "/bench/select1",
        "fleet_status": lambda: "/fleet?limit=100",
        "trends": lambda: (
            f"/sources/{source()}/trends?metric=pressure_kpa&tire=FL&resolution=5m"
            "&since=2025-06-01T00:00:00Z&until=2025-06-01T02:00:00Z"
        ),
        "alarms": lambda: f"/alarms?status=active&limit=50&severity={rng.choice(['info', 'warning', 'critical'])}",
    }


class _Connection:
    """A minimal HTTP/1.1 keep-alive client (GET only). httpx costs about a millisecond of CPU per
    request, and the client shares the 2 cores with the server and PostgreSQL: measured through
    httpx, even `SELECT 1` showed a p99 over 100 ms of the client's own making."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        return cls(*await asyncio.open_connection(host, port), host)

    async def get(self, path: str) -> tuple[int, bytes]:
        head = f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        self.writer.write(head.encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if length is None:  # every API response carries one; anything else is a harness error
            raise RuntimeError(f"response without content-length: {head[:200]!r}")
        body = await self.reader.readexactly(int(length.group(1)))
        return int(head[9:12]), body

    def close(self) -> None:
        self.writer.close()


async def _load(host: str, port: int, path_for, requests: int) -> dict:
    latencies: list[float] = []
    errors = 0
    queue = iter(range(CONCURRENCY * 4))  # warm-up: open the connections and fill the pool

    async def worker(connection: _Connection) -> None:
        nonlocal errors
        for _ in queue:
            path = path_for()
            started = time.perf_counter()
            status, body = await connection.get(path)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors += 1
                print(f"bench api: {status} {path}: {body[:200]!r}", file=sys.stderr)

    connections = [await _Connection.open(host, port) for _ in range(CONCURRENCY)]
    try:
        await asyncio.gather(*(worker(connection) for connection in connections))
        started = time.perf_counter()
        latencies.clear()
        queue = iter(range(requests))
        await asyncio.gather(*(worker(connection) for connection in connections))
        elapsed = time.perf_counter() - started
    finally:
        for connection in connections:
            connection.close()
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": quantiles[98] * 1000,
        "rps": len(latencies) / elapsed,
        "errors": errors,
    }


def _database(server_url: str) -> str:
    name = f"bench_api_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def _measure(server_url: str, quick: bool) -> dict:
    database = _database(server_url)
    migrate_up(database)
    started = time.perf_counter()
    with psycopg.connect(database, autocommit=True) as conn:
        for statement in _LOAD:
            conn.execute(statement)
        readings = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    print(f"bench api: loaded {readings:,} readings in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database, "LOG_LEVEL": "WARNING", "API_POOL_MAX": "10"}
    env |= {"API_KEYS": f"bench:{hash_token(TOKEN)}", "API_READ_AUTH": "true"}  # as deployed: reads need a key
    server = subprocess.Popen([sys.executable, "-m", "tests.bench.bench_api", "serve", "--port", str(port)], env=env)
    try:
        wait_until(lambda: _ready(f"http://127.0.0.1:{port}"), 30, "bench API server")
        requests, rounds = (300, 1) if quick else (2000, ROUNDS)
        scenarios = _scenarios(random.Random(7))
        # Interleaved rounds, each statistic the median over them: the shared cores' speed drifts
        # by up to 1.5x between minutes (SELECT 1 measured at 910 and 1430 requests/s in one hour).
        samples: dict[str, list[dict]] = {name: [] for name in scenarios}
        for round_number in range(1, rounds + 1):
            for name, path_for in scenarios.items():
                samples[name].append(asyncio.run(_load("127.0.0.1", port, path_for, requests)))
            print(f"bench api: round {round_number}/{rounds}: " + ", ".join(
                f"{name} p99 {runs[-1]['p99_ms']:.1f} ms" for name, runs in samples.items()
            ), file=sys.stderr, flush=True)  # fmt: skip
        results = {
            name: {stat: statistics.median(run[stat] for run in runs) for stat in runs[0]} | {
                "errors": sum(run["errors"] for run in runs), "p99_ms_rounds": [round(r["p99_ms"], 2) for r in runs]
            }
            for name, runs in samples.items()
        }  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=10)
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{urlsplit(database).path[1:]}" WITH (FORCE)')
    results["readings"] = readings
    return results


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def run(quick: bool = False) -> dict:
    external = postgres_url()
    if external:
        measured = _measure(external, quick)
    else:
        with PrivatePostgres() as server:
            measured = _measure(server.url, quick)
    base = measured["select1"]
    figures, baseline, ratios = {}, {}, {}
    for name in ("fleet_status", "trends", "alarms"):
        for stat in ("p50_ms", "p99_ms", "rps"):
            key = f"{name}_{stat}"
            figures[key] = round(measured[name][stat], 2)
            baseline[key] = round(base[stat], 2)
            ratios[key] = round(measured[name][stat] / base[stat], 2)
    errors = sum(measured[name]["errors"] for name in ("select1", "fleet_status", "trends", "alarms"))
    figures["errors"] = errors
    figures["fleet_status_p99_ms_rounds"] = measured["fleet_status"]["p99_ms_rounds"]
    baseline["fleet_status_p99_ms_rounds"] = measured["select1"]["p99_ms_rounds"]
    return {
        "component": "api",
        "figures": figures,
        "baseline": baseline,
        "ratios": ratios,
        "targets": {"fleet_status_p99_ms": f"< {TARGET_P99_MS:g} ms", "errors": "0"},
        "met": figures["fleet_status_p99_ms"] < TARGET_P99_MS and errors == 0,
        "setup": {
            "readings": measured["readings"],
            "sources": SOURCES,
            "alarms": SOURCES * 5,
            "concurrency": CONCURRENCY,
            "requests_per_endpoint_per_round": 300 if quick else 2000,
            "rounds": 1 if quick else ROUNDS,
            "baseline": "GET /bench/select1 (SELECT 1 through the same app, pool and middleware)",
        },
    }


async def select1(db: Db) -> dict:
    """The baseline: a query that costs the database nothing, through the same app and pool."""
    return await (await db.execute("SELECT 1 AS one")).fetchone()


def serve(argv: list[str]) -> None:
    """The API app plus the baseline route, run by uvicorn like `python -m api`."""
    from api.app import create_app
    from api.server import serve
    from api.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_api serve")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    app = create_app(settings)
    # The baseline pays the key check too, so the ratios compare the queries alone.
    app.add_api_route("/bench/select1", select1, include_in_schema=False, dependencies=KEY_REQUIRED)
    serve(app, settings, "127.0.0.1", args.port)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        serve(argv[1:])
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.bench_api",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests per endpoint (same data size)")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    print(f"{'figure':<28}{'value':>12}{'baseline':>12}{'ratio':>8}")
    for key, value in result["figures"].items():
        print(f"{key:<28}{value!s:>12}{result['baseline'].get(key, '')!s:>12}{result['ratios'].get(key, ''):>8}")
    print(f"target fleet status p99 < {TARGET_P99_MS:g} ms: {'met' if result['met'] else 'NOT met'}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
