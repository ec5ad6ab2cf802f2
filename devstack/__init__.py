"""Real local services for the one-machine run and the tests: the Apache Kafka broker, a private
PostgreSQL server, Flink run as the charts run it, and (devstack.kube) a Kubernetes control plane
with kwok nodes. Nothing here is mocked; each is the real program the project's scripts install
(scripts/setup.sh, scripts/setup-kube.sh)."""

from devstack.broker import Broker
from devstack.postgres import PrivatePostgres, postgres_url

__all__ = ["Broker", "PrivatePostgres", "postgres_url"]
