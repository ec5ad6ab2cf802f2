"""From a FleetMonitor spec to the Helm releases it means: pure functions, no I/O beyond reading
files, so the unit tests cover them completely.

Values of a release = chart defaults (the chart's values.yaml, applied by Helm itself)
                    + the environment's overlay (environments/<env>/values/<chart>.yaml)
                    + what the resource says explicitly (spec.components.<name>.{replicas, resources,
                      storage, image}, spec.jobs.<job>.*, spec.topics, spec.retention, spec.thresholds)
                    + spec.components.<name>.values (spec.jobs.<job>.values), merged last.
A key the resource leaves out is not written at all, so the overlay's (else the chart's) value
stands: neither this module nor the CRD supplies defaults for keys an overlay can set.
The spec arrives with the CRD's defaults applied (by the API server; offline by
openapi.default_spec): this module reads them and repeats none (tests/unit/test_operator_model.py
fails on a `.get(key, default)` of a key the CRD defaults).
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from contracts.kafka_auth import COMPONENT_USERS, JOBS_GROUP_PREFIX
from contracts.thresholds import Thresholds
from contracts.topics import ALL_TOPICS

# THE list of installable components (issue 16): everything else reads it from here (Makefile
# charts-lint, tests/support, the CRD's spec.components/spec.jobs, held to it by a drift test).
JOBS: tuple[str, ...] = ("aggregates", "alarms", "inactivity", "kpis")  # one charts/flink-job release each
FLINK_CHART = "flink-job"
# Dependency order: each stage waits for the previous one to be ready; deletion runs backwards.
STAGES: tuple[tuple[str, ...], ...] = (
    ("timescaledb", "kafka"),
    ("vector", "loader", *(f"job-{job}" for job in JOBS)),
    ("api", "grafana", "generator"),
)
COMPONENTS: tuple[str, ...] = tuple(c for stage in STAGES for c in stage if not c.startswith("job-"))
"""The components with a chart of their own (spec.components.<name>)."""
CHARTS: tuple[str, ...] = (*COMPONENTS, FLINK_CHART)
"""The installable charts under charts/ (library charts and the operator's own chart aside)."""
# The database role each client component logs in as (storage/roles.py; the timescaledb chart
# makes the Secret `<name>-timescaledb-<role>` of each).
DATABASE_ROLES: dict[str, str] = {"vector": "writer", "loader": "writer", "api": "api", "grafana": "grafana"}
# spec.jobs.<job> keys that land on the chart's job.* values (when the spec sets them).
JOB_KEYS: tuple[str, ...] = ("parallelism", "checkpointInterval", "upgradeMode", "alarmOutOfOrderness", "tripWindows")


@dataclass(frozen=True)
class Release:
    """One Helm release the resource asks for."""

    component: str  # "kafka", ..., "job-alarms"
    name: str  # <fleetmonitor>-<component>
    chart: str  # folder under the charts directory
    values: dict[str, Any]
    enabled: bool = True
    upgrade_mode: str | None = None  # Flink jobs only
    keep_volumes: bool = True
    stage: int = 0
    inputs_hash: str = field(default="", compare=False)


def deep_merge(base: Any, override: Any) -> Any:
    """Helm's rule: maps merge key by key, anything else (lists included) replaces, and an explicit
    null removes the key (so an override can drop a chart default)."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return copy.deepcopy(override)
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = deep_merge(merged.get(key), value)
    return merged


def merge_values(*layers: dict | None) -> dict:
    """Merge value layers, later ones winning."""
    merged: dict = {}
    for layer in layers:
        if layer:
            merged = deep_merge(merged, layer)
    return merged


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster, same safe subset


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    return yaml.load(path.read_text(), Loader=_LOADER) or {}


def chart_version(charts_dir: Path, chart: str) -> str:
    return str(read_yaml(charts_dir / chart / "Chart.yaml").get("version", "0.0.0"))


def inputs_hash(chart: str, version: str, values: dict) -> str:
    """What decides whether a release needs Helm: the chart, its version and the values."""
    document = json.dumps({"chart": chart, "version": version, "values": values}, sort_keys=True)
    return hashlib.sha256(document.encode()).hexdigest()[:16]


def _common_keys(settings: dict) -> dict:
    """The resource's per-component settings on the chart keys every chart accepts."""
    values: dict[str, Any] = {}
    if settings.get("replicas") is not None:
        values["replicaCount"] = settings["replicas"]
    if settings.get("resources"):
        values["resources"] = settings["resources"]
    storage = settings.get("storage")  # spec.components.* only: a job has no storage settings
    if storage and storage.get("size"):
        values["persistence"] = {"size": storage["size"]}
    image = {key: value for key, value in (settings.get("image") or {}).items() if value}
    if image:
        values["image"] = image
    return values


class SpecError(ValueError):
    """The spec passed the CRD schema but still cannot work (the message names the field)."""


def thresholds_values(spec: dict, environment: dict | None = None) -> dict:
    """The effective thresholds: the environment's (the flink-job overlay's `thresholds`) with
    spec.thresholds over them, checked as one document with the contracts model the jobs load.
    The jobs and Grafana (its threshold lines) get this same document."""
    raw = merge_values(environment, spec.get("thresholds"))
    try:
        return Thresholds.model_validate(raw).model_dump(mode="json", exclude_defaults=True)
    except ValidationError as error:
        problems = "; ".join(
            f"spec.thresholds.{'.'.join(map(str, item['loc']))}: {item['msg']}"
            if item["loc"]
            else f"spec.thresholds (over the environment's): {item['msg']}"
            for item in error.errors()
        )
        raise SpecError(problems) from None


def kafka_replication(values: dict) -> tuple[int, int]:
    """(default replication factor, brokers) of a kafka release's values over its chart's defaults
    (kafka_values), as charts/kafka reads them: replication.defaultReplicationFactor capped at
    replicaCount."""
    brokers = int(values["replicaCount"])
    return min(int(values["replication"]["defaultReplicationFactor"]), brokers), brokers


def _topic_field(spec: dict, name: str, keys: tuple[str, ...]) -> str:
    """Where a topic setting came from, for error messages: the resource or the kafka overlay."""
    declared = spec["topics"]
    override = (declared.get("overrides") or {}).get(name) or {}
    if any(key in override or key in (override.get("config") or {}) for key in keys):
        return f"spec.topics.overrides.{name}"
    if any(key in declared or key in (declared.get("config") or {}) for key in keys):
        return "spec.topics"
    return f"the kafka values of environments/{spec.get('environment')} (topic {name})"


def check_topics(kafka: dict, spec: dict) -> None:
    """Refuse topic settings that cannot work, before any release is touched, naming the field:
    an override of a topic contracts.topics does not name, or min.insync.replicas above a topic's
    replication factor (every acks=all write, the jobs' transactions, would fail). `kafka`: the
    kafka release's values over its chart's defaults (kafka_values); `spec` only names the field.
    The topics themselves are the kafka chart's (its topics Job creates and converges them, with
    the partitions and config of those values): the operator computes none of them."""
    overrides = kafka.get("topicOverrides") or {}
    unknown = sorted(set(overrides) - set(ALL_TOPICS))
    if unknown:
        spec_names = spec["topics"].get("overrides") or {}
        where = "spec.topics.overrides" if unknown[0] in spec_names else "kafka values topicOverrides"
        raise SpecError(f"{where}.{unknown[0]}: not a topic of contracts.topics.ALL_TOPICS")
    replication_factor, brokers = kafka_replication(kafka)
    defaults = (kafka.get("topicDefaults") or {}).get("config") or {}
    for name in ALL_TOPICS:
        override = overrides.get(name) or {}
        factor = min(int(override.get("replicationFactor", replication_factor)), brokers)
        min_insync = str({**defaults, **(override.get("config") or {})}.get("min.insync.replicas"))
        if min_insync.isdigit() and int(min_insync) > factor:  # unset: the brokers' own, capped at the factor
            where = _topic_field(spec, name, ("replicationFactor", "min.insync.replicas"))
            raise SpecError(
                f"{where}: min.insync.replicas {min_insync} is above the replication factor "
                f"{factor} of {name}: every acks=all write to it would fail"
            )


def _wiring(name: str, component: str, spec: dict) -> dict:
    """Values that connect the releases to each other and carry the spec's platform settings
    (only those the spec states: the rest is the overlay's)."""
    values: dict[str, Any] = {"fullnameOverride": f"{name}-{component}"}  # predictable service names
    if component == "kafka":
        declared = spec["topics"]
        defaults = {key: declared[key] for key in ("partitions", "config") if declared.get(key)}
        if defaults:
            values["topicDefaults"] = defaults
        if "replicationFactor" in declared:
            values["replication"] = {"defaultReplicationFactor": declared["replicationFactor"]}
        if declared.get("overrides"):
            values["topicOverrides"] = declared["overrides"]
    elif component == "timescaledb" and spec.get("retention"):
        values["retention"] = spec["retention"]
    if component.startswith("job-") or component in ("vector", "loader", "generator"):
        values["kafka"] = {"bootstrapServers": f"{name}-kafka:9092"}
    # The jobs read and write Kafka only; the loader moves their output into the database. Each
    # client logs in as its own least-privilege role (the timescaledb chart's Secret per role).
    if component in DATABASE_ROLES:
        values["database"] = {"existingSecret": f"{name}-timescaledb-{DATABASE_ROLES[component]}"}
    return values


def desired_releases(
    name: str, spec: dict, charts_dir: Path, environments_dir: Path, operator_peer: dict | None = None
) -> list[Release]:
    """Every release of the resource in dependency order (disabled ones included, to be removed).
    `operator_peer`: the NetworkPolicy peer of the operator's pods, admitted to what it calls."""
    environment = spec["environment"]
    overlays = environments_dir / environment / "values"
    components, jobs = spec["components"], spec["jobs"]
    thresholds = thresholds_values(spec, read_yaml(overlays / f"{FLINK_CHART}.yaml").get("thresholds"))
    releases = []
    for stage, members in enumerate(STAGES):
        for component in members:
            if component.startswith("job-"):
                job_name = component.removeprefix("job-")
                settings = jobs[job_name]
                chart = FLINK_CHART
                job = {key: settings[key] for key in JOB_KEYS if key in settings}
                own = {"job": {"name": job_name, **job}, "thresholds": thresholds}
            else:
                settings = components[component]
                chart = component
                # Grafana draws the threshold lines the jobs alarm on (charts/grafana renders them).
                own = {"thresholds": thresholds} if component == "grafana" else {}
            overlay = read_yaml(overlays / f"{chart}.yaml")
            overlay.pop("thresholds", None)  # in `thresholds` above: jobs and Grafana get one document
            values = merge_values(
                overlay,
                _wiring(name, component, spec),
                _kafka_auth_wiring(releases, name, component, chart, charts_dir),
                own,
                _common_keys(settings),
                settings.get("values"),
            )
            if operator_peer and (component == "kafka" or chart == FLINK_CHART):
                _admit(values, operator_peer)
            version = chart_version(charts_dir, chart)
            upgrade_mode = None
            if chart == FLINK_CHART:  # the overlay's, else the chart's, unless the spec says
                chart_job = read_yaml(charts_dir / chart / "values.yaml").get("job") or {}
                upgrade_mode = {**chart_job, **values["job"]}.get("upgradeMode")
            releases.append(
                Release(
                    component=component,
                    name=f"{name}-{component}",
                    chart=chart,
                    values=values,
                    enabled=settings["enabled"],
                    upgrade_mode=upgrade_mode,
                    keep_volumes=keeps_volumes(spec, component),
                    stage=stage,
                    inputs_hash=inputs_hash(chart, version, values),
                )
            )
    check_topics(kafka_values(releases, charts_dir), spec)  # refuses what cannot work
    return releases


def keeps_volumes(spec: dict, component: str) -> bool:
    """False when spec.components.<component>.storage.deleteClaim asks for its volume claims to go
    with it (a job has no volumes of its own)."""
    settings = spec["components"].get(component)
    return settings is None or not settings["storage"]["deleteClaim"]


def operator_peer(namespace: str | None, pod_labels: dict | None) -> dict | None:
    """The NetworkPolicy peer that admits the operator's pods (in their own namespace) to the Kafka
    and Flink releases it manages: topics are checked over Kafka's client port, savepoints taken
    over Flink's REST port. None outside a cluster."""
    if not (namespace and pod_labels):
        return None
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "podSelector": {"matchLabels": dict(pod_labels)},
    }


