"""The API probed as an attacker would: every route of the app's own route table without a key
and with a wrong one, oversized headers and a flood of requests against the real uvicorn process,
extreme times and NUL characters in every parameter that takes them, the database down. Each must
get its documented 4xx/503 (never a 500, never a hang) with the request id in header and body.
Keys of one fleet see exactly what an all-fleets key sees on a copy of the database holding only
that fleet's rows; read keys cannot change alarms; another fleet's alarms cannot be changed.

Routes and parameters are read from the app and its OpenAPI document, so a new route or
parameter is covered without touching this file."""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import psycopg
import pytest

from api.app import create_app
from api.observability import RequestIdFilter
from api.params import encode_cursor
from api.security import hash_token, key_entry, parse_api_keys
from api.settings import Settings
from devstack.ports import free_port, wait_until
from storage.migrate import migrate_up
from tests.support.api_seed import BASE, FLEETS, TOKEN, seed, seed_both_fleets

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ADMIN_TOKEN = "fm_test-admin-token"
READER_TOKEN = "fm_test-fleet-a-reader-token"
SCOPED = {"fleet-a": "fm_test-fleet-a-operator-token", "fleet-b": "fm_test-fleet-b-operator-token"}
KEYS = parse_api_keys(
    ", ".join(
        [
            f"operator:{hash_token(TOKEN)}",  # the older form: every fleet, role operate
            key_entry("admin", ADMIN_TOKEN, "admin", None),
            key_entry("reader-a", READER_TOKEN, "read", ["fleet-a"]),
            *(key_entry(f"ops-{fleet}", token, "operate", [fleet]) for fleet, token in SCOPED.items()),
        ]
    )
)
OPEN_ALWAYS = {"/health", "/ready"}
OPEN_BY_DEFAULT = OPEN_ALWAYS | {"/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# Values that make each request otherwise valid (so only the key decides), by parameter name.
SAMPLES = {"source_id": "veh-1", "alert_id": "a1", "region_id": "r-1", "metric": "pressure_kpa"}
EXTREME_TIMES = [
    "0001-01-01T00:00:00Z",  # was OverflowError (until - default span): 500
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-23:59",  # past datetime's range once in UTC
    "0001-01-01T00:00:00+23:59",
    "1969-12-31T23:59:59Z",
]
NOT_RFC3339 = ["0.5", "1741000000", "2025-03-03"]  # pydantic read numbers as Unix time (found by the fuzzer)


def dead_database_url() -> str:
    return f"postgresql://fleet@127.0.0.1:{free_port()}/nothing?connect_timeout=2"  # nothing listens


async def _client(app):
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a 500 is an answer here
    return httpx.AsyncClient(transport=transport, base_url="http://api")


@pytest.fixture
async def app(pg_url):
    migrate_up(pg_url)
    seed(pg_url)
    application = create_app(Settings(database_url=pg_url, api_keys=KEYS, pool_max=4))
    async with application.router.lifespan_context(application):
        await application.state.pool.wait()
        yield application


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def served_routes(app) -> list:
    """Every route the app serves, with its path and methods (and `dependant` for API routes).
    FastAPI >= 0.16x keeps included routers as such in app.routes; their effective routes are
    the ones it serves."""
    found = []
    for route in app.routes:
        expand = getattr(route, "effective_route_contexts", None)
        found += list(expand()) if expand else [route]
    return found


def route_requests(app) -> list[tuple[str, str]]:
    """(method, url) for every route the app serves, path and required query parameters filled."""
    found = []
    for route in served_routes(app):
        path, query = route.path, {}
        dependant = getattr(route, "dependant", None)
        if dependant is not None:
            for param in dependant.path_params:
                path = path.replace("{" + param.name + "}", SAMPLES.get(param.name, "x"))
            query = {p.name: SAMPLES.get(p.name, "x") for p in dependant.query_params if p.field_info.is_required()}
        url = str(httpx.URL(path, params=query))
        found += [(method, url) for method in sorted(route.methods - {"HEAD"})]
    return found


def operations(schema: dict) -> list[tuple[str, str, dict]]:
    """(method, url with path parameters filled, parameters) of every documented operation."""
    found = []
    for template, item in schema["paths"].items():
        for method, operation in item.items():
            path = template
            for param in operation.get("parameters", []):
                if param["in"] == "path":
                    path = path.replace("{" + param["name"] + "}", SAMPLES.get(param["name"], "x"))
            found.append((method.upper(), path, operation))
    return found


def required_query(operation: dict) -> dict:
    return {
        p["name"]: SAMPLES.get(p["name"], "x")
        for p in operation.get("parameters", [])
        if p["in"] == "query" and p.get("required")
    }


def assert_request_id(response: httpx.Response) -> None:
    request_id = response.headers["x-request-id"]
    assert response.json()["request_id"] == request_id, response.text


async def test_every_route_needs_a_key_except_the_open_ones(app):
    async with await _client(app) as http:
        requests = route_requests(app)
        assert len(requests) >= 18  # the table is really read: 14 data routes, 2 mutations, probes, docs
        for method, url in requests:
            anonymous = await http.request(method, url)
            wrong = await http.request(method, url, headers={"Authorization": "Bearer fm_not-a-key"})
            wrong_header = await http.request(method, url, headers={"X-API-Key": "fm_not-a-key"})
            keyed = await http.request(method, url, headers=AUTH)
            assert keyed.status_code not in (401, 403) and keyed.status_code < 500, (method, url, keyed.text)
            if httpx.URL(url).path in OPEN_BY_DEFAULT:
                assert anonymous.status_code == keyed.status_code, (method, url)
                continue
            for response in (anonymous, wrong, wrong_header):
                assert response.status_code == 401, (method, url, response.status_code)
                assert response.headers["www-authenticate"] == "Bearer"
                assert_request_id(response)


async def test_locked_down_metrics_and_docs(pg_url):
    migrate_up(pg_url)
    settings = Settings(database_url=pg_url, api_keys=KEYS, metrics_auth=True, docs_auth=True)
    locked = create_app(settings)
    async with locked.router.lifespan_context(locked), await _client(locked) as http:
        for method, url in route_requests(locked):
            anonymous = await http.request(method, url)
            assert (anonymous.status_code == 401) == (httpx.URL(url).path not in OPEN_ALWAYS), (method, url)
        assert (await http.get("/openapi.json", headers=AUTH)).json()["paths"]
        assert (await http.get("/docs", headers=AUTH)).status_code == 404  # the page could not send the key


async def test_openapi_documents_the_key_on_every_protected_operation(app):
    async with await _client(app) as http:
        schema = (await http.get("/openapi.json")).json()
    for method, path, operation in operations(schema):
        if path in OPEN_BY_DEFAULT:
            assert "security" not in operation, path
            continue
        assert {"HTTPBearer": []} in operation["security"] and {"APIKeyHeader": []} in operation["security"], path
        assert {"401", "403"} <= set(operation["responses"]), (method, path)


async def test_extreme_times_are_a_422_naming_the_parameter(app):
    async with await _client(app) as http:
        schema = (await http.get("/openapi.json")).json()
        timed = [
            (method, path, operation, name)
            for method, path, operation in operations(schema)
            for name in ("since", "until")
            if any(p["name"] == name for p in operation.get("parameters", []))
        ]
        # /kpis/driving, both heatmaps, /metrics/region, trends, /alarms, /alarms/counts
        assert len({path for _, path, _, _ in timed}) >= 7
        for method, path, operation, name in timed:
            for value in EXTREME_TIMES + NOT_RFC3339:
                params = required_query(operation) | {name: value}
                response = await http.request(method, path, params=params, headers=AUTH)
                assert response.status_code == 422, (path, name, value, response.text)
                error = response.json()["detail"][0]
                expected = "1970-01-01T00:00:00Z" if value in EXTREME_TIMES else "RFC 3339"
                assert error["loc"] == ["query", name] and expected in error["msg"], error
                assert_request_id(response)


async def test_cursor_with_nul_or_a_forged_time_is_a_422(app):
    forged = [
        encode_cursor("a\x00"),  # /fleet's (source_id,): was psycopg.DataError, a 500
        encode_cursor("2025-03-03T00:00:00+00:00", "a\x00"),  # /alarms' (last_seen, alert_id)
        encode_cursor("0001-01-01T00:00:00+23:59", "a1"),
        "\x00",
    ]
    async with await _client(app) as http:
        schema = (await http.get("/openapi.json")).json()
        paged = [
            (m, p, o) for m, p, o in operations(schema) if any(q["name"] == "cursor" for q in o.get("parameters", []))
        ]
        assert {path for _, path, _ in paged} >= {"/fleet", "/alarms"}
        for method, path, _operation in paged:
            for cursor in forged:
                response = await http.request(method, path, params={"cursor": cursor}, headers=AUTH)
                assert response.status_code == 422, (path, cursor, response.text)
                assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


async def test_nul_in_any_parameter_is_never_a_server_error(app):
    async with await _client(app) as http:
        schema = (await http.get("/openapi.json")).json()
        for method, path, operation in operations(schema):
            for param in (p for p in operation.get("parameters", []) if p["in"] == "query"):
                for value in ("\x00", "a\x00b", "%00"):
                    params = required_query(operation) | {param["name"]: value}
                    response = await http.request(method, path, params=params, headers=AUTH)
                    assert response.status_code < 500, (method, path, param["name"], response.text)


async def test_a_server_error_carries_the_request_id_in_answer_and_log(app, caplog):
    async def boom():
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    caplog.handler.addFilter(RequestIdFilter())
    caplog.set_level(logging.INFO)
    async with await _client(app) as http:
        response = await http.get("/boom", headers={"X-Request-ID": "attack-500"})
        assert response.status_code == 500 and response.json() == {
            "detail": "internal server error",
            "request_id": "attack-500",
        }
        assert response.headers["x-request-id"] == "attack-500" and "a bug" not in response.text
        for status, request in ((404, http.get("/nope")), (422, http.get("/alarms?limit=0", headers=AUTH))):
            answered = await request
            assert answered.status_code == status
            assert_request_id(answered)
    lines = [r for r in caplog.records if r.getMessage() in ("unhandled error", "request")]
    assert {r.getMessage() for r in lines if r.request_id == "attack-500"} == {"unhandled error", "request"}
    assert next(r for r in lines if r.getMessage() == "unhandled error").exc_info  # the traceback is logged


async def test_database_down_key_first_then_a_fast_503():
    settings = Settings(database_url=dead_database_url(), api_keys=KEYS, pool_timeout_s=2)
    down = create_app(settings)
    async with down.router.lifespan_context(down), await _client(down) as http:
        for method, url in (("POST", "/alarms/a1/acknowledge"), ("POST", "/alarms/a1/clear"), ("GET", "/fleet")):
            started = time.monotonic()
            response = await http.request(method, url)
            # Before: the connection was borrowed first, and a 500 came after the pool's 30 s.
            assert response.status_code == 401 and time.monotonic() - started < 1, (url, response.text)
        started = time.monotonic()
        response = await http.get("/fleet", headers=AUTH)
        elapsed = time.monotonic() - started
        assert response.status_code == 503 and 1.5 < elapsed < 6, (elapsed, response.text)
        assert "API_POOL_TIMEOUT_S" in response.json()["detail"] and response.headers["retry-after"]
        assert_request_id(response)
        assert (await http.get("/health")).status_code == 200 and (await http.get("/ready")).status_code == 503


# ---------------------------------------------------------------- keys of one fleet, read-only keys

# Path parameters: one object of each fleet (a new path parameter needs its pair here).
OBJECTS = {"source_id": ("veh-1", "bld-1"), "alert_id": ("a4", "a1"), "region_id": ("r-1",)}
WINDOW = {"since": (BASE - timedelta(hours=1)).isoformat(), "until": (BASE + timedelta(days=2)).isoformat()}
VARIANTS = {"metric": ("latitude",), "resolution": ("raw", "5m", "1h", "1d")}


def scoped_requests(app) -> list[tuple[str, str, dict]]:
    """(route path, url, query) of every data read the app serves, for an object of each fleet and
    every variant of the parameters that choose a query (trends' resolution)."""
    found = []
    for route in served_routes(app):
        dependant = getattr(route, "dependant", None)
        if dependant is None or "GET" not in route.methods or route.path in OPEN_BY_DEFAULT:
            continue
        urls = [route.path]
        for param in dependant.path_params:
            urls = [url.replace("{" + param.name + "}", value) for url in urls for value in OBJECTS[param.name]]
        names = {param.name for param in dependant.query_params}
        queries = [{name: value for name, value in WINDOW.items() if name in names}]
        for name, values in VARIANTS.items():
            if name in names:
                queries = [query | {name: value} for query in queries for value in values]
        found += [(route.path, url, query) for url in urls for query in queries]
    return found


def keep_only(url: str, fleet: str) -> None:
    """Delete every other fleet's rows: of each table with a fleet_id column (read from the schema,
    so a new table is included), and the devices whose fleet is their source_state row's."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "DELETE FROM device_inactivity WHERE device_id IN (SELECT source_id FROM source_state WHERE fleet_id <> %s)",
            (fleet,),
        )
        tables = conn.execute(
            "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t"
            " USING (table_schema, table_name) WHERE c.column_name = 'fleet_id' AND t.table_type = 'BASE TABLE'"
            " AND c.table_schema = current_schema()"
        ).fetchall()
        assert {"alarms", "source_state", "readings", "alarm_audit"} <= {table for (table,) in tables}
        for (table,) in tables:
            conn.execute(f'DELETE FROM "{table}" WHERE fleet_id IS DISTINCT FROM %s', (fleet,))


@pytest.fixture
async def fleet_apps(pg_url, postgres_server):
    """{"all": the app on both fleets' rows, fleet: the app on a copy holding only that fleet's}."""
    migrate_up(pg_url)
    seed(pg_url)
    seed_both_fleets(pg_url)
    template = urlsplit(pg_url).path.lstrip("/")
    urls = {"all": pg_url}
    for fleet in SCOPED:
        name = f"{template}_{fleet.replace('-', '_')}_{uuid.uuid4().hex[:4]}"
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        urls[fleet] = urlunsplit(urlsplit(pg_url)._replace(path=f"/{name}"))
        keep_only(urls[fleet], fleet)
    apps = {}
    try:
        async with AsyncExitStack() as stack:
            for which, url in urls.items():
                application = create_app(Settings(database_url=url, api_keys=KEYS, pool_max=2))
                await stack.enter_async_context(application.router.lifespan_context(application))
                await application.state.pool.wait()
                apps[which] = await stack.enter_async_context(await _client(application))
            apps["app"] = application
            yield apps
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            for which, url in urls.items():
                if which != "all":
                    admin.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path.lstrip("/")}" WITH (FORCE)')


def comparable(response: httpx.Response):
    """The answer without what differs between two identical requests (ids, seconds of silence)."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("request_id", "silent_for_s")}
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    return response.status_code, strip(response.json())


async def test_a_fleet_key_sees_what_that_fleet_alone_holds_on_every_route(fleet_apps):
    """Every data read of the route table, with a key of each fleet, answers exactly what an
    all-fleets key answers on a copy of the database holding that fleet's rows only; and every
    route shows an all-fleets key something of each fleet (the seed gives every route data of
    both), so hiding the other fleet is really observed."""
    full, requests = fleet_apps["all"], scoped_requests(fleet_apps["app"])
    assert len({path for path, _, _ in requests}) >= 13  # the table is really read
    observed: dict[str, set[str]] = {}
    for path, url, query in requests:
        everything = comparable(await full.get(url, params=query, headers=bearer(ADMIN_TOKEN)))
        assert everything[0] < 500, (url, query, everything)
        for fleet, token in SCOPED.items():
            scoped = await full.get(url, params=query, headers=bearer(token))
            alone = comparable(await fleet_apps[fleet].get(url, params=query, headers=bearer(ADMIN_TOKEN)))
            assert comparable(scoped) == alone, (fleet, url, query)
            if alone != everything:  # the other fleet's rows showed to the all-fleets key
                observed.setdefault(path, set()).add(fleet)
    unobserved = {path: set(SCOPED) - fleets for path, fleets in observed.items() if fleets != set(SCOPED)}
    unobserved |= {path: set(SCOPED) for path, _, _ in requests if path not in observed}
    assert not unobserved, f"no other fleet's data seen on these routes (seed some): {unobserved}"


def mutations(app) -> list[tuple[str, str]]:
    """(method, URL template) of every route that changes something (POST/PUT/PATCH/DELETE)."""
    changing = {"POST", "PUT", "PATCH", "DELETE"}
    return sorted(
        (method, route.path)
        for route in served_routes(app)
        if getattr(route, "dependant", None)
        for method in route.methods & changing
    )


def alarm_row(url: str, alert_id: str) -> tuple:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT * FROM alarms WHERE alert_id = %s", (alert_id,)).fetchone()
        audit = conn.execute("SELECT count(*) FROM alarm_audit WHERE alert_id = %s", (alert_id,)).fetchone()[0]
    return row, audit


async def test_read_keys_and_other_fleets_keys_cannot_change_alarms(fleet_apps, pg_url):
    full = fleet_apps["all"]
    changing = mutations(fleet_apps["app"])
    assert {("POST", "/alarms/{alert_id}/acknowledge"), ("POST", "/alarms/{alert_id}/clear")} <= set(changing)
    for method, template in changing:
        own, other = (template.replace("{alert_id}", alert_id) for alert_id in ("a4", "a1"))  # fleet-a's, fleet-b's
        before = alarm_row(pg_url, "a4"), alarm_row(pg_url, "a1")
        refused = await full.request(method, own, headers=bearer(READER_TOKEN))
        assert refused.status_code == 403, (own, refused.text)
        assert "role operate or admin" in refused.json()["detail"] and "role is read" in refused.json()["detail"]
        assert_request_id(refused)
        hidden = await full.request(method, other, headers=bearer(SCOPED["fleet-a"]), json={"note": "not mine"})
        assert hidden.status_code == 404, (other, hidden.text)  # as if it did not exist: nothing revealed
        assert hidden.json()["detail"] == "alarm 'a1' not found"  # what a missing alarm gets
        assert (alarm_row(pg_url, "a4"), alarm_row(pg_url, "a1")) == before, template  # unchanged, no audit row
    audit = await full.get("/alarms/a4/audit", headers=bearer(READER_TOKEN))
    assert audit.status_code == 403 and "role operate or admin" in audit.json()["detail"]
    assert (await full.get("/alarms/a1/audit", headers=bearer(SCOPED["fleet-a"]))).status_code == 404


async def test_acknowledge_and_clear_are_audited_with_who_and_when(fleet_apps, pg_url):
    full = fleet_apps["all"]
    started = datetime.now(UTC)
    acked = await full.post("/alarms/a1/acknowledge", headers=bearer(SCOPED["fleet-b"]), json={"note": "on it"})
    assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "ops-fleet-b", acked.text
    again = await full.post("/alarms/a1/acknowledge", headers=bearer(SCOPED["fleet-b"]))  # idempotent: no new record
    assert again.status_code == 200 and again.json()["acknowledged_at"] == acked.json()["acknowledged_at"]
    cleared = await full.post("/alarms/a1/clear", headers=bearer(ADMIN_TOKEN))  # no body: the note is optional
    assert cleared.status_code == 200 and cleared.json()["cleared_by"] == "admin", cleared.text
    ended = datetime.now(UTC)
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT action, key_name, fleet_id, at, note FROM alarm_audit WHERE alert_id = 'a1' ORDER BY id"
        ).fetchall()
        alarm = conn.execute("SELECT cleared_by, cleared_at FROM alarms WHERE alert_id = 'a1'").fetchone()
    assert [row[:3] + row[4:] for row in rows] == [
        ("acknowledge", "ops-fleet-b", "fleet-b", "on it"),
        ("clear", "admin", "fleet-b", None),
    ]
    assert all(started <= row[3] <= ended for row in rows) and alarm == ("admin", rows[1][3])
    listed = await full.get("/alarms/a1/audit", headers=bearer(SCOPED["fleet-b"]))
    assert [(item["action"], item["key_name"]) for item in listed.json()["items"]] == [
        ("acknowledge", "ops-fleet-b"),
        ("clear", "admin"),
    ]
    bad_note = await full.post("/alarms/a2/acknowledge", headers=bearer(ADMIN_TOKEN), json={"note": "a\x00b"})
    assert bad_note.status_code == 422 and bad_note.json()["detail"][0]["loc"] == ["body", "note"]


