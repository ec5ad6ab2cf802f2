"""Kafka authentication as an attacker would test it, on the real broker started as the kafka
chart renders it with `auth.enabled` (SASL_SSL, SCRAM-SHA-512, StandardAuthorizer ACLs).

The dev FleetMonitor's releases are rendered as the operator computes their values (with
`components.kafka.values.auth.enabled`), and then run as in tests/integration/test_pods_as_rendered.py:
the broker pod's start.sh with its rendered server.properties, certificates and admin password
(Kafka's own tools from the pinned jars stand in for /opt/kafka/bin), then the provisioning hook
Job as rendered (topics, SCRAM users, ACLs from charts/kafka's users-acls.sh). Substitutions: the
pods' and Services' names -> 127.0.0.1 (the certificate gets it through `tls.extraIpAddresses`),
their ports -> free ones.

Each component then connects with the settings its own rendered pod gets (KAFKA_* env from the
kafka release's Secrets, the CA file it mounts) through the project's own client code, does what
it must, and is refused what it must not.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, AdminClient, ResourcePatternType
from confluent_kafka.admin import ResourceType as Resource
from fleet_operator import model
from fleet_operator.topics import missing_topics

from contracts.kafka_auth import VECTOR_GROUP, KafkaAuth
from contracts.topics import ALERTS_TOPIC, ALL_TOPICS, EVENT_TOPICS, STORE_TOPICS
from devstack.dockerfile import Image
from generator import SimConfig, Simulator
from generator.runner import run
from generator.sinks import KafkaSink
from tests.support.charts import ROOT
from tests.support.environments import NAME, Environment, kafka_pod
from tests.support.jobs_run import bounded_command, run_jobs
from tests.support.pods import Endpoints, ImageLayout, LocalContainer, pod_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]
READY_S = 180
AUTH_VALUES = {"auth": {"enabled": True}, "tls": {"extraIpAddresses": ["127.0.0.1"]}}
TOOLS = {  # /opt/kafka/bin scripts of the Kafka image the chart's Job runs -> their main classes
    "kafka-topics.sh": "org.apache.kafka.tools.TopicCommand",
    "kafka-configs.sh": "kafka.admin.ConfigCommand",
    "kafka-acls.sh": "org.apache.kafka.tools.AclCommand",
    "kafka-broker-api-versions.sh": "org.apache.kafka.tools.BrokerApiVersionsCommand",
}
EVENT = next(iter(EVENT_TOPICS.values()))


class AuthCluster:
    """The broker pod and what the tests connect with."""

    def __init__(self, env: Environment, broker: LocalContainer, workdir: Path):
        self.env, self.broker, self.workdir = env, broker, workdir
        self.bootstrap = f"127.0.0.1:{broker.local_port('client')}"
        self.routes = Endpoints({f"{NAME}-kafka.{env.namespace}.svc.cluster.local:9092": self.bootstrap})
        self.routes.add(f"{NAME}-kafka:9092", self.bootstrap)
        self.ca_file = workdir / "ca.crt"
        self.ca_file.write_text(env.objects.secrets[f"{NAME}-kafka-tls"]["ca.crt"])

    def password(self, user: str) -> str:
        return self.env.objects.secrets[f"{NAME}-kafka-users"][user]

    def auth(self, user: str, password: str | None = None) -> KafkaAuth:
        return KafkaAuth("SASL_SSL", "SCRAM-SHA-512", user, password or self.password(user), str(self.ca_file))

    def config(self, auth: KafkaAuth, **extra) -> dict:
        return {"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 10_000, **auth.librdkafka(), **extra}

    def component_auth(self, component: str, kind: str = "Deployment", suffix: str = "") -> KafkaAuth:
        """The KafkaAuth a component's rendered pod builds from its environment: KAFKA_* from
        the kafka release's Secrets, the CA file it mounts (a local copy of the volume)."""
        workload = self.env.workload(component, kind, suffix)
        _, spec = pod_of(workload, self.env.namespace)
        context, _ = self.env.context(workload, self.routes, self.workdir / f"{component}{suffix}")
        container = LocalContainer.build(Image(), ImageLayout({}), spec, spec["containers"][0], context)
        return KafkaAuth.from_env(container.env)


