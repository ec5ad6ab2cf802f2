"""The real kopf operator against the Kubernetes API emulator, with the real helm binary."""

from __future__ import annotations

import time

import pytest
from fleet_operator.model import STAGES

from tests.integration.operator_harness import NAMESPACE, platform
from tests.support.kube_emulator import KubeApiError, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALL = [component for stage in STAGES for component in stage]


def stage_of(release: str) -> int:
    component = release.removeprefix("demo-")
    return next(index for index, stage in enumerate(STAGES) if component in stage)


def test_create_installs_every_release_in_dependency_order_and_becomes_ready(tmp_path):
    with platform(tmp_path) as p, p.operator():
        p.create(p.fleet())
        obj = p.wait_condition("Ready", timeout=90)

        installs = [release for verb, release in p.mutations() if verb == "upgrade"]
        assert sorted(installs) == sorted(f"demo-{c}" for c in ALL)  # each exactly once
        stages = [stage_of(release) for release in installs]
        assert stages == sorted(stages), f"not in dependency order: {installs}"
        assert set(p.releases()) == {f"demo-{c}" for c in ALL}

        status = obj["status"]
        assert status["phase"] == "Ready"
        assert status["observedGeneration"] == obj["metadata"]["generation"]
        assert {c: status["components"][c]["state"] for c in ALL} == dict.fromkeys(ALL, "Ready")
        assert status["components"]["kafka"]["revision"] == 1
        assert status["components"]["kafka"]["release"] == "demo-kafka"
        # The environment overlay reached the workloads (dev overlay: 1 replica).
        deployment = p.kube.get("apps/v1", "deployments", NAMESPACE, "demo-kafka")
        assert deployment["spec"]["replicas"] == 1
        assert {e["reason"] for e in p.events()} >= {"Installed", "Ready"}


def test_spec_change_upgrades_only_the_affected_release_and_resync_calls_no_helm(tmp_path):
    with platform(tmp_path) as p:
        with p.operator():
            p.create(p.fleet())
            p.wait_condition("Ready", timeout=90)
            before = len(p.mutations())

            p.patch_spec({"components": {"api": {"replicas": 4}}})
            obj = p.wait_generation_settled()
            assert p.mutations()[before:] == [("upgrade", "demo-api")]
            assert obj["status"]["components"]["api"]["revision"] == 2
            assert obj["status"]["components"]["kafka"]["revision"] == 1
            assert p.kube.get("apps/v1", "deployments", NAMESPACE, "demo-api")["spec"]["replicas"] == 4
            calls = len(p.helm_calls())

        # Operator restart: resume sees nothing changed, so no Helm call at all.
        with p.operator():
            wait_for(lambda: p.kube.watching("fleet-monitor.io", "fleetmonitors"), 10, "watch")
            p.wait_condition("Ready")
            import time

            time.sleep(3)
            assert p.helm_calls()[calls:] == []


