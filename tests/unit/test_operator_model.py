"""Values merging, dependency ordering, hashing and conditions of the operator (pure functions)."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
import yaml
from fleet_operator import model, openapi

from contracts.topics import ALL_TOPICS
from tests.support.crd import SCHEMA, defaulted

ROOT = Path(__file__).resolve().parents[2]


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
    for chart in model.CHARTS:
        (charts / chart).mkdir(parents=True)
        (charts / chart / "Chart.yaml").write_text(f"name: {chart}\nversion: 1.2.3\n")
    shutil.copy(ROOT / "charts/kafka/values.yaml", charts / "kafka")  # the topic checks read its defaults
    (envs / "qa/values").mkdir(parents=True)
    (envs / "qa/values/api.yaml").write_text("replicaCount: 2\nresources: {limits: {cpu: '1'}}\nlogLevel: info\n")
    (envs / "qa/values/flink-job.yaml").write_text("job: {parallelism: 8}\ntaskSlots: 4\n")
    return charts, envs


def releases(dirs, spec):
    return {r.component: r for r in model.desired_releases("fm", defaulted({"environment": "qa", **spec}), *dirs)}


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
        "database": {"existingSecret": "fm-timescaledb-api"},  # the timescaledb release's API role
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
        "parallelism": 3,  # the spec wins over the overlay's 8
        "upgradeMode": "last-state",
    }  # no checkpointInterval: neither the spec nor the overlay sets it, so the chart's stands
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
        "database": {"existingSecret": "fm-timescaledb-writer"},  # the writer role's Secret
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


def _kafka(values: dict) -> dict:
    """A kafka release's values over its chart's defaults, as model.kafka_values gives them."""
    return model.merge_values(yaml.safe_load((ROOT / "charts/kafka/values.yaml").read_text()), values)


def test_kafka_replication_comes_from_the_environment_unless_the_spec_sets_it(dirs):
    """A spec without topics.replicationFactor keeps the overlay's (prod: 3 beside min ISR 2);
    the CRD default of 1 used to override it, leaving 1 replica under min.insync.replicas 2."""
    _, envs = dirs
    (envs / "qa/values/kafka.yaml").write_text(
        "replicaCount: 3\nreplication: {defaultReplicationFactor: 3, minInsyncReplicas: 2}\n"
    )
    kafka = releases(dirs, {"topics": {"partitions": 6}})["kafka"]
    assert kafka.values["replication"] == {"defaultReplicationFactor": 3, "minInsyncReplicas": 2}
    assert model.kafka_replication(_kafka(kafka.values)) == (3, 3)
    assert releases(dirs, {"topics": {"replicationFactor": 2}})["kafka"].values["replication"] == {
        "defaultReplicationFactor": 2,
        "minInsyncReplicas": 2,
    }
    assert model.kafka_replication(_kafka({"replicaCount": 1, "replication": {"defaultReplicationFactor": 3}})) == (
        1,
        1,
    )
    assert model.kafka_replication(_kafka({})) == (1, 1)  # the chart's defaults
    three = {"replicaCount": 3, "replication": {"defaultReplicationFactor": 3}}
    model.check_topics(_kafka({**three, "topicDefaults": {"config": {"min.insync.replicas": "2"}}}), defaulted({}))


def test_min_insync_replicas_above_the_replication_factor_is_refused(dirs):
    spec = defaulted({"topics": {"replicationFactor": 1, "config": {"min.insync.replicas": "2"}}})
    kafka = _kafka({"replicaCount": 1, "topicDefaults": {"config": {"min.insync.replicas": "2"}}})
    with pytest.raises(model.SpecError, match=r"^spec.topics: min.insync.replicas 2 is above the replication factor 1"):
        model.check_topics(kafka, spec)
    spec = defaulted({"topics": {"overrides": {"fleet.alerts": {"config": {"min.insync.replicas": "3"}}}}})
    kafka = _kafka(
        {
            "replicaCount": 2,
            "replication": {"defaultReplicationFactor": 3},
            "topicOverrides": spec["topics"]["overrides"],
        }
    )
    with pytest.raises(model.SpecError, match=r"^spec.topics.overrides.fleet.alerts: .* factor 2 of fleet.alerts"):
        model.check_topics(kafka, spec)
    with pytest.raises(model.SpecError, match=r"^the kafka values of environments/qa \(topic fleet.alerts\): min"):
        model.check_topics(kafka, defaulted({"environment": "qa"}))  # set by the overlay, not the resource
    # the operator refuses it before any release is touched (status InvalidSpec)
    with pytest.raises(model.SpecError, match=r"min\.insync\.replicas"):
        releases(dirs, {"topics": {"config": {"min.insync.replicas": "2"}}})


def test_topic_overrides_must_name_a_contract_topic():
    with pytest.raises(model.SpecError, match=r"^spec.topics.overrides.fleet.nope"):
        model.check_topics(
            _kafka({"topicOverrides": {"fleet.nope": {}}}), defaulted({"topics": {"overrides": {"fleet.nope": {}}}})
        )
    with pytest.raises(model.SpecError, match=r"^kafka values topicOverrides.fleet.nope"):
        model.check_topics(_kafka({"topicOverrides": {"fleet.nope": {}}}), defaulted({}))
    model.check_topics(_kafka({"topicOverrides": {name: {"partitions": 1} for name in ALL_TOPICS}}), defaulted({}))


def test_invalid_thresholds_name_the_field():
    with pytest.raises(model.SpecError, match=r"spec.thresholds.inactivity.check_interval_s"):
        model.thresholds_values({"thresholds": {"inactivity": {"check_interval_s": 60}}})


def test_thresholds_are_the_environments_with_the_spec_over_them_checked_as_one(dirs):
    _, envs = dirs
    (envs / "qa/values/flink-job.yaml").write_text(
        "thresholds:\n  defaults: {speeding: {threshold: 5, clear: 0}, co2_high: {threshold: 1100}}\n"
        "  inactivity: {timeout_s: 30, check_interval_s: 10}\n"
    )
    spec = {
        "thresholds": {
            "defaults": {"co2_high": {"threshold": 1200}},
            "fleets": {"f1": {"battery_low": {"threshold": 10}}},
        }
    }
    rel = releases(dirs, spec)
    expected = {
        "defaults": {"speeding": {"threshold": 5.0, "clear": 0.0}, "co2_high": {"threshold": 1200.0}},  # spec > overlay
        "fleets": {"f1": {"battery_low": {"threshold": 10.0}}},
        "inactivity": {"timeout_s": 30.0, "check_interval_s": 10.0},  # the overlay's, the spec is silent
    }
    for job in model.JOBS:
        assert rel[f"job-{job}"].values["thresholds"] == expected
    # Grafana's threshold lines come from the very document the jobs load.
    assert rel["grafana"].values["thresholds"] == expected
    assert all("thresholds" not in rel[c].values for c in model.COMPONENTS if c != "grafana")
    # A spec threshold valid alone but not over the overlay's clear level is refused, naming the field.
    with pytest.raises(
        model.SpecError, match=r"spec.thresholds.*speeding: clear \(0.0\) must be at or below threshold"
    ):
        releases(dirs, {"thresholds": {"defaults": {"speeding": {"threshold": -3}}}})


def test_order_is_databases_and_kafka_then_pipeline_then_frontends(dirs):
    ordered = [r.component for r in model.desired_releases("fm", defaulted({"environment": "qa"}), *dirs)]
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
    stages = model.by_stage(model.desired_releases("fm", defaulted({"environment": "qa"}), *dirs), reverse=True)
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
    # no partitions or replication factor default: the environment's Kafka values decide
    assert defaulted["spec"]["topics"] == {}
    assert defaulted["spec"]["jobs"]["alarms"] == {"enabled": True}  # job.* from the overlay
    assert openapi.validate(SCHEMA, defaulted) == []
    bad = {"spec": {"environment": "qa", "components": {"api": {"resources": {"limits": {"cpu": "lots"}}}}}}
    assert openapi.validate(SCHEMA, bad)[0].startswith("spec.components.api.resources.limits.cpu:")
    assert openapi.validate(SCHEMA, {"spec": {}}) == ["spec.environment: Required value"]


@pytest.mark.parametrize("env", ["dev", "qa", "prod"])
def test_environment_resources_are_valid(env):
    obj = yaml.safe_load((ROOT / f"environments/{env}/fleetmonitor.yaml").read_text())
    assert obj["spec"]["environment"] == env
    assert openapi.validate(SCHEMA, openapi.apply_defaults(SCHEMA, obj)) == []
    model.desired_releases("fleet-monitor", defaulted(obj["spec"]), ROOT / "charts", ROOT / "environments")


# --- precedence: explicit spec > environment overlay > chart default ---------------------------


def test_precedence_spec_over_overlay_over_chart_default(dirs):
    _, envs = dirs
    (envs / "qa/values/flink-job.yaml").write_text("job: {parallelism: 8, checkpointInterval: 60s}\n")
    (envs / "qa/values/kafka.yaml").write_text("topicDefaults: {partitions: 3}\n")
    (envs / "qa/values/timescaledb.yaml").write_text(
        "persistence: {size: 50Gi}\nretention: {readings: 7 days, aggregates: 90 days}\n"
    )
    silent = releases(dirs, {})
    assert silent["job-alarms"].values["job"] == {"name": "alarms", "parallelism": 8, "checkpointInterval": "60s"}
    assert silent["kafka"].values["topicDefaults"] == {"partitions": 3}
    assert silent["timescaledb"].values["persistence"] == {"size": "50Gi"}
    assert silent["timescaledb"].values["retention"] == {"readings": "7 days", "aggregates": "90 days"}
    spoken = releases(
        dirs,
        {
            "jobs": {"alarms": {"parallelism": 3}},
            "topics": {"partitions": 12},
            "components": {"timescaledb": {"storage": {"size": "9Gi"}}},
            "retention": {"readings": "2 days"},
        },
    )
    assert spoken["job-alarms"].values["job"] == {"name": "alarms", "parallelism": 3, "checkpointInterval": "60s"}
    assert spoken["job-kpis"].values["job"]["parallelism"] == 8  # only the job the spec names
    assert spoken["kafka"].values["topicDefaults"] == {"partitions": 12}
    assert spoken["timescaledb"].values["persistence"] == {"size": "9Gi"}
    assert spoken["timescaledb"].values["retention"] == {"readings": "2 days", "aggregates": "90 days"}
    # Neither sets it: the key is absent, so Helm applies the chart's default (job.checkpointInterval 1s).
    (envs / "qa/values/flink-job.yaml").write_text("taskSlots: 4\n")
    assert releases(dirs, {})["job-alarms"].values["job"] == {"name": "alarms"}


def test_the_upgrade_mode_is_the_specs_else_the_overlays_else_the_charts(dirs):
    charts, envs = dirs
    (charts / "flink-job/values.yaml").write_text("job: {upgradeMode: savepoint, parallelism: 2}\n")
    assert releases(dirs, {})["job-alarms"].upgrade_mode == "savepoint"
    (envs / "qa/values/flink-job.yaml").write_text("job: {upgradeMode: last-state}\n")
    assert releases(dirs, {})["job-alarms"].upgrade_mode == "last-state"
    spoken = releases(dirs, {"jobs": {"alarms": {"upgradeMode": "stateless"}}})
    assert spoken["job-alarms"].upgrade_mode == spoken["job-alarms"].values["job"]["upgradeMode"] == "stateless"


def _spec(env: str) -> dict:
    return yaml.safe_load((ROOT / f"environments/{env}/fleetmonitor.yaml").read_text())


def _values(env: str, obj: dict, environments: Path = ROOT / "environments") -> dict[str, dict]:
    rel = model.desired_releases("fleet-monitor", obj["spec"], ROOT / "charts", environments)
    return {r.component: r.values for r in rel}


def _crd_defaults(schema: dict, path: tuple = ()):
    """(path, default) of every field of the schema that declares one."""
    for key, sub in (schema.get("properties") or {}).items():
        if "default" in sub:
            yield (*path, key), sub["default"]
        yield from _crd_defaults(sub, (*path, key))
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _crd_defaults(schema["additionalProperties"], (*path, "*"))


OPERATOR_SWITCHES = {"paused", "enabled", "deleteClaim"}  # read by the operator, no chart has them


def test_crd_defaults_never_beat_an_overlay():
    """The API server writes the CRD's defaults into every resource; none may be a value a release
    receives, or an overlay's value would lose to a default nobody wrote (job.parallelism 2 did).
    So the CRD defaults empty objects (to hold those below) and the operator's own switches only;
    test_every_overlay_key_reaches_a_release_of_its_environment checks the outcome per overlay key."""
    defaults = list(_crd_defaults(SCHEMA["properties"]["spec"]))
    assert defaults
    for path, default in defaults:
        assert default == {} or (path[-1] in OPERATOR_SWITCHES and isinstance(default, bool)), path


STATUS_NAMES = {"old", "status", "patch"}  # status.* (and patches of it): the CRD defaults nothing there


def _repeated_defaults(source: str, defaults: dict[str, list]) -> list[str]:
    """`x.get(KEY, D)`, `x.get(KEY) or D` and `x.setdefault(KEY, D)` where the CRD defaults KEY to D."""
    found = []
    for node in ast.walk(ast.parse(source)):
        call, fallback = None, None
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and isinstance(node.values[0], ast.Call):
            call, fallback = node.values[0], node.values[1]
        elif isinstance(node, ast.Call) and len(node.args) == 2:
            call, fallback = node, node.args[1]
        if call is None or not isinstance(call.func, ast.Attribute) or call.func.attr not in ("get", "setdefault"):
            continue
        receiver = call.func.value
        if isinstance(receiver, ast.Name) and receiver.id in STATUS_NAMES:
            continue
        key = call.args[0] if call.args else None
        if not (isinstance(key, ast.Constant) and key.value in defaults):
            continue
        try:
            value = ast.literal_eval(fallback)
        except ValueError:
            continue
        if value in defaults[key.value]:
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_crd_default_is_repeated_in_the_operator():
    """The CRD owns the operator-level defaults (the API server applies them; openapi.default_spec
    offline): a fallback in the operator's code equal to one of them is a second copy."""
    defaults: dict[str, list] = {}
    for path, default in _crd_defaults(SCHEMA["properties"]["spec"]):
        defaults.setdefault(path[-1], []).append(default)
    sources = sorted((ROOT / "operator/fleet_operator").glob("*.py"))
    found = {path.name: _repeated_defaults(path.read_text(), defaults) for path in sources}
    assert {name: lines for name, lines in found.items() if lines} == {}
    probe = (
        'spec.get("paused", False)\n(spec.get("components") or {}).get("kafka") or {}\nold.get("components") or {}\n'
    )
    assert len(_repeated_defaults(probe, defaults)) == 3  # the check itself finds them (status aside)


