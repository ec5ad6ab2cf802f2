"""Real local services for the one-machine run and the tests: the Kafka-protocol broker and a
private PostgreSQL server. Nothing here is mocked; both are the real binaries the project's
scripts install (scripts/install-tools.sh, scripts/setup.sh)."""

from devstack.broker import Broker
from devstack.postgres import PrivatePostgres, postgres_url

__all__ = ["Broker", "PrivatePostgres", "postgres_url"]
