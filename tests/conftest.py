"""Shared fixtures: a real PostgreSQL server and a real Kafka-protocol broker.

PostgreSQL: DATABASE_URL when set, else a private server on a free port; every test that asks
for `pg_url` gets a database of its own, dropped afterwards. Broker: the Tansu binary on a free
port for the whole session; `kafka_topics` creates fresh, uniquely named topics per test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from devstack import Broker, PrivatePostgres, postgres_url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a server where tests may create databases."""
    external = postgres_url()
    if external:
        yield external
        return
    with PrivatePostgres() as server:
        yield server.url


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database for this test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(postgres_server, name)
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    with Broker() as running:
        yield running


@pytest.fixture
def kafka_topics(broker: Broker) -> Callable[..., list[str]]:
    """`kafka_topics("tires", "alerts", partitions=3)` creates unique topics for this test."""

    def create(*names: str, partitions: int = 3) -> list[str]:
        suffix = uuid.uuid4().hex[:8]
        topics = [f"{name}-{suffix}" for name in names]
        broker.create_topics(topics, partitions=partitions)
        return topics

    return create