def test_the_operator_computes_no_topic_settings():
    """The kafka chart's topics Job owns the topics; partitions default once, in its values.yaml."""
    source = "\n".join(path.read_text() for path in (ROOT / "operator/fleet_operator").glob("*.py"))
    assert "NewTopic" not in source and "create_topics" not in source
    assert not re.search(r"get\(\s*[\"']partitions[\"']\s*,", source)
    assert yaml.safe_load((ROOT / "charts/kafka/values.yaml").read_text())["topicDefaults"]["partitions"] >= 1


def _leaves(document, path: tuple = ()):
    if isinstance(document, dict) and document:
        for key, value in document.items():
            yield from _leaves(value, (*path, key))
    else:
        yield path, document


def _changed(value, step: int):
    """Another value of the same kind: numbers and the first number in a string move by `step`."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + step
    if isinstance(value, str):
        match = re.search(r"\d+", value)
        if not match:
            return f"{value}-changed"
        return f"{value[: match.start()]}{int(match.group()) + step}{value[match.end() :]}"
    if isinstance(value, list):
        return [*value, {"changed": step}]
    return {"changed": step}


def _dig(values: dict, path: tuple):
    for key in path:
        if not isinstance(values, dict) or key not in values:
            return None
        values = values[key]
    return values


OVERLAY_KEYS = [
    (env, overlay.stem, path)
    for env in ("dev", "qa", "prod")
    for overlay in sorted((ROOT / "environments" / env / "values").glob("*.yaml"))
    for path, _ in _leaves(yaml.safe_load(overlay.read_text()))
]


@pytest.mark.parametrize(
    ("env", "chart", "path"), OVERLAY_KEYS, ids=[f"{e}/{c}:{'.'.join(p)}" for e, c, p in OVERLAY_KEYS]
)
def test_every_overlay_key_reaches_a_release_of_its_environment(env, chart, path, tmp_path):
    """Generated from the overlay files: each key, changed, shows up in the values the operator
    computes for the environment's own FleetMonitor (as the API server defaults it). A key the
    resource sets for every release of the chart never takes effect and fails here: set it in one
    place (docs/operator.md: Configuration precedence)."""
    environments = tmp_path / "environments"
    shutil.copytree(ROOT / "environments", environments)
    overlay = environments / env / "values" / f"{chart}.yaml"
    document = yaml.safe_load(overlay.read_text())
    obj = openapi.apply_defaults(SCHEMA, _spec(env))
    for step in (1, -1):  # -1 when +1 leaves the allowed range (e.g. check_interval_s <= 30)
        new = _changed(_dig(document, path), step)
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = new
        overlay.write_text(yaml.safe_dump(document))
        try:
            values = _values(env, obj, environments)
            break
        except model.SpecError:
            continue
    mine = [
        component
        for component, v in values.items()
        if (model.FLINK_CHART if component.startswith("job-") else component) == chart
    ]
    found = [component for component in mine if _dig(values[component], path) == new]
    assert found, (
        f"environments/{env}/values/{chart}.yaml {'.'.join(path)} changed to {new!r} reaches none of {mine}: "
        f"the FleetMonitor sets it for each of them ({[_dig(values[c], path) for c in mine]})"
    )


def test_the_operator_is_admitted_to_kafka_and_flink_after_what_the_values_list(dirs):
    """Kafka's client port (topics) and each job's REST port (savepoints) admit the operator's pods
    from its own namespace, besides any sources the resource's values list; nothing else is opened."""
    peer = model.operator_peer("fleet-system", {"app.kubernetes.io/name": "fleet-operator"})
    listed = {"ipBlock": {"cidr": "10.0.0.0/8"}}
    spec = {"environment": "qa", "components": {"kafka": {"values": {"networkPolicy": {"extraIngressFrom": [listed]}}}}}
    found = {r.component: r for r in model.desired_releases("fm", defaulted(spec), *dirs, operator_peer=peer)}
    assert found["kafka"].values["networkPolicy"]["extraIngressFrom"] == [listed, peer]
    jobs = [r for r in found.values() if r.chart == "flink-job"]
    assert jobs and all(r.values["networkPolicy"]["extraIngressFrom"] == [peer] for r in jobs)
    others = [r for r in found.values() if r.component != "kafka" and r.chart != "flink-job"]
    assert others and not any("networkPolicy" in r.values for r in others)
    assert peer == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "fleet-system"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "fleet-operator"}},
    }