def _install_tools(bin_dir: Path) -> None:
    from jobs.connectors import java_dir, kafka_classpath

    if not any((java_dir() / "kafka").glob("kafka-tools-*.jar")):
        raise FileNotFoundError(f"kafka-tools jar not in {java_dir() / 'kafka'}: run make setup (scripts/java pins it)")

    log4j = bin_dir.parent.parent / "log4j2.properties"
    for name, main in TOOLS.items():
        script = bin_dir / name
        # C1 only and the serial collector: the Job runs ~60 short tools on a shared 2-core machine.
        java = f"java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dlog4j2.configurationFile={log4j}"
        script.write_text(f'#!/bin/bash\nexec {java} -cp "{kafka_classpath()}" {main} "$@"\n')
        script.chmod(0o755)


def provision(env: Environment, broker: LocalContainer, routes: Endpoints, workdir: Path) -> None:
    """The rendered post-install hook Job: topics, then users-acls.sh (SCRAM users, ACLs)."""
    job = env.workload("kafka", "Job", "-topics")
    context, spec = env.context(job, routes, workdir)
    install = Path(broker.paths["/opt/kafka"])
    container = LocalContainer.build(
        Image(), ImageLayout({"/opt/kafka": install}), spec, spec["containers"][0], context
    )
    code = container.run_to_completion(900)  # the Job's activeDeadlineSeconds
    assert code == 0, f"the provisioning Job exited {code}\n{container.describe()}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[AuthCluster]:
    workdir = tmp_path_factory.mktemp("kafka-auth")
    env = Environment("dev", workdir / "render", {"kafka": {"values": AUTH_VALUES}})
    broker = kafka_pod(env, 0, workdir / "broker", start=True)
    _install_tools(Path(broker.paths["/opt/kafka"]) / "bin")
    broker.start()
    try:
        broker.wait_ready(READY_S)
        result = AuthCluster(env, broker, workdir)
        provision(env, broker, result.routes, workdir / "provision")
        yield result
    finally:
        broker.stop()


# --- helpers: an attempt and its refusal --------------------------------------------------------


