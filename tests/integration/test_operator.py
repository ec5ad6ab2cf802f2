"""The operator as its chart deploys it (its ServiceAccount, RBAC and peering) against the real
API server of the local cluster, with the real helm binary; kwok plays the kubelets."""

from __future__ import annotations

from pathlib import Path

import pytest
from fleet_operator import openapi
from fleet_operator.model import STAGES

from tests.support import crd
from tests.support.kube import Kube, KubeApiError, wait_for
from tests.support.operator_harness import platform

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALL = [component for stage in STAGES for component in stage]


def broken_deployment() -> dict:
    labels = {"app": "probe"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "probe"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "x:broken"}]}},
        },
    }


def stage_of(release: str) -> int:
    component = release.removeprefix("demo-")
    return next(index for index, stage in enumerate(STAGES) if component in stage)


def test_create_installs_every_release_in_dependency_order_and_becomes_ready(tmp_path, kube_cluster, namespace):
    with platform(tmp_path, kube_cluster, namespace) as p, p.operator():
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
        deployment = p.workload("demo-kafka")
        assert deployment["spec"]["replicas"] == 1
        assert {e["reason"] for e in p.events()} >= {"Installed", "Ready"}


def test_spec_change_upgrades_only_the_affected_release_and_resync_calls_no_helm(tmp_path, kube_cluster, namespace):
    with platform(tmp_path, kube_cluster, namespace) as p:
        with p.operator():
            p.create(p.fleet())
            p.wait_condition("Ready", timeout=90)
            before = len(p.mutations())

            p.patch_spec({"components": {"api": {"replicas": 4}}})
            obj = p.wait_generation_settled()
            assert p.mutations()[before:] == [("upgrade", "demo-api")]
            assert obj["status"]["components"]["api"]["revision"] == 2
            assert obj["status"]["components"]["kafka"]["revision"] == 1
            assert p.workload("demo-api")["spec"]["replicas"] == 4
            calls = len(p.helm_calls())

        # Operator restart: resume sees nothing changed, so no Helm call at all.
        resumed = p.processed("Resuming")
        with p.operator():
            p.wait_processed("Resuming", resumed)
            assert p.condition("Ready") == "True"
            assert p.helm_calls()[calls:] == []


