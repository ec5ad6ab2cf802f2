"""A single-node Apache Kafka broker (KRaft, broker and controller in one JVM) as a managed
child process: the jars scripts/setup.d/java-artifacts.sh pinned, its data in a directory of
the caller's (a temporary one by default), on free ports."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from devstack.ports import free_port, wait_until
from jobs.connectors import kafka_classpath

log = logging.getLogger(__name__)

# One broker: every internal topic has one replica. Transactions (the jobs' exactly-once sink)
# need the transaction log at replication 1 too; a group's first join starts without the 3 s wait.
_SERVER = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data}
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
"""
LOG4J = """\
rootLogger.level=INFO
rootLogger.appenderRef.out.ref=out
appender.out.type=Console
appender.out.name=out
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=WARN
logger.apache.name=org.apache.kafka
logger.apache.level=WARN
"""
HEAP = "-Xmx512m"


class Broker:
    """Start with `with Broker() as broker:`; `broker.bootstrap` is the bootstrap.servers value.
    `stop()` then `start()` again restarts it on the same port with the same data (a broker
    restart); `kill()` is a kill -9."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None, log_path: Path | None = None):
        self.port = port or free_port()
        self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._own_dir = data_dir is None
        self.home = Path(data_dir or tempfile.mkdtemp(prefix="fleet-kafka-"))
        self._log_path = log_path or self.home / "broker.log"
        self._process: subprocess.Popen | None = None
        self._admin: AdminClient | None = None

    def _java(self, *args: str) -> list[str]:
        config = self.home / "log4j2.properties"
        return ["java", HEAP, f"-Dlog4j2.configurationFile={config}", "-cp", kafka_classpath(), *args]

    def _format(self) -> None:
        """Write the config and, on first start, format the KRaft storage."""
        self.home.mkdir(parents=True, exist_ok=True)
        data = self.home / "data"
        (self.home / "log4j2.properties").write_text(LOG4J)
        server = self.home / "server.properties"
        server.write_text(_SERVER.format(port=self.port, controller=self.controller_port, data=data))
        if (data / "meta.properties").exists():
            return
        cluster = str(uuid.uuid4().hex[:22])
        subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(server)),
            check=True,
            capture_output=True,
        )

    def start(self, timeout_s: float = 90) -> Broker:
        self._format()
        output = open(self._log_path, "ab")  # noqa: SIM115 - the child keeps it
        command = self._java("kafka.Kafka", str(self.home / "server.properties"))
        self._process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        output.close()
        try:
            wait_until(self._answers_metadata, timeout_s, f"Kafka broker on {self.bootstrap}", interval_s=0.3)
        except (TimeoutError, RuntimeError):
            self.stop()
            raise
        log.info("broker ready", extra={"bootstrap": self.bootstrap, "pid": self._process.pid})
        return self

    def _answers_metadata(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"Kafka broker exited with {self._process.returncode}; see {self._log_path}")
        try:  # a plain connect first: librdkafka logs every refused connection
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return bool(self.admin().list_topics(timeout=2).brokers)
        except (OSError, KafkaException):
            return False

    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 5000})
        return self._admin

    def create_topics(self, names, partitions: int = 3) -> None:
        """Create topics and wait for each; already existing ones are fine."""
        futures = self.admin().create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        )
        for name, future in futures.items():
            try:
                future.result(timeout=30)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise RuntimeError(f"creating topic {name}: {exc}") from exc

    def kill(self) -> None:
        """SIGKILL, as a crashed node: the data directory stays for the next start()."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
            self._admin = None

    def stop(self) -> None:
        """A clean shutdown (SIGTERM, then SIGKILL after 30 s); the data stays."""
        if self._process is None:
            return
        self._admin = None
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def close(self) -> None:
        """Stop and, when the data directory is the broker's own, remove it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
