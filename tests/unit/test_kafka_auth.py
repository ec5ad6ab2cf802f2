"""contracts.kafka_auth: the KAFKA_* settings every client reads, mapped once to librdkafka's and
the Java client's names; the users and ACLs the kafka chart provisions; the clients, charts and
the operator taking them (against the real broker: tests/integration/test_kafka_auth.py)."""

from __future__ import annotations

import zipfile

import pytest
import yaml

from contracts.kafka_auth import (
    COMPONENT_USERS,
    FLINK_SHADED_PREFIX,
    JOBS_GROUP_PREFIX,
    USERS,
    KafkaAuth,
    KafkaAuthError,
)
from contracts.topics import ALERTS_TOPIC, DEAD_LETTER_TOPIC, EVENT_TOPICS, STORE_TOPICS
from jobs.config import JobConfig
from jobs.connectors import cached_connector_jars
from jobs.tables import kafka_properties
from tests.support.charts import ROOT, find, pod_spec, render

SASL_ENV = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_USERNAME": "jobs",
    "KAFKA_SASL_PASSWORD": 's3cr"et',
    "KAFKA_SSL_CA_FILE": "/etc/kafka-ca/ca.crt",
}


def test_unset_means_plaintext_as_before():
    auth = KafkaAuth.from_env({})
    assert auth.librdkafka() == {"security.protocol": "PLAINTEXT"}
    assert auth.java() == {"security.protocol": "PLAINTEXT"}
    assert auth.env() == {"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}


def test_sasl_ssl_maps_to_librdkafka_and_java_names():
    auth = KafkaAuth.from_env(SASL_ENV)
    assert auth.librdkafka() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "jobs",
        "sasl.password": 's3cr"et',
        "ssl.ca.location": "/etc/kafka-ca/ca.crt",
    }
    java = auth.java()
    assert java["ssl.truststore.type"] == "PEM" and java["ssl.truststore.location"] == "/etc/kafka-ca/ca.crt"
    assert java["sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="jobs" password="s3cr\\"et";'
    )
    assert KafkaAuth.from_env(auth.env()) == auth


def test_bad_settings_name_the_variable_and_what_is_allowed():
    with pytest.raises(KafkaAuthError, match=r"KAFKA_SECURITY_PROTOCOL='SASL'.*SASL_SSL"):
        KafkaAuth.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL"})
    with pytest.raises(KafkaAuthError, match="KAFKA_SASL_MECHANISM='GSSAPI'"):
        KafkaAuth.from_env({**SASL_ENV, "KAFKA_SASL_MECHANISM": "GSSAPI"})
    with pytest.raises(KafkaAuthError, match="needs KAFKA_SASL_PASSWORD"):
        KafkaAuth.from_env({**SASL_ENV, "KAFKA_SASL_PASSWORD": ""})


def test_the_password_never_shows_in_repr():
    assert "s3cr" not in repr(KafkaAuth.from_env(SASL_ENV))


def test_the_flink_connector_gets_the_shaded_login_module_it_ships():
    """flink-sql-connector-kafka relocates the Kafka client: the JAAS line must name the
    relocated class, which the pinned jar has."""
    config = JobConfig(
        jobs=("alarms",),
        bootstrap_servers="k:9092",
        checkpoint_dir="file:///tmp",
        kafka_auth=KafkaAuth.from_env(SASL_ENV),
    )
    options = kafka_properties(config)
    module = options["properties.sasl.jaas.config"].split()[0]
    assert module == FLINK_SHADED_PREFIX + "org.apache.kafka.common.security.scram.ScramLoginModule"
    assert options["properties.security.protocol"] == "SASL_SSL"
    jars = [jar for jar in cached_connector_jars() if "kafka" in jar.name]
    assert jars, "no pinned Flink Kafka connector jar: make setup installs it"
    with zipfile.ZipFile(jars[0]) as jar:
        assert module.replace(".", "/") + ".class" in jar.namelist()
    plain = JobConfig(jobs=("alarms",), bootstrap_servers="k:9092", checkpoint_dir="file:///tmp")
    assert kafka_properties(plain) == {}