def test_failing_release_rolls_back_to_the_last_good_revision_and_sets_degraded(tmp_path, kube_cluster, namespace):
    with platform(tmp_path, kube_cluster, namespace) as p, p.operator():
        p.create(p.fleet())
        p.wait_condition("Ready", timeout=90)

        # An admission policy of the cluster refuses this image: the upgrade fails half-way.
        policy = f"no-broken-images-{p.namespace}"
        p.kube.admit(
            policy,
            ["deployments"],
            "object.spec.template.spec.containers.all(c, !c.image.endsWith(':broken'))",
            "image tag 'broken' is not allowed",
            namespace=p.namespace,
            probe=broken_deployment(),
        )
        updated = p.processed("Updating")
        try:
            p.patch_spec({"components": {"grafana": {"image": {"tag": "broken"}}}})
            obj = p.wait_condition("Degraded", timeout=120)
            p.wait_processed("Updating", updated)  # handled, with no retry pending
        finally:
            p.kube.remove_admission(policy)

        degraded = next(c for c in obj["status"]["conditions"] if c["type"] == "Degraded")
        assert degraded["reason"] == "ReleaseFailed"
        assert "grafana" in degraded["message"] and "rolled back to revision 1" in degraded["message"]
        assert p.condition("Ready") == "False"
        grafana = obj["status"]["components"]["grafana"]
        assert grafana["state"] == "Failed" and grafana["revision"] == 1
        assert ("rollback", "demo-grafana") in p.mutations()
        assert p.releases()["demo-grafana"]["version"] == "3"  # 1 good, 2 failed, 3 = rollback to 1
        image = p.workload("demo-grafana")["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image.endswith(":1.0")
        assert p.events("RolledBack") and p.events("ReleaseFailed")

        # Not a crash loop: kopf finished the update with the release failed, nothing to retry.
        assert [verb for verb, release in p.mutations() if release == "demo-grafana"] == [
            "upgrade",
            "upgrade",
            "rollback",
        ]

        # A fixed spec recovers, and lastTransitionTime of Degraded flips once more.
        p.patch_spec({"components": {"grafana": {"image": {"tag": "2.0"}}}})
        obj = p.wait_condition("Ready", timeout=60)
        assert p.condition("Degraded") == "False"
        after = next(c for c in obj["status"]["conditions"] if c["type"] == "Degraded")
        assert after["reason"] == "AsExpected"
        assert obj["status"]["components"]["grafana"]["revision"] == 4


def test_pause_stops_all_changes_until_resumed(tmp_path, kube_cluster, namespace):
    with platform(tmp_path, kube_cluster, namespace) as p, p.operator():
        p.create(p.fleet())
        ready = p.wait_condition("Ready", timeout=90)
        ready_since = next(c for c in ready["status"]["conditions"] if c["type"] == "Ready")["lastTransitionTime"]
        p.patch_spec({"paused": True})
        p.wait_condition("Paused")
        calls = len(p.helm_calls())

        updated = p.processed("Updating")
        p.patch_spec({"components": {"api": {"replicas": 5}}})
        obj = p.wait_generation_settled()
        p.wait_processed("Updating", updated)
        assert obj["status"]["phase"] == "Paused"
        assert p.helm_calls()[calls:] == []
        assert p.workload("demo-api")["spec"]["replicas"] == 1
        assert p.events("Paused")

        p.patch_spec({"paused": False})
        obj = p.wait_condition("Paused", "False")
        obj = p.wait_condition("Ready")
        wait_for(lambda: p.workload("demo-api")["spec"]["replicas"] == 5, 30, "api")
        assert p.mutations()[-1] == ("upgrade", "demo-api")
        # Ready never flipped while paused, so its lastTransitionTime is unchanged.
        ready = next(c for c in p.get()["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True" and ready["lastTransitionTime"] == ready_since


def test_delete_removes_releases_in_reverse_order_keeps_volumes_and_drops_the_finalizer(
    tmp_path, kube_cluster, namespace
):
    with platform(tmp_path, kube_cluster, namespace) as p, p.operator():
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
                        "namespace": p.namespace,
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
        assert p.kube.list("apps/v1", "deployments", p.namespace) == []
        claims = {c["metadata"]["name"] for c in p.kube.list("v1", "persistentvolumeclaims", p.namespace)}
        assert claims == {"data-demo-kafka-0"}  # kept by default; timescaledb asked for deleteClaim


def test_namespace_deletion_is_not_blocked_by_the_finalizer(tmp_path, kube_cluster, namespace):
    with platform(tmp_path, kube_cluster, namespace) as p, p.operator():
        p.create(p.fleet())
        p.wait_condition("Ready", timeout=120)
        p.kube.delete("v1", "namespaces", None, p.namespace)
        wait_for(lambda: p.kube.get("v1", "namespaces", None, p.namespace) is None, 120, "the namespace to be gone")
        assert p.get() is None


def test_a_namespaced_operator_cannot_touch_secrets_elsewhere(tmp_path, kube_cluster, namespace):
    with platform(tmp_path, kube_cluster, namespace, namespaced=True) as p:
        operator = Kube(Path(p.operator_env["KUBECONFIG"]))
        assert isinstance(operator.list("v1", "secrets", namespace), list)  # its own namespace
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "planted"}, "stringData": {"k": "v"}}
        for where in ("default", p.operator_namespace):
            with pytest.raises(KubeApiError) as refused:
                operator.create(secret, where)
            assert refused.value.code == 403
        with pytest.raises(KubeApiError) as refused:
            operator.list("v1", "secrets")  # cluster-wide
        assert refused.value.code == 403


SCHEMA = crd.SCHEMA


def test_invalid_resources_are_rejected_naming_the_field(tmp_path, kube_cluster, namespace):
    with platform(tmp_path, kube_cluster, namespace) as p:
        cases = {
            "spec.environment": p.fleet(environment="staging"),
            "spec.jobs.alarms.parallelism": p.fleet(jobs={"alarms": {"parallelism": 0}}),
            "spec.jobs.kpis.upgradeMode": p.fleet(jobs={"kpis": {"upgradeMode": "yolo"}}),
            "spec.jobs.alarms.alarmOutOfOrderness": p.fleet(jobs={"alarms": {"alarmOutOfOrderness": -1}}),
            "spec.components.kafka.replicas": p.fleet(components={"kafka": {"replicas": -1}}),
            "spec.components.api.storage.size": p.fleet(components={"api": {"storage": {"size": "lots"}}}),
            "spec.topics.partitions": p.fleet(topics={"partitions": 0}),
        }
        for field, obj in cases.items():
            with pytest.raises(KubeApiError) as rejected:
                p.create(obj)
            assert rejected.value.code == 422
            assert f"{field}:" in rejected.value.message, rejected.value.message
            # The offline check (`deploy.sh --check`, `python -m fleet_operator.validate`) says the same.
            offline = openapi.validate(SCHEMA, openapi.apply_defaults(SCHEMA, obj))
            assert any(problem.startswith(f"{field}:") for problem in offline), (field, offline)
        # An unknown field under strict field validation (kubectl's default): refused while decoding.
        with pytest.raises(KubeApiError, match=r'unknown field "spec.componentz"') as unknown:
            p.create(p.fleet(componentz={}))
        assert unknown.value.code == 400
        missing = p.fleet()
        del missing["spec"]["environment"]
        with pytest.raises(KubeApiError, match=r"spec.environment: Required value"):
            p.create(missing)
        # Valid: the API server fills the schema's defaults, none on a key an environment overlay
        # sets (job.*, topic partitions): those stay unset so the overlay's value stands.
        created = p.create(p.fleet())
        assert created["spec"] == openapi.apply_defaults(SCHEMA, p.fleet())["spec"]  # the offline defaults agree
        assert created["spec"]["jobs"]["alarms"] == {"enabled": True}
        assert "partitions" not in created["spec"]["topics"]
        assert created["spec"]["paused"] is False


def test_thresholds_that_fail_the_contracts_model_set_degraded_naming_the_field(tmp_path, kube_cluster, namespace):
    with platform(tmp_path, kube_cluster, namespace) as p, p.operator():
        p.create(p.fleet(thresholds={"defaults": {"tire_pressure_low": {"threshold": 220, "clear": 210}}}))
        obj = p.wait_condition("Degraded", timeout=60)
        degraded = next(c for c in obj["status"]["conditions"] if c["type"] == "Degraded")
        assert degraded["reason"] == "InvalidSpec"
        assert "clear (210.0) must be at or above threshold (220.0)" in degraded["message"]
        assert p.mutations() == []
        p.patch_spec({"thresholds": {"defaults": {"tire_pressure_low": {"threshold": 205, "clear": 215}}}})
        p.wait_condition("Ready", timeout=90)
        values = p.kube.get("v1", "configmaps", p.namespace, "demo-job-alarms-values")["data"]["values.json"]
        assert '"tire_pressure_low":{"clear":215,"threshold":205}' in values


def test_readiness_gates_the_next_stage_and_waiting_is_retried(tmp_path, kube_cluster, namespace):
    with platform(tmp_path, kube_cluster, namespace) as p:
        p.kube.cordon()  # pods stay Pending: no workload becomes ready
        try:
            with p.operator():
                p.create(p.fleet())
                wait_for(lambda: p.get().get("status", {}).get("phase") == "Progressing", 60, "Progressing")
                obj = p.get()
                progressing = next(c for c in obj["status"]["conditions"] if c["type"] == "Progressing")
                assert progressing["reason"] == "WaitingForReadiness" and "demo-kafka" in progressing["message"]
                installed = {release for verb, release in p.mutations()}
                assert installed == {"demo-kafka", "demo-timescaledb"}  # stage 2 waits for stage 1
                p.kube.cordon(False)
                p.wait_condition("Ready", timeout=120)
                assert sorted(release for _, release in p.mutations()) == sorted(f"demo-{c}" for c in ALL)
        finally:
            p.kube.cordon(False)


def test_an_operator_killed_mid_reconcile_finishes_the_work_after_a_restart(tmp_path, kube_cluster, namespace):
    with platform(tmp_path, kube_cluster, namespace) as p:
        with p.operator() as process:
            p.create(p.fleet())
            wait_for(lambda: p.helm_calls("upgrade"), 60, "the first Helm install to start")
            p.kill_operator(process)  # kill -9 of the operator and the helm it runs
        with p.operator():
            obj = p.wait_condition("Ready", timeout=180)
        assert set(p.releases()) == {f"demo-{c}" for c in ALL}
        assert {c: obj["status"]["components"][c]["state"] for c in ALL} == dict.fromkeys(ALL, "Ready")
