"""Self-healing (real broker, real helm) and savepoints before stateful Flink upgrades."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from contracts.topics import ALL_TOPICS
from tests.support.kube import wait_for
from tests.support.operator_harness import HELM, platform

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_missing_topics_rerun_the_kafka_release_once_and_a_removed_release_is_reinstalled(
    tmp_path, broker, kube_cluster, namespace
):
    """The kafka chart's topics Job owns the topics (tests/integration/test_kafka_auth.py runs it as
    rendered against a real broker); the operator checks the real broker and, when topics are
    missing, upgrades the kafka release once so that Job runs again. No container runs on this
    cluster, so the test then creates the topics as the Job would and the status clears."""
    import subprocess

    broker.create_topics(["fleet.alerts"], partitions=6)  # one exists already
    with platform(tmp_path, kube_cluster, namespace, FLEET_HEAL_INTERVAL_S="1") as p, p.operator():
        p.create(p.fleet(components={"kafka": {"bootstrapServers": broker.bootstrap}}))
        p.wait_condition("Ready", timeout=90)
        lost = sorted(set(ALL_TOPICS) - {"fleet.alerts"})

        def topics() -> dict:
            return p.get()["status"].get("topics") or {}

        wait_for(lambda: sorted(topics().get("missing") or []) == lost, 30, "missing topics reported")
        assert p.events("TopicsMissing")

        def kafka_upgrades() -> list:
            return [call for call in p.mutations() if call == ("upgrade", "demo-kafka")]

        wait_for(lambda: len(kafka_upgrades()) == 2, 30, "the kafka release upgraded to re-run its topics Job")
        wait_for(lambda: p.releases()["demo-kafka"]["version"] == "2", 30, "kafka at revision 2")
        for _ in range(2):  # two more checks of the same missing set: no further upgrade
            checked = topics()["checkedAt"]
            wait_for(lambda checked=checked: topics()["checkedAt"] != checked, 30, "another topic check")
        assert len(kafka_upgrades()) == 2
        broker.create_topics(lost, partitions=3)  # what the re-run topics Job does in a real cluster
        wait_for(lambda: topics().get("missing") == [], 30, "no topic missing")

        # Someone uninstalls a release behind the operator's back: it comes back.
        env = {**os.environ, "KUBECONFIG": str(kube_cluster.kubeconfig)}
        subprocess.run([str(HELM), "uninstall", "demo-api", "-n", namespace], check=True, capture_output=True, env=env)
        assert "demo-api" not in p.releases()
        wait_for(lambda: "demo-api" in p.releases(), 30, "demo-api reinstalled")
        assert p.events("ReleaseDrift")
        wait_for(lambda: p.get()["status"]["components"]["api"]["state"] == "Ready", 30, "api ready again")


class FlinkRest(BaseHTTPRequestHandler):
    """A stand-in for a JobManager's REST API (no Flink cluster runs here): one running job,
    savepoints complete on the second status poll. Records what it was asked."""

    calls: list[str] = []

    def _reply(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.calls.append(f"GET {self.path}")
        if self.path == "/jobs/overview":
            self._reply({"jobs": [{"jid": "a1b2", "name": "alarms", "state": "RUNNING"}]})
        elif self.path.startswith("/jobs/a1b2/savepoints/"):
            polls = sum(call.startswith("GET /jobs/a1b2/savepoints/") for call in self.calls)
            done = {"id": "COMPLETED"} if polls > 1 else {"id": "IN_PROGRESS"}
            self._reply({"status": done, "operation": {"location": "file:///flink-data/savepoints/savepoint-a1b2-1"}})
        else:
            self.send_error(404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        self.calls.append(f"POST {self.path} {self.rfile.read(length).decode()}")
        self._reply({"request-id": "trigger-1"})

    def log_message(self, *args):
        pass


@pytest.fixture
def flink_rest():
    FlinkRest.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlinkRest)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", FlinkRest.calls
    server.shutdown()
    server.server_close()


def test_stateful_job_upgrade_takes_a_savepoint_first_and_restarts_from_it(
    tmp_path, flink_rest, kube_cluster, namespace
):
    url, calls = flink_rest
    with platform(tmp_path, kube_cluster, namespace, FLEET_FLINK_REST=url) as p, p.operator():
        p.create(p.fleet(jobs={"kpis": {"upgradeMode": "stateless"}}))
        p.wait_condition("Ready", timeout=90)
        assert calls == []  # first install: nothing to preserve

        p.patch_spec({"jobs": {"alarms": {"parallelism": 4}, "kpis": {"parallelism": 4}}})
        obj = p.wait_generation_settled()
        assert obj["status"]["phase"] == "Ready"
        triggers = [call for call in calls if call.startswith("POST")]
        assert len(triggers) == 1 and triggers[0].startswith("POST /jobs/a1b2/savepoints")  # alarms only
        upgrades = [release for verb, release in p.mutations() if verb == "upgrade"]
        assert upgrades[-2:] in (["demo-job-alarms", "demo-job-kpis"], ["demo-job-kpis", "demo-job-alarms"])
        alarms = json.loads(p.kube.get("v1", "configmaps", namespace, "demo-job-alarms-values")["data"]["values.json"])
        assert alarms["job"]["initialSavepointPath"] == "file:///flink-data/savepoints/savepoint-a1b2-1"
        assert alarms["job"]["parallelism"] == 4
        kpis = json.loads(p.kube.get("v1", "configmaps", namespace, "demo-job-kpis-values")["data"]["values.json"])
        assert kpis["job"]["initialSavepointPath"] == ""
        assert obj["status"]["components"]["job-alarms"]["savepoint"].endswith("savepoint-a1b2-1")
        assert p.events("SavepointTaken")
