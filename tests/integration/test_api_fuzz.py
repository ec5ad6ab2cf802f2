"""OpenAPI fuzzing (schemathesis) of the running API (authenticated, as deployed) on real
PostgreSQL with data: valid and invalid requests (positive and negative generation) never cause a
server error, invalid ones are refused with a 4xx, declared authentication is enforced (the key
removed, the same request is refused), every documented response matches its schema; and a
stateful run follows the links schemathesis infers (alarm list -> one alarm -> acknowledge/clear)."""

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
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import ignored_auth, negative_data_rejection, response_schema_conformance

from api.security import hash_token
from devstack.ports import free_port, wait_until
from storage.migrate import migrate_up
from tests.support.api_seed import TOKEN, seed

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
    # The fuzzer judges input handling, not capacity: GET /fleet failed it once as a server error
    # right after a Flink run had loaded the machine (not reproduced in 9 runs since), which the 3 s
    # default pool wait turns into a 503 by design (test_api_attacks covers that answer).
    env["API_POOL_TIMEOUT_S"] = "30"
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


AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [not_a_server_error, response_schema_conformance, negative_data_rejection, ignored_auth]


@pytest.fixture(scope="module")
def api_schema(api_url):
    loaded = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    loaded.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    return loaded


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, api_url):
    case.call_and_validate(base_url=api_url, headers=AUTH, checks=CHECKS)


def test_stateful_sequences(api_schema, api_url):
    class Sequences(api_schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"base_url": api_url, "headers": AUTH}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            # The checks above, on each step of a sequence (the defaults would add ones the API
            # does not claim, e.g. every status code documented).
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    Sequences.run(
        settings=settings(
            max_examples=20, stateful_step_count=6, deadline=None, suppress_health_check=list(HealthCheck)
        )
    )