def produce(cluster: AuthCluster, auth: KafkaAuth, topic: str, **extra) -> KafkaError | None:
    """One record; its delivery error (None: written)."""
    errors: list[KafkaError | None] = []
    producer = Producer(cluster.config(auth, **extra))
    producer.produce(topic, b'{"probe": true}', on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(30)
    assert errors, f"no delivery report for {topic} in 30 s"
    return errors[0]


def consume(cluster: AuthCluster, auth: KafkaAuth, topic: str, group: str, timeout_s: float = 30) -> list | KafkaError:
    """The first committed record of `topic` read in `group` from the beginning, or the error."""
    config = {"group.id": group, "auto.offset.reset": "earliest", "isolation.level": "read_committed"}
    consumer = Consumer(cluster.config(auth, **config))
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is None:
                continue
            return message.error() or [message]
        return []
    finally:
        consumer.close()


def connect_errors(config: dict, wait_s: float = 15) -> list[KafkaError]:
    """What a client reports (error_cb) while it tries for metadata; it must get none."""
    errors: list[KafkaError] = []
    client = Producer({**config, "error_cb": errors.append})
    with contextlib.suppress(KafkaException):
        client.list_topics(timeout=wait_s)
        raise AssertionError(f"{config.get('security.protocol', 'PLAINTEXT')} client got metadata")
    deadline = time.monotonic() + wait_s
    while not errors and time.monotonic() < deadline:
        client.poll(0.5)  # serves error_cb
    return errors


def code(result) -> int | None:
    return result.code() if isinstance(result, KafkaError) else None


TOPIC_DENIED = KafkaError.TOPIC_AUTHORIZATION_FAILED
GROUP_DENIED = KafkaError.GROUP_AUTHORIZATION_FAILED
DENIED = (TOPIC_DENIED, GROUP_DENIED)


def admin_result(future) -> int | None:
    """The error code a future of an admin call ends with (None: it succeeded)."""
    try:
        future.result(timeout=30)
    except Exception as exc:
        return exc.args[0].code()
    return None


# --- who may connect ----------------------------------------------------------------------------


def test_each_user_logs_in_and_a_wrong_password_is_refused(cluster: AuthCluster) -> None:
    for user in ("generator", "jobs", "loader", "vector", "operator"):
        assert AdminClient(cluster.config(cluster.auth(user))).list_topics(timeout=15).brokers, user
    wrong = cluster.auth("generator", password="not-" + cluster.password("generator"))
    errors = connect_errors(cluster.config(wrong))
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors


def test_unauthenticated_and_plaintext_clients_are_refused(cluster: AuthCluster) -> None:
    assert connect_errors({"bootstrap.servers": cluster.bootstrap, "socket.timeout.ms": 5000})
    assert connect_errors(cluster.config(KafkaAuth("SSL", ca_file=str(cluster.ca_file))))
    # The brokers' CA is the chart's own: a client that trusts only the system's CAs refuses them.
    untrusted = KafkaAuth("SASL_SSL", "SCRAM-SHA-512", "generator", cluster.password("generator"))
    assert any(e.code() == KafkaError._SSL for e in connect_errors(cluster.config(untrusted)))
    # The controller listener takes the admin only (PLAIN, from the broker's config).
    controller = f"127.0.0.1:{cluster.broker.local_port('controller')}"
    assert connect_errors({**cluster.config(cluster.auth("generator")), "bootstrap.servers": controller})


# --- each component: what it must do, and what it must not --------------------------------------


def test_the_simulator_writes_its_events_and_nothing_else(cluster: AuthCluster) -> None:
    auth = cluster.component_auth("generator")
    assert auth.username == "generator" and auth.protocol == "SASL_SSL"
    sink = KafkaSink(cluster.bootstrap, auth.librdkafka())
    config = SimConfig(start=datetime(2026, 5, 1, tzinfo=UTC), seed=7, count=500, rate=100)
    stats = run(Simulator(config), sink, threading.Event(), paced=False)
    assert sink.errors == 0 and stats.sent >= 500, sink.last_error
    # It cannot read telemetry, raise or hide alarms, or delete topics.
    assert code(consume(cluster, auth, EVENT, "fleet-monitor-job-probe")) in DENIED
    assert code(produce(cluster, auth, ALERTS_TOPIC)) == TOPIC_DENIED
    assert code(produce(cluster, auth, STORE_TOPICS["readings"])) == TOPIC_DENIED
    admin = AdminClient(cluster.config(auth))
    assert admin_result(admin.delete_topics([EVENT])[EVENT]) == TOPIC_DENIED
    # Nor grant itself more.
    grant = AclBinding(
        Resource.TOPIC, ALERTS_TOPIC, ResourcePatternType.LITERAL, "User:generator", "*",
        AclOperation.WRITE, AclPermissionType.ALLOW,
    )  # fmt: skip
    assert admin_result(admin.create_acls([grant])[grant]) == KafkaError.CLUSTER_AUTHORIZATION_FAILED


def test_the_jobs_read_events_and_write_alerts_in_transactions(cluster: AuthCluster) -> None:
    auth = cluster.component_auth("job-alarms", "Deployment", "-jobmanager")
    assert auth.username == "jobs"
    group = f"{NAME}-job-alarms"  # the chart's consumer group: the release's full name
    records = consume(cluster, auth, EVENT, group)
    assert isinstance(records, list) and records, f"the jobs read nothing from {EVENT}: {records}"
    producer = Producer(cluster.config(auth, **{"transactional.id": f"{group}-alerts"}))
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(ALERTS_TOPIC, b'{"alert": "probe"}', key=b"vehicle-0001")
    producer.commit_transaction(30)
    # They cannot forge telemetry, or use a transactional id outside their prefix.
    assert code(produce(cluster, auth, EVENT)) == TOPIC_DENIED
    intruder = Producer(cluster.config(auth, **{"transactional.id": "intruder-alerts"}))
    with pytest.raises(Exception) as refused:
        intruder.init_transactions(30)
    assert refused.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_vector_reads_the_alerts_and_nothing_else(cluster: AuthCluster) -> None:
    auth = cluster.component_auth("vector", "StatefulSet")
    assert auth.username == "vector"
    rendered = yaml.safe_load(
        cluster.env.objects.configmaps[f"{NAME}-vector"]["vector.yaml"]
    )["sources"]["alerts"]  # fmt: skip
    assert rendered["sasl"]["username"] == "vector" and rendered["group_id"] == VECTOR_GROUP
    records = consume(cluster, auth, ALERTS_TOPIC, rendered["group_id"], timeout_s=60)
    assert isinstance(records, list) and records, f"vector read no committed alert: {records}"
    assert code(produce(cluster, auth, ALERTS_TOPIC)) == TOPIC_DENIED
    assert code(consume(cluster, auth, EVENT, rendered["group_id"])) in DENIED
    assert code(consume(cluster, auth, ALERTS_TOPIC, "another-group")) == GROUP_DENIED


def test_the_loader_reads_the_jobs_output_and_writes_nothing(cluster: AuthCluster) -> None:
    auth = cluster.component_auth("loader")
    assert auth.username == "loader"
    records = consume(cluster, auth, ALERTS_TOPIC, "fleet-loader", timeout_s=60)
    assert isinstance(records, list) and records, records
    assert code(produce(cluster, auth, STORE_TOPICS["readings"])) == TOPIC_DENIED
    assert code(consume(cluster, auth, EVENT, "fleet-loader")) in DENIED


def test_the_operator_sees_missing_topics_and_the_charts_job_recreates_them(cluster: AuthCluster) -> None:
    """The operator's self-healing with the credentials it reads from the kafka release's Secrets
    (model.kafka_secrets names them) sees which topics are missing, and may do nothing else to
    them: no create, delete or read. The kafka chart's topics Job, their one owner, run again (as
    the operator's upgrade of the kafka release runs it) brings the deleted topic back."""
    secrets = model.kafka_secrets(model.merge_values(
        yaml.safe_load((ROOT / "charts/kafka/values.yaml").read_text()), {"fullnameOverride": f"{NAME}-kafka", **AUTH_VALUES}
    ))  # fmt: skip
    users, tls = cluster.env.objects.secrets[secrets.users], cluster.env.objects.secrets[secrets.tls]
    auth = KafkaAuth("SASL_SSL", "SCRAM-SHA-512", "operator", users["operator"], ca_pem=tls["ca.crt"])
    lost = STORE_TOPICS["device_inactivity"]
    admin = AdminClient(cluster.config(cluster.auth("admin")))
    assert admin_result(admin.delete_topics([lost])[lost]) is None
    assert asyncio.run(missing_topics(cluster.bootstrap, ALL_TOPICS, auth=auth)) == [lost]
    operator = AdminClient(cluster.config(auth))
    assert admin_result(operator.create_topics([_new_topic(lost)])[lost]) == TOPIC_DENIED
    assert admin_result(operator.delete_topics([EVENT])[EVENT]) == TOPIC_DENIED
    assert code(consume(cluster, auth, EVENT, "fleet-monitor-job-operator")) in DENIED
    provision(cluster.env, cluster.broker, cluster.routes, cluster.workdir / "provision-again")
    assert asyncio.run(missing_topics(cluster.bootstrap, ALL_TOPICS, auth=auth)) == []
    partitions = yaml.safe_load((ROOT / "environments/dev/values/kafka.yaml").read_text())["topicDefaults"][
        "partitions"
    ]
    assert len(admin.list_topics(timeout=10).topics[lost].partitions) == partitions


def _new_topic(name: str):
    from confluent_kafka.admin import NewTopic

    return NewTopic(name, num_partitions=1, replication_factor=1)


def test_the_java_client_properties_log_in(cluster: AuthCluster, tmp_path: Path) -> None:
    """KafkaAuth.java() (what the Flink connector gets as properties.*, unshaded here) with
    Kafka's own Java client: the PEM truststore and the SCRAM JAAS line are what it accepts."""
    from jobs.connectors import kafka_classpath

    auth = cluster.component_auth("generator")
    properties = tmp_path / "client.properties"
    properties.write_text("".join(f"{key}={value}\n" for key, value in auth.java().items()))
    command = [
        "java", "-cp", kafka_classpath(), "org.apache.kafka.tools.ConsoleProducer",
        "--bootstrap-server", cluster.bootstrap, "--topic", EVENT, "--producer.config", str(properties),
    ]  # fmt: skip
    result = subprocess.run(
        command, input="java-client-probe\n", capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    denied = subprocess.run(
        [*command[:-4], "--topic", ALERTS_TOPIC, "--producer.config", str(properties)],
        input="forged\n", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "TopicAuthorizationException" in denied.stdout + denied.stderr


def test_a_flink_job_reads_and_writes_through_sasl_ssl(cluster: AuthCluster, tmp_path: Path) -> None:
    """`python -m jobs aggregates` (a bounded replay) with the KAFKA_* its rendered JobManager pod
    gets: the connector's sources read the simulator's events as `jobs`, its exactly-once sinks
    commit the store topics; the loader's user then reads them. Run this file under
    `flock /tmp/fleet-flink.lock` (it starts Flink)."""
    auth = cluster.component_auth("job-aggregates", "Deployment", "-jobmanager")
    group = f"{NAME}-job-aggregates"
    command = bounded_command(cluster.bootstrap, tmp_path / "checkpoints", "--group-id", group, job="aggregates")
    run_jobs(command, env=auth.env())
    readings = consume(cluster, cluster.component_auth("loader"), STORE_TOPICS["readings"], "fleet-loader", 120)
    assert isinstance(readings, list) and readings, f"no committed readings: {readings}"