def test_each_user_gets_least_privilege():
    grants = {
        user: {(e["resource"], name, op) for e in entries for name in e["names"] for op in e["operations"]}
        for user, entries in USERS.items()
    }
    events = set(EVENT_TOPICS.values())
    writes = lambda user: {name for kind, name, op in grants[user] if kind == "topic" and op == "Write"}  # noqa: E731
    reads = lambda user: {name for kind, name, op in grants[user] if kind == "topic" and op == "Read"}  # noqa: E731
    assert writes("generator") == events and not reads("generator")
    assert reads("jobs") == events and writes("jobs") == {ALERTS_TOPIC, DEAD_LETTER_TOPIC, *STORE_TOPICS.values()}
    assert ("transactional-id", JOBS_GROUP_PREFIX, "Write") in grants["jobs"]
    assert reads("vector") == {ALERTS_TOPIC} and not writes("vector")
    assert not writes("loader") and not (reads("loader") & events)
    assert not any(op == "Delete" for user in grants for _, _, op in grants[user])
    assert set(COMPONENT_USERS.values()) <= set(USERS)


# --- the charts ----------------------------------------------------------------------------------


def _kafka(*sets: str) -> list[dict]:
    return render("kafka", "dev", "auth.enabled=true", *sets)


def test_the_kafka_chart_runs_sasl_ssl_with_acls_when_enabled():
    docs = _kafka()
    properties = find(docs, "ConfigMap", "fleet-monitor-kafka")[0]["data"]["server.properties"]
    for line in (
        "listener.security.protocol.map=CLIENT:SASL_SSL,CONTROLLER:SASL_SSL",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found=false",
        "super.users=User:admin",
        "listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512",
    ):
        assert line in properties.splitlines()
    assert "PLAINTEXT" not in properties
    users = find(docs, "Secret", "fleet-monitor-kafka-users")[0]["stringData"]
    assert set(users) == {"admin", *USERS} and all(len(p) >= 32 for p in users.values())
    assert users["generator"] not in str(find(docs, "ConfigMap")), "a password in a ConfigMap"
    script = find(docs, "ConfigMap", "fleet-monitor-kafka-acls")[0]["data"]["users-acls.sh"]
    for user in USERS:
        assert f'--allow-principal "User:{user}"' in script
    assert "--operation Delete" not in script


def test_without_auth_the_kafka_chart_is_plaintext_with_no_secrets():
    docs = render("kafka", "dev")
    assert not find(docs, "Secret", "fleet-monitor-kafka-users") and not find(
        docs, "ConfigMap", "fleet-monitor-kafka-acls"
    )
    properties = find(docs, "ConfigMap", "fleet-monitor-kafka")[0]["data"]["server.properties"]
    assert "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT" in properties


def test_the_generated_key_is_pkcs8_and_matches_the_certificate():
    """Kafka's PEM keystore reads only PKCS#8 keys; helm makes PKCS#1 ones (kafka.pkcs8 wraps them)."""
    import base64
    import subprocess

    tls = find(_kafka("tls.extraDnsNames={localhost}"), "Secret", "fleet-monitor-kafka-tls")[0]["data"]
    key, cert = (base64.b64decode(tls[k]).decode() for k in ("tls.key", "tls.crt"))
    assert key.startswith("-----BEGIN PRIVATE KEY-----\n")

    def public(*args: str, text: str) -> str:
        return subprocess.run(["openssl", *args], input=text, capture_output=True, text=True, check=True).stdout

    assert public("pkey", "-pubout", text=key) == public("x509", "-pubkey", "-noout", text=cert)
    names = public("x509", "-noout", "-ext", "subjectAltName", text=cert)
    assert "DNS:*.fleet-monitor-kafka-headless.fleet.svc.cluster.local" in names and "DNS:localhost" in names


