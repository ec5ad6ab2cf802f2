"""Shared fixtures: a real PostgreSQL server and a real Apache Kafka broker.

PostgreSQL: DATABASE_URL when set, else a private server on a free port; every test that asks
for `pg_url` gets a database of its own, dropped afterwards. Kafka: one KRaft broker (the pinned
jars, scripts/setup.d/java-artifacts.sh) on a free port for the whole session; `kafka_topics`
creates fresh, uniquely named topics per test. `platform_broker` is a module's own broker with
every platform topic under its default name, for the jobs and the loader as deployed.
`simulated_run`: the simulator -> Kafka -> the jobs -> the loader -> PostgreSQL, once per session
(tests.support.simulated_run), for the consumers' tests on real producer output.
Kubernetes: `kube_cluster` is one real control plane with kwok nodes (devstack.kube) for the
session; `kube` an admin client of it, and `namespace` a fresh namespace per test, removed after.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from contracts.topics import ALL_TOPICS
from devstack import Broker, PrivatePostgres, postgres_url
from devstack.kube.cluster import LocalCluster
from tests.support.kube import Kube
from tests.support.simulated_run import SimulatedRun
from tests.support.simulated_run import simulated_run as simulate


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
def simulated_run(postgres_server: str, tmp_path_factory) -> Iterator[SimulatedRun]:
    """A database the real jobs and loader wrote from the real simulator's output (one run per
    session; Flink: run these tests under `flock /tmp/fleet-flink.lock`)."""
    with simulate(postgres_server, tmp_path_factory.mktemp("simulated-run")) as run:
        yield run


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    with Broker() as running:
        yield running


@pytest.fixture(scope="module")
def platform_broker() -> Iterator[Broker]:
    """A broker of this module's own with contracts.topics.ALL_TOPICS created (3 partitions)."""
    with Broker() as running:
        running.create_topics(ALL_TOPICS)
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


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("kube"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kube(kube_cluster: LocalCluster) -> Kube:
    return Kube(kube_cluster.kubeconfig)


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:8]}"
    kube.ensure_namespace(name)
    yield name
    kube.delete_namespace(name)