async def test_the_older_key_form_sees_every_fleet_and_may_operate(fleet_apps):
    full = fleet_apps["all"]
    fleets = {item["fleet_id"] for item in (await full.get("/fleet", headers=AUTH)).json()["items"]}
    assert fleets == set(FLEETS.values())
    assert (await full.post("/alarms/a4/clear", headers=AUTH)).json()["cleared_by"] == "operator"
    reader_sees = (await full.get("/fleet", headers=bearer(READER_TOKEN))).json()["items"]
    assert {item["fleet_id"] for item in reader_sees} == {"fleet-a"}


# ---------------------------------------------------------------- the real process (uvicorn)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python -m api` as deployed, its database down (requests then wait the pool timeout: a
    way to hold them in flight), at most 2 requests in flight."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("api") / "api.log"
    env = {
        **os.environ,
        "DATABASE_URL": dead_database_url(),
        "API_KEYS": f"operator:{hash_token(TOKEN)}",
        "API_MAX_CONCURRENCY": "2",
        "API_POOL_TIMEOUT_S": "4",
    }
    for name in ("API_READ_AUTH", "API_MAX_HEADER_BYTES", "API_KEYS_FILE"):
        env.pop(name, None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "api", "--port", str(port)], env=env, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _health(url), 30, "API process")
        yield {"url": url, "port": port, "process": psutil.Process(process.pid), "log": log_path}
    finally:
        process.terminate()
        process.wait(timeout=10)