@pytest.mark.parametrize(("chart", "user"), sorted(COMPONENT_USERS.items()))
def test_each_client_chart_passes_its_user_from_the_kafka_secrets(chart, user):
    group = ["kafka.consumerGroup=fleet-monitor-job-alarms"] if chart == "flink-job" else []  # ACLs' prefix
    docs = render(chart, "dev", "kafka.auth.enabled=true", *group)
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    assert workloads
    for workload in workloads:
        spec = pod_spec(workload)
        container = spec["containers"][0]
        env = {e["name"]: e for e in container.get("env") or []}
        assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL" and env["KAFKA_SASL_USERNAME"]["value"] == user
        assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "fleet-monitor-kafka-users",
            "key": user,
        }
        ca = env["KAFKA_SSL_CA_FILE"]["value"]
        mount = next(m for m in container["volumeMounts"] if ca.startswith(m["mountPath"] + "/"))
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        assert volume["secret"]["secretName"] == "fleet-monitor-kafka-tls"
    off = render(chart, "dev")
    assert "KAFKA_SASL" not in yaml.safe_dump(off)


def test_vector_logs_in_with_the_password_from_its_env():
    config = yaml.safe_load(
        find(render("vector", "dev", "kafka.auth.enabled=true"), "ConfigMap", "fleet-monitor-vector")[0]["data"][
            "vector.yaml"
        ]
    )
    source = config["sources"]["alerts"]
    assert source["sasl"] == {
        "enabled": True,
        "mechanism": "SCRAM-SHA-512",
        "username": "vector",
        "password": "${KAFKA_SASL_PASSWORD}",
    }
    assert source["tls"] == {"enabled": True, "ca_file": "/etc/kafka-ca/ca.crt"}


def test_the_operator_wires_every_client_to_the_kafka_secrets_when_auth_is_on():
    from fleet_operator import model

    from tests.support.crd import defaulted

    obj = yaml.safe_load((ROOT / "environments/dev/fleetmonitor.yaml").read_text())
    obj["spec"].setdefault("components", {})["kafka"] = {"values": {"auth": {"enabled": True}}}
    releases = model.desired_releases("fm", defaulted(obj["spec"]), ROOT / "charts", ROOT / "environments")
    clients = [r for r in releases if r.chart in COMPONENT_USERS]
    assert {r.chart for r in clients} == set(COMPONENT_USERS)
    for release in clients:
        auth = release.values["kafka"]["auth"]
        assert auth == {"enabled": True, "passwordSecret": "fm-kafka-users", "caSecret": "fm-kafka-tls"}, release.name
    # A FleetMonitor not named fleet-monitor: the jobs' groups move under the prefix their ACLs grant.
    groups = {r.values["kafka"].get("consumerGroup") for r in clients if r.chart == "flink-job"}
    assert groups == {f"{JOBS_GROUP_PREFIX}-fm-{job}" for job in model.JOBS}
    assert model.kafka_secrets(model.kafka_values(releases, ROOT / "charts")) == model.KafkaSecrets(
        "fm-kafka-users", "fm-kafka-tls"
    )
    plain = defaulted(yaml.safe_load((ROOT / "environments/dev/fleetmonitor.yaml").read_text())["spec"])
    assert all(
        "auth" not in (r.values.get("kafka") or {})
        for r in model.desired_releases("fm", plain, ROOT / "charts", ROOT / "environments")
    )


def test_the_jobs_chart_refuses_a_group_its_acls_do_not_cover():
    """helm template fleet-monitor-flink-job: the default group, the release's name, is not under
    the prefix: refused at render time, naming the value and the prefix."""
    with pytest.raises(AssertionError, match=r"kafka\.consumerGroup .* must start with"):
        render("flink-job", "dev", "kafka.auth.enabled=true")