def test_failing_release_rolls_back_to_the_last_good_revision_and_sets_degraded(tmp_path):
    with platform(tmp_path) as p, p.operator():
        p.create(p.fleet())
        p.wait_condition("Ready", timeout=90)

        # An admission policy of the cluster refuses this image: the upgrade fails half-way.
        def policy(verb: str, plural: str, obj: dict) -> str | None:
            containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
            broken = plural == "deployments" and any(c["image"].endswith(":broken") for c in containers)
            return "image tag 'broken' is not allowed" if broken else None

        p.kube.admit(policy)
        p.patch_spec({"components": {"grafana": {"image": {"tag": "broken"}}}})
        obj = p.wait_condition("Degraded", timeout=60)

        degraded = next(c for c in obj["status"]["conditions"] if c["type"] == "Degraded")
        assert degraded["reason"] == "ReleaseFailed"
        assert "grafana" in degraded["message"] and "rolled back to revision 1" in degraded["message"]
        assert p.condition("Ready") == "False"
        grafana = obj["status"]["components"]["grafana"]
        assert grafana["state"] == "Failed" and grafana["revision"] == 1
        assert ("rollback", "demo-grafana") in p.mutations()
        assert p.releases()["demo-grafana"]["version"] == "3"  # 1 good, 2 failed, 3 = rollback to 1
        image = p.kube.get("apps/v1", "deployments", NAMESPACE, "demo-grafana")["spec"]["template"]["spec"][
            "containers"
        ][0]["image"]
        assert image.endswith(":1.0")
        assert p.events("RolledBack") and p.events("ReleaseFailed")

        # Not a crash loop: the same failing inputs are not retried.
        upgrades = len(p.helm_calls("upgrade"))
        time.sleep(3)
        assert len(p.helm_calls("upgrade")) == upgrades

        # A fixed spec recovers, and lastTransitionTime of Degraded flips once more.
        p.patch_spec({"components": {"grafana": {"image": {"tag": "2.0"}}}})
        obj = p.wait_condition("Ready", timeout=60)
        assert p.condition("Degraded") == "False"
        after = next(c for c in obj["status"]["conditions"] if c["type"] == "Degraded")
        assert after["reason"] == "AsExpected"
        assert obj["status"]["components"]["grafana"]["revision"] == 4