def test_operator_settings_keep_their_variables_and_name_bad_ones(monkeypatch, capsys):
    from fleet_operator.__main__ import main
    from fleet_operator.settings import Settings

    from contracts.settings import env_name

    monkeypatch.setenv("FLEET_HEAL_INTERVAL_S", "2.5")
    monkeypatch.setenv("FLEET_OPERATOR_NAMESPACE", "ops")
    monkeypatch.setenv("FLEET_OPERATOR_POD_LABELS", '{"app": "op"}')
    settings = Settings.from_env()
    assert settings.heal_interval_s == 2.5 and settings.network_peer["podSelector"]["matchLabels"] == {"app": "op"}
    monkeypatch.setenv("FLEET_READY_TIMEOUT_S", "-1")
    with pytest.raises(ValueError, match="FLEET_READY_TIMEOUT_S must be a positive number, got '-1'"):
        Settings.from_env()
    assert main(["--check"]) == 2 and "FLEET_READY_TIMEOUT_S" in capsys.readouterr().err
    monkeypatch.delenv("FLEET_READY_TIMEOUT_S")
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for name, field in Settings.model_fields.items():
        assert env_name(Settings, name) in text and field.description in text


def test_one_list_of_components_the_crd_and_the_charts_directory_agree():
    """model.STAGES is the one list of components: the CRD's spec.components and spec.jobs name
    exactly those, and charts/ holds exactly model.CHARTS besides the operator's own chart and
    library charts (type: library, not installable)."""
    spec = SCHEMA["properties"]["spec"]["properties"]
    assert set(spec["components"]["properties"]) == set(model.COMPONENTS)
    assert set(spec["jobs"]["properties"]) == set(model.JOBS)
    installable = {
        path.parent.name
        for path in (ROOT / "charts").glob("*/Chart.yaml")
        if yaml.safe_load(path.read_text()).get("type", "application") != "library"
    }
    assert installable - {"fleet-operator"} == set(model.CHARTS)
    releases = [component for stage in model.STAGES for component in stage]
    assert len(set(releases)) == len(releases) == len(model.COMPONENTS) + len(model.JOBS)
