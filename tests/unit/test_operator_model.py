"""Values merging, dependency ordering, hashing and conditions of the operator (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fleet_operator import model, openapi

from contracts.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "charts/fleet-operator/crds/fleetmonitors.yaml").read_text())
SCHEMA = openapi.version_schema(CRD)


def test_deep_merge_follows_helm_rules():
    base = {"image": {"repository": "a", "tag": "1"}, "args": [1, 2], "drop": {"x": 1}, "keep": 1}
    override = {"image": {"tag": "2"}, "args": [3], "drop": None, "new": {"y": 2}}
    assert model.deep_merge(base, override) == {
        "image": {"repository": "a", "tag": "2"},  # maps merge key by key
        "args": [3],  # lists replace
        "keep": 1,
        "new": {"y": 2},
    }  # null removes
    assert base["image"]["tag"] == "1"  # inputs untouched


def test_merge_values_later_layers_win():
    assert model.merge_values({"a": 1, "b": {"c": 1}}, None, {"b": {"c": 2}}, {"a": 3}) == {"a": 3, "b": {"c": 2}}


@pytest.fixture
def dirs(tmp_path):
    charts, envs = tmp_path / "charts", tmp_path / "environments"
    for chart in ("kafka", "timescaledb", "vector", "loader", "api", "grafana", "generator", "flink-job"):
        (charts / chart).mkdir(parents=True)
        (charts / chart / "Chart.yaml").write_text(f"name: {chart}\nversion: 1.2.3\n")
    (envs / "qa/values").mkdir(parents=True)
    (envs / "qa/values/api.yaml").write_text("replicaCount: 2\nresources: {limits: {cpu: '1'}}\nlogLevel: info\n")
    (envs / "qa/values/flink-job.yaml").write_text("job: {parallelism: 8}\ntaskSlots: 4\n")
    return charts, envs


def releases(dirs, spec):
    return {r.component: r for r in model.desired_releases("fm", {"environment": "qa", **spec}, *dirs)}


def test_values_are_overlay_then_resource_settings_then_free_form_overrides(dirs):
    spec = {
        "components": {
            "api": {
                "replicas": 5,
                "resources": {"requests": {"memory": "1Gi"}},
                "storage": {"size": "3Gi"},
                "image": {"tag": "9.9"},
                "values": {"logLevel": "debug", "replicaCount": 7},
            }
        }
    }
    api = releases(dirs, spec)["api"]
    assert api.name == "fm-api" and api.chart == "api"
    assert api.values == {
        "fullnameOverride": "fm-api",
        "database": {"existingSecret": "fm-timescaledb"},  # wired to the timescaledb release
        "replicaCount": 7,  # spec.components.api.values is merged last
        "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}},
        "persistence": {"size": "3Gi"},
        "image": {"tag": "9.9"},
        "logLevel": "debug",
    }


def test_jobs_get_their_spec_thresholds_and_wiring(dirs):
    spec = {
        "jobs": {"alarms": {"parallelism": 3, "upgradeMode": "last-state"}},
        "thresholds": {"defaults": {"co2_high": {"threshold": 1200}}},
    }
    alarms = releases(dirs, spec)["job-alarms"]
    assert alarms.chart == "flink-job" and alarms.name == "fm-job-alarms"
    assert alarms.values["job"] == {
        "name": "alarms",
        "parallelism": 3,
        "checkpointInterval": "30s",
        "upgradeMode": "last-state",
    }  # the spec wins over the overlay's 8
    assert alarms.values["taskSlots"] == 4
    assert alarms.values["thresholds"] == {"defaults": {"co2_high": {"threshold": 1200.0}}}
    assert alarms.values["kafka"] == {"bootstrapServers": "fm-kafka:9092"}
    assert "database" not in alarms.values  # the jobs write Kafka only
    assert alarms.upgrade_mode == "last-state"
    faster = releases(dirs, {"jobs": {"alarms": {"alarmOutOfOrderness": 0.5}}})["job-alarms"]
    assert faster.values["job"]["alarmOutOfOrderness"] == 0.5


def test_loader_is_wired_to_kafka_and_the_database(dirs):
    loader = releases(dirs, {"components": {"loader": {"replicas": 2}}})["loader"]
    assert loader.chart == "loader" and loader.name == "fm-loader" and loader.stage == 1
    assert loader.values == {
        "fullnameOverride": "fm-loader",
        "kafka": {"bootstrapServers": "fm-kafka:9092"},
        "database": {"existingSecret": "fm-timescaledb"},
        "replicaCount": 2,
    }


def test_kafka_and_timescaledb_receive_topics_and_retention(dirs):
    spec = {
        "topics": {
            "partitions": 12,
            "replicationFactor": 3,
            "config": {"retention.ms": "1000"},
            "overrides": {"fleet.alerts": {"partitions": 1}},
        },
        "retention": {"readings": "3 days"},
    }
    rel = releases(dirs, spec)
    assert rel["kafka"].values["topicDefaults"] == {"partitions": 12, "config": {"retention.ms": "1000"}}
    assert rel["kafka"].values["replication"] == {"defaultReplicationFactor": 3}
    assert rel["kafka"].values["topicOverrides"] == {"fleet.alerts": {"partitions": 1}}
    assert rel["timescaledb"].values["retention"] == {"readings": "3 days"}


def test_kafka_replication_comes_from_the_environment_unless_the_spec_sets_it(dirs):
    """A spec without topics.replicationFactor keeps the overlay's (prod: 3 beside min ISR 2);
    the CRD default of 1 used to override it, leaving 1 replica under min.insync.replicas 2."""
    _, envs = dirs
    (envs / "qa/values/kafka.yaml").write_text(
        "replicaCount: 3\nreplication: {defaultReplicationFactor: 3, minInsyncReplicas: 2}\n"
    )
    kafka = releases(dirs, {"topics": {"partitions": 6}})["kafka"]
    assert kafka.values["replication"] == {"defaultReplicationFactor": 3, "minInsyncReplicas": 2}
    assert model.kafka_replication(kafka.values) == (3, 3)
    assert releases(dirs, {"topics": {"replicationFactor": 2}})["kafka"].values["replication"] == {
        "defaultReplicationFactor": 2,
        "minInsyncReplicas": 2,
    }
    assert model.kafka_replication({"replicaCount": 1, "replication": {"defaultReplicationFactor": 3}}) == (1, 1)
    assert model.kafka_replication({}) == (1, 1)  # the chart's defaults
    topics = model.topics({"topics": {"config": {"min.insync.replicas": "2"}}}, 3, 3)
    assert {t["replicationFactor"] for t in topics.values()} == {3}


def test_min_insync_replicas_above_the_replication_factor_is_refused(dirs):
    with pytest.raises(model.SpecError, match=r"^spec.topics: min.insync.replicas 2 is above the replication factor 1"):
        model.topics({"topics": {"replicationFactor": 1, "config": {"min.insync.replicas": "2"}}})
    with pytest.raises(model.SpecError, match=r"^spec.topics.overrides.fleet.alerts: .* factor 2 of fleet.alerts"):
        model.topics({"topics": {"overrides": {"fleet.alerts": {"config": {"min.insync.replicas": "3"}}}}}, 3, 2)
    # the operator refuses it before any release is touched (status InvalidSpec)
    with pytest.raises(model.SpecError, match=r"min\.insync\.replicas"):
        releases(dirs, {"topics": {"config": {"min.insync.replicas": "2"}}})


def test_topics_default_to_the_contracts():
    topics = model.topics({"topics": {"partitions": 4, "overrides": {"fleet.trips": {"partitions": 9}}}})
    assert list(topics) == list(ALL_TOPICS)
    assert {"fleet.store.readings", "fleet.alerts", "fleet.dead-letters"} <= set(topics)  # the jobs' outputs too
    assert topics["fleet.trips"]["partitions"] == 9 and topics["fleet.alerts"]["partitions"] == 4
    with pytest.raises(model.SpecError, match=r"spec.topics.overrides.fleet.nope"):
        model.topics({"topics": {"overrides": {"fleet.nope": {}}}})


def test_invalid_thresholds_name_the_field():
    with pytest.raises(model.SpecError, match=r"spec.thresholds.inactivity.check_interval_s"):
        model.thresholds_values({"thresholds": {"inactivity": {"check_interval_s": 60}}})


def test_order_is_databases_and_kafka_then_pipeline_then_frontends(dirs):
    ordered = [r.component for r in model.desired_releases("fm", {"environment": "qa"}, *dirs)]
    position = {component: index for index, component in enumerate(ordered)}
    for first in ("timescaledb", "kafka"):
        for later in (
            "vector",
            "loader",
            "job-aggregates",
            "job-alarms",
            "job-inactivity",
            "job-kpis",
            "api",
            "grafana",
        ):
            assert position[first] < position[later]
    for first in ("vector", "loader", "job-alarms"):
        for later in ("api", "grafana", "generator"):
            assert position[first] < position[later]
    stages = model.by_stage(model.desired_releases("fm", {"environment": "qa"}, *dirs), reverse=True)
    assert [r.component for r in stages[0]] == ["api", "grafana", "generator"]
    assert {r.component for r in stages[-1]} == {"timescaledb", "kafka"}


def test_hash_changes_only_for_the_release_whose_inputs_changed(dirs):
    before = releases(dirs, {})
    after = releases(dirs, {"components": {"grafana": {"replicas": 2}}})
    changed = {c for c in before if before[c].inputs_hash != after[c].inputs_hash}
    assert changed == {"grafana"}
    (dirs[0] / "vector/Chart.yaml").write_text("name: vector\nversion: 1.2.4\n")  # a new chart version
    assert releases(dirs, {})["vector"].inputs_hash != before["vector"].inputs_hash


def test_disabled_components_and_volume_policy(dirs):
    rel = releases(dirs, {"components": {"generator": {"enabled": False}, "kafka": {"storage": {"deleteClaim": True}}}})
    assert not rel["generator"].enabled
    assert rel["kafka"].keep_volumes is False and rel["timescaledb"].keep_volumes is True


def test_condition_transition_time_changes_only_on_a_flip():
    conditions = model.set_condition([], "Ready", False, "Progressing", generation=1, timestamp="t1")
    conditions = model.set_condition(conditions, "Ready", False, "Waiting", "msg", generation=2, timestamp="t2")
    ready = model.condition(conditions, "Ready")
    assert ready["lastTransitionTime"] == "t1" and ready["reason"] == "Waiting" and ready["observedGeneration"] == 2
    conditions = model.set_condition(conditions, "Ready", True, "Ready", timestamp="t3")
    assert model.condition(conditions, "Ready")["lastTransitionTime"] == "t3"
    conditions = model.set_condition(conditions, "Paused", False, "Running", timestamp="t4")
    assert [c["type"] for c in conditions] == ["Ready", "Paused"]


def test_crd_schema_defaults_and_field_named_errors():
    obj = {
        "apiVersion": "fleet-monitor.io/v1alpha1",
        "kind": "FleetMonitor",
        "metadata": {"name": "x"},
        "spec": {"environment": "qa", "components": {"api": {"replicas": 2}}},
    }
    defaulted = openapi.apply_defaults(SCHEMA, obj)
    assert defaulted["spec"]["components"]["api"]["enabled"] is True
    # no replication factor default: the environment's Kafka values decide (see below)
    assert defaulted["spec"]["topics"] == {"partitions": 6}
    assert openapi.validate(SCHEMA, defaulted) == []
    bad = {"spec": {"environment": "qa", "components": {"api": {"resources": {"limits": {"cpu": "lots"}}}}}}
    assert openapi.validate(SCHEMA, bad)[0].startswith("spec.components.api.resources.limits.cpu:")
    assert openapi.validate(SCHEMA, {"spec": {}}) == ["spec.environment: Required value"]


@pytest.mark.parametrize("env", ["dev", "qa", "prod"])
def test_environment_resources_are_valid(env):
    obj = yaml.safe_load((ROOT / f"environments/{env}/fleetmonitor.yaml").read_text())
    assert obj["spec"]["environment"] == env
    assert openapi.validate(SCHEMA, openapi.apply_defaults(SCHEMA, obj)) == []
    model.thresholds_values(obj["spec"])
    model.topics(obj["spec"])