def test_pause_stops_all_changes_until_resumed(tmp_path):
    with platform(tmp_path) as p, p.operator():
        p.create(p.fleet())
        ready = p.wait_condition("Ready", timeout=90)
        ready_since = next(c for c in ready["status"]["conditions"] if c["type"] == "Ready")["lastTransitionTime"]
        p.patch_spec({"paused": True})
        p.wait_condition("Paused")
        calls = len(p.helm_calls())

        p.patch_spec({"components": {"api": {"replicas": 5}}})
        obj = p.wait_generation_settled()
        assert obj["status"]["phase"] == "Paused"
        time.sleep(2)
        assert p.helm_calls()[calls:] == []
        assert p.kube.get("apps/v1", "deployments", NAMESPACE, "demo-api")["spec"]["replicas"] == 1
        assert p.events("Paused")

        p.patch_spec({"paused": False})
        obj = p.wait_condition("Paused", "False")
        obj = p.wait_condition("Ready")
        wait_for(
            lambda: p.kube.get("apps/v1", "deployments", NAMESPACE, "demo-api")["spec"]["replicas"] == 5, 30, "api"
        )
        assert p.mutations()[-1] == ("upgrade", "demo-api")
        # Ready never flipped while paused, so its lastTransitionTime is unchanged.
        ready = next(c for c in p.get()["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True" and ready["lastTransitionTime"] == ready_since


def test_delete_removes_releases_in_reverse_order_keeps_volumes_and_drops_the_finalizer(tmp_path):
    with platform(tmp_path) as p, p.operator():
        p.create(p.fleet(components={"timescaledb": {"storage": {"size": "2Gi", "deleteClaim": True}}}))
        obj = p.wait_condition("Ready", timeout=90)
        assert obj["metadata"]["finalizers"] == ["fleet-monitor.io/finalizer"]
        for release in ("demo-kafka", "demo-timescaledb"):  # what StatefulSets leave behind
            p.kube.create(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {
                        "name": f"data-{release}-0",
                        "namespace": NAMESPACE,
                        "labels": {"app.kubernetes.io/instance": release},
                    },
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                }
            )
        p.delete()
        wait_for(lambda: p.get() is None, 60, "the FleetMonitor to be gone (finalizer removed)")

        uninstalls = [release for verb, release in p.mutations() if verb == "uninstall"]
        assert sorted(uninstalls) == sorted(f"demo-{c}" for c in ALL)
        stages = [stage_of(release) for release in uninstalls]
        assert stages == sorted(stages, reverse=True), f"not in reverse order: {uninstalls}"
        assert p.releases() == {}
        assert p.kube.list("apps/v1", "deployments", NAMESPACE) == []
        claims = {c["metadata"]["name"] for c in p.kube.list("v1", "persistentvolumeclaims", NAMESPACE)}
        assert claims == {"data-demo-kafka-0"}  # kept by default; timescaledb asked for deleteClaim


def test_namespace_deletion_is_not_blocked_by_the_finalizer(tmp_path):
    with platform(tmp_path) as p, p.operator():
        p.create(p.fleet())
        p.wait_condition("Ready", timeout=90)
        p.kube.delete("v1", "namespaces", None, NAMESPACE)
        wait_for(lambda: p.kube.get("v1", "namespaces", None, NAMESPACE) is None, 60, "the namespace to be gone")
        assert p.get() is None


def test_invalid_resources_are_rejected_naming_the_field(tmp_path):
    with platform(tmp_path) as p:
        cases = {
            "spec.environment": p.fleet(environment="staging"),
            "spec.jobs.alarms.parallelism": p.fleet(jobs={"alarms": {"parallelism": 0}}),
            "spec.jobs.kpis.upgradeMode": p.fleet(jobs={"kpis": {"upgradeMode": "yolo"}}),
            "spec.jobs.alarms.alarmOutOfOrderness": p.fleet(jobs={"alarms": {"alarmOutOfOrderness": -1}}),
            "spec.components.kafka.replicas": p.fleet(components={"kafka": {"replicas": -1}}),
            "spec.components.api.storage.size": p.fleet(components={"api": {"storage": {"size": "lots"}}}),
            "spec.topics.partitions": p.fleet(topics={"partitions": 0}),
            "spec.componentz": p.fleet(componentz={}),
        }
        for field, obj in cases.items():
            with pytest.raises(KubeApiError) as rejected:
                p.create(obj)
            assert rejected.value.code == 422
            assert f"{field}:" in rejected.value.message, rejected.value.message
        missing = p.fleet()
        del missing["spec"]["environment"]
        with pytest.raises(KubeApiError, match=r"spec.environment: Required value"):
            p.create(missing)
        # Valid: the API server fills the schema's defaults.
        created = p.create(p.fleet())
        assert created["spec"]["jobs"]["alarms"] == {
            "enabled": True,
            "parallelism": 2,
            "checkpointInterval": "30s",
            "upgradeMode": "savepoint",
        }
        assert created["spec"]["paused"] is False


def test_thresholds_that_fail_the_contracts_model_set_degraded_naming_the_field(tmp_path):
    with platform(tmp_path) as p, p.operator():
        p.create(p.fleet(thresholds={"defaults": {"tire_pressure_low": {"threshold": 220, "clear": 210}}}))
        obj = p.wait_condition("Degraded", timeout=60)
        degraded = next(c for c in obj["status"]["conditions"] if c["type"] == "Degraded")
        assert degraded["reason"] == "InvalidSpec"
        assert "clear (210.0) must be at or above threshold (220.0)" in degraded["message"]
        assert p.mutations() == []
        p.patch_spec({"thresholds": {"defaults": {"tire_pressure_low": {"threshold": 205, "clear": 215}}}})
        p.wait_condition("Ready", timeout=90)
        values = p.kube.get("v1", "configmaps", NAMESPACE, "demo-job-alarms-values")["data"]["values.json"]
        assert '"tire_pressure_low":{"clear":215,"threshold":205}' in values


def test_readiness_gates_the_next_stage_and_waiting_is_retried(tmp_path):
    with platform(tmp_path) as p:
        p.kube.set_workloads_ready(False)
        with p.operator():
            p.create(p.fleet())
            wait_for(lambda: p.get().get("status", {}).get("phase") == "Progressing", 60, "Progressing")
            obj = p.get()
            progressing = next(c for c in obj["status"]["conditions"] if c["type"] == "Progressing")
            assert progressing["reason"] == "WaitingForReadiness" and "demo-kafka" in progressing["message"]
            installed = {release for verb, release in p.mutations()}
            assert installed == {"demo-kafka", "demo-timescaledb"}  # stage 2 waits for stage 1
            p.kube.set_workloads_ready(True)
            p.wait_condition("Ready", timeout=90)
            assert sorted(release for _, release in p.mutations()) == sorted(f"demo-{c}" for c in ALL)