def _admit(values: dict, peer: dict) -> None:
    """Add `peer` to the release's NetworkPolicy sources, after whatever the layers listed: the
    operator in its own namespace must reach Kafka (topics) and Flink's REST API (savepoints)."""
    policy = values.setdefault("networkPolicy", {})
    listed = list(policy.get("extraIngressFrom") or [])
    policy["extraIngressFrom"] = listed if peer in listed else [*listed, peer]


@dataclass(frozen=True)
class KafkaSecrets:
    users: str
    """Secret of the users' passwords (one key per user)."""
    tls: str
    """Secret whose ca.crt the clients trust."""


def kafka_secrets(kafka: dict) -> KafkaSecrets | None:
    """The kafka release's Secrets its clients log in with, from its values over the chart's
    defaults (kafka_values); None when it runs PLAINTEXT. Names as charts/kafka makes them."""
    if not (kafka.get("auth") or {}).get("enabled"):
        return None
    fullname = kafka.get("fullnameOverride") or "fleet-monitor-kafka"
    return KafkaSecrets(
        users=kafka["auth"].get("existingSecret") or f"{fullname}-users",
        tls=(kafka.get("tls") or {}).get("existingSecret") or f"{fullname}-tls",
    )


def _kafka_auth_wiring(built: list[Release], name: str, component: str, chart: str, charts_dir: Path) -> dict:
    """A Kafka client release logs in with its own user (contracts.kafka_auth.COMPONENT_USERS,
    each chart's kafka.auth.username) when the kafka release, built before it, runs SASL_SSL:
    the kafka release's Secrets go into its kafka.auth values."""
    if chart not in COMPONENT_USERS or not any(release.component == "kafka" for release in built):
        return {}
    secrets = kafka_secrets(kafka_values(built, charts_dir))
    if secrets is None:
        return {}
    wiring: dict[str, Any] = {"enabled": True, "passwordSecret": secrets.users, "caSecret": secrets.tls}
    kafka: dict[str, Any] = {"auth": wiring}
    if chart == FLINK_CHART and not f"{name}-{component}".startswith(JOBS_GROUP_PREFIX):
        # The jobs' ACLs cover groups under the prefix; the release's name (the default group) is not.
        kafka["consumerGroup"] = f"{JOBS_GROUP_PREFIX}-{name}-{component.removeprefix('job-')}"
    return {"kafka": kafka}


