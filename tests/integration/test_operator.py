"""The real kopf operator against the Kubernetes API emulator, with the real helm binary."""

from __future__ import annotations

import pytest
from fleet_operator.model import STAGES

from tests.integration.operator_harness import NAMESPACE, platform
from tests.support.kube_emulator import wait_for

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