def _health(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def send_headers(port: int, header_bytes: int, header_count: int = 1) -> tuple[int | None, int]:
    """Send a request whose headers total header_bytes (header_count of them) as a client that
    stops once answered: (the status answered, bytes sent by then)."""
    size = header_bytes // header_count
    sent, piece = 0, b"a" * 65536
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: api\r\n")
            for index in range(header_count):
                sock.sendall(f"X-Pad-{index}: ".encode())
                for offset in range(0, size, len(piece)):
                    if select.select([sock], [], [], 0)[0]:  # answered (or closed): stop sending
                        return _status(sock), sent
                    sent += sock.send(piece[: size - offset])
                sock.sendall(b"\r\n")
            sock.sendall(b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _status(sock), sent


def _status(sock: socket.socket) -> int | None:
    try:
        head = sock.recv(64)
    except (ConnectionResetError, TimeoutError):
        return None
    return int(head[9:12]) if head.startswith(b"HTTP/1.1 ") else None


def test_oversized_headers_are_refused_with_bounded_memory(server):
    rss_before = server["process"].memory_info().rss
    # `sent` counts what the kernel took, its socket buffers included (a few MiB on loopback):
    # far short of the whole request means the server answered before reading it.
    status, sent = send_headers(server["port"], 64 * 1024 * 1024)  # one 64 MiB header
    assert status == 431 and sent < 16 * 1024 * 1024, (status, sent)
    status, sent = send_headers(server["port"], 64 * 1024 * 1024, header_count=8)  # 8 of 8 MiB
    assert status == 431 and sent < 16 * 1024 * 1024, (status, sent)
    # Eight at once, as the finding's attack (72 -> 593 MiB before).
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: send_headers(server["port"], 8 * 1024 * 1024), range(8)))
    assert all(status == 431 for status, _ in results), results
    growth = server["process"].memory_info().rss - rss_before
    assert growth < 32 * 1024 * 1024, f"RSS grew {growth / 2**20:.0f} MiB"
    # Under the limit, several requests on one connection: each request's count starts afresh.
    with httpx.Client(base_url=server["url"]) as http:
        for _ in range(3):
            assert http.get("/health", headers={"X-Pad": "a" * 20_000}).status_code == 200