def kafka_values(releases: list[Release], charts_dir: Path) -> dict:
    """The kafka release's values over its chart's defaults (what its topics Job creates the topics from)."""
    kafka = next(release for release in releases if release.component == "kafka")
    return merge_values(read_yaml(charts_dir / "kafka" / "values.yaml"), kafka.values)


def by_stage(releases: list[Release], reverse: bool = False) -> list[list[Release]]:
    stages: dict[int, list[Release]] = {}
    for release in releases:
        stages.setdefault(release.stage, []).append(release)
    order = sorted(stages, reverse=reverse)
    return [stages[index] for index in order]


# --- status ---------------------------------------------------------------------------------------

CONDITION_TYPES = ("Ready", "Progressing", "Degraded", "Paused")


def now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[dict] | None,
    type_: str,
    status: bool,
    reason: str,
    message: str = "",
    *,
    generation: int | None = None,
    timestamp: str | None = None,
) -> list[dict]:
    """Conditions as Kubernetes (and Strimzi/Flink operators) keep them: one per type,
    lastTransitionTime changes only when the status flips."""
    value = "True" if status else "False"
    result = [dict(item) for item in conditions or [] if item.get("type") != type_]
    previous = next((item for item in conditions or [] if item.get("type") == type_), None)
    changed = previous is None or previous.get("status") != value
    condition = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": (timestamp or now()) if changed else previous["lastTransitionTime"],
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    result.append(condition)
    return sorted(
        result, key=lambda item: CONDITION_TYPES.index(item["type"]) if item["type"] in CONDITION_TYPES else 9
    )


def condition(conditions: list[dict] | None, type_: str) -> dict | None:
    return next((item for item in conditions or [] if item.get("type") == type_), None)
