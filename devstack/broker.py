"""The Tansu Kafka-protocol broker (memory storage) as a managed child process."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from devstack.ports import free_port, wait_until

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parent.parent

# Tansu needs these or the first consumer-group join waits ~23 s (TOOLCHAIN.md).
CONSUMER_DEFAULTS = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


def tansu_binary() -> Path:
    candidates = [os.environ.get("TANSU_BIN"), REPO_ROOT / ".tools/bin/tansu", shutil.which("tansu")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise FileNotFoundError("tansu broker binary not found: run scripts/install-tools.sh (or make setup)")


class Broker:
    """Start with `with Broker() as broker:`; `broker.bootstrap` is the bootstrap.servers value."""

    def __init__(self, port: int | None = None, log_path: Path | None = None):
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._log_path = log_path
        self._process: subprocess.Popen | None = None
        self._admin: AdminClient | None = None

    def start(self, timeout_s: float = 20) -> Broker:
        url = f"tcp://{self.bootstrap}"
        command = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        output = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        # The binary exits 0 even when the port is taken: trust only a metadata reply.
        try:
            wait_until(self._answers_metadata, timeout_s, f"broker on {self.bootstrap}")
        except TimeoutError:
            self.stop()
            raise
        log.info("broker ready", extra={"bootstrap": self.bootstrap, "pid": self._process.pid})
        return self

    def _answers_metadata(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"broker exited with {self._process.returncode} (port {self.port} taken?)")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            self.admin().list_topics(timeout=2)
            return True
        except OSError:
            return False
        except KafkaException:
            return False

    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 2000})
        return self._admin

    def create_topics(self, names, partitions: int = 3) -> None:
        """Create topics and wait for each; already existing ones are fine."""
        futures = self.admin().create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        )
        for name, future in futures.items():
            try:
                future.result(timeout=10)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise RuntimeError(f"creating topic {name}: {exc}") from exc

    def stop(self) -> None:
        if self._process is None:
            return
        self._admin = None
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