def test_requests_over_the_concurrency_limit_get_a_503_at_once(server):
    """Four requests at once, two allowed in flight: the two admitted wait the pool's 4 s (the
    database is down), so the other two arrive while both slots are taken."""
    url = server["url"]

    def fetch(_) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        response = httpx.get(url + "/fleet", headers=AUTH, timeout=30)
        return response, time.monotonic() - started

    with ThreadPoolExecutor(4) as pool:
        pending = [pool.submit(fetch, n) for n in range(4)]
        assert httpx.get(url + "/health", timeout=2).status_code == 200  # probes are exempt
        results = [future.result() for future in pending]
    refused = [(r, s) for r, s in results if "API_MAX_CONCURRENCY" in r.text]
    waited = [(r, s) for r, s in results if "API_POOL_TIMEOUT_S" in r.text]
    assert len(refused) == 2 and len(waited) == 2, [(r.status_code, r.text, s) for r, s in results]
    for response, seconds in refused:
        assert response.status_code == 503 and seconds < 1 and response.headers["retry-after"] == "1"
        assert_request_id(response)
    # The admitted ones: the pool's short timeout, a 503 naming it, a log line with the request id.
    for response, seconds in waited:
        assert response.status_code == 503 and seconds < 8
        assert_request_id(response)
    lines = [json.loads(line) for line in server["log"].read_text().splitlines() if line.startswith("{")]
    unavailable = {line["request_id"] for line in lines if line["msg"] == "database unavailable"}
    assert {response.headers["x-request-id"] for response, _ in waited} <= unavailable
