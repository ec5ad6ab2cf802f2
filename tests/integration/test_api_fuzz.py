"""OpenAPI fuzzing (schemathesis) of the running API on real PostgreSQL with data: no request it
generates may cause a server error, and every documented response must match its schema."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.security import hash_token
from devstack.ports import free_port, wait_until
from storage.migrate import migrate_up
from tests.integration.test_api import TOKEN, seed

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def api_url(postgres_server):
    name = f"fuzz_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database = urlunsplit(urlsplit(postgres_server)._replace(path=f"/{name}"))
    migrate_up(database)
    seed(database)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database, "API_KEYS": f"fuzz:{hash_token(TOKEN)}", "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen([sys.executable, "-m", "api", "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), 30, "API server")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(scope="module")
def api_schema(api_url):
    return schemathesis.openapi.from_url(f"{api_url}/openapi.json")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, api_url):
    case.call_and_validate(
        base_url=api_url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        checks=[not_a_server_error, response_schema_conformance],
    )
