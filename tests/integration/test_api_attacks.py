"""The API probed as an attacker would: every route of the app's own route table without a key
and with a wrong one, oversized headers and a flood of requests against the real uvicorn process,
extreme times and NUL characters in every parameter that takes them, the database down. Each must
get its documented 4xx/503 (never a 500, never a hang) with the request id in header and body.

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
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from api.app import create_app
from api.observability import RequestIdFilter
from api.params import encode_cursor
from api.security import hash_token, parse_api_keys
from api.settings import Settings
from devstack.ports import free_port, wait_until
from storage.migrate import migrate_up
from tests.support.api_seed import TOKEN, seed

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {TOKEN}"}
KEYS = parse_api_keys(f"operator:{hash_token(TOKEN)}")
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
