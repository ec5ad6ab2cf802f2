"""From a FleetMonitor spec to the Helm releases it means: pure functions, no I/O beyond reading
files, so the unit tests cover them completely.

Values of a release = chart defaults (the chart's values.yaml, applied by Helm itself)
                    + the environment's overlay (environments/<env>/values/<chart>.yaml)
                    + what the resource says (spec.components.<name>.{replicas, resources, storage, image})
                    + spec.components.<name>.values, merged last.
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

from contracts.thresholds import Thresholds
from contracts.topics import ALL_TOPICS

# Dependency order: each stage waits for the previous one to be ready; deletion runs backwards.
STAGES: tuple[tuple[str, ...], ...] = (
    ("timescaledb", "kafka"),
    ("vector", "loader", "job-aggregates", "job-alarms", "job-inactivity", "job-kpis"),
    ("api", "grafana", "generator"),
)
COMPONENTS: tuple[str, ...] = ("kafka", "timescaledb", "vector", "loader", "api", "grafana", "generator")
JOBS: tuple[str, ...] = ("aggregates", "alarms", "inactivity", "kpis")
FLINK_CHART = "flink-job"


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


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text()) or {}


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
    if (settings.get("storage") or {}).get("size"):
        values["persistence"] = {"size": settings["storage"]["size"]}
    image = {key: value for key, value in (settings.get("image") or {}).items() if value}
    if image:
        values["image"] = image
    return values


class SpecError(ValueError):
    """The spec passed the CRD schema but still cannot work (the message names the field)."""


def thresholds_values(spec: dict) -> dict:
    """spec.thresholds checked with the contracts model (the same one the jobs load)."""
    raw = spec.get("thresholds") or {}
    try:
        return Thresholds.model_validate(raw).model_dump(mode="json", exclude_defaults=True)
    except ValidationError as error:
        problems = "; ".join(
            f"spec.thresholds.{'.'.join(map(str, item['loc']))}: {item['msg']}" if item["loc"] else item["msg"]
            for item in error.errors()
        )
        raise SpecError(problems) from None


def kafka_replication(values: dict) -> tuple[int, int]:
    """(default replication factor, brokers) of a kafka release's values as charts/kafka reads them:
    replication.defaultReplicationFactor capped at replicaCount (both 1 in the chart's defaults)."""
    brokers = int(values.get("replicaCount", 1))
    factor = int((values.get("replication") or {}).get("defaultReplicationFactor", 1))
    return min(factor, brokers), brokers


def topics(spec: dict, replication_factor: int = 1, brokers: int | None = None) -> dict[str, dict]:
    """Every topic of the contracts with its partitions, replication factor and config. A factor
    the spec leaves out is `replication_factor` (the kafka release's, see kafka_replication); like
    the chart, none exceeds `brokers`. min.insync.replicas above a topic's factor is refused: every
    acks=all write (the jobs' transactions) would fail."""
    declared = spec.get("topics") or {}
    overrides = declared.get("overrides") or {}
    unknown = sorted(set(overrides) - set(ALL_TOPICS))
    if unknown:
        raise SpecError(f"spec.topics.overrides.{unknown[0]}: not a topic of contracts.topics.ALL_TOPICS")
    result = {}
    for name in ALL_TOPICS:
        override = overrides.get(name) or {}
        factor = override.get("replicationFactor", declared.get("replicationFactor", replication_factor))
        if brokers is not None:
            factor = min(factor, brokers)
        config = {**(declared.get("config") or {}), **(override.get("config") or {})}
        min_insync = str(config.get("min.insync.replicas", 1))
        if min_insync.isdigit() and int(min_insync) > factor:
            own = "replicationFactor" in override or "min.insync.replicas" in (override.get("config") or {})
            where = f"spec.topics.overrides.{name}" if own else "spec.topics"
            raise SpecError(
                f"{where}: min.insync.replicas {min_insync} is above the replication factor "
                f"{factor} of {name}: every acks=all write to it would fail"
            )
        result[name] = {
            "partitions": override.get("partitions", declared.get("partitions", 6)),
            "replicationFactor": factor,
            "config": config,
        }
    return result


def _wiring(name: str, component: str, spec: dict) -> dict:
    """Values that connect the releases to each other and carry the spec's platform settings."""
    values: dict[str, Any] = {"fullnameOverride": f"{name}-{component}"}  # predictable service names
    if component == "kafka":
        declared = spec.get("topics") or {}
        values["topicDefaults"] = {"partitions": declared.get("partitions", 6)}
        if declared.get("config"):
            values["topicDefaults"]["config"] = declared["config"]
        if "replicationFactor" in declared:  # else the environment's overlay (prod: 3, min ISR 2)
            values["replication"] = {"defaultReplicationFactor": declared["replicationFactor"]}
        if declared.get("overrides"):
            values["topicOverrides"] = declared["overrides"]
    elif component == "timescaledb" and spec.get("retention"):
        values["retention"] = spec["retention"]
    if component.startswith("job-") or component in ("vector", "loader", "generator"):
        values["kafka"] = {"bootstrapServers": f"{name}-kafka:9092"}
    # The jobs read and write Kafka only; the loader moves their output into the database.
    if component in ("vector", "loader", "api", "grafana"):
        values["database"] = {"existingSecret": f"{name}-timescaledb"}
    return values


def desired_releases(name: str, spec: dict, charts_dir: Path, environments_dir: Path) -> list[Release]:
    """Every release of the resource in dependency order (disabled ones included, to be removed)."""
    environment = spec["environment"]
    overlays = environments_dir / environment / "values"
    components = spec.get("components") or {}
    jobs = spec.get("jobs") or {}
    thresholds = thresholds_values(spec)
    releases = []
    for stage, members in enumerate(STAGES):
        for component in members:
            if component.startswith("job-"):
                job_name = component.removeprefix("job-")
                settings = jobs.get(job_name) or {}
                chart = FLINK_CHART
                own = {
                    "job": {
                        "name": job_name,
                        "parallelism": settings.get("parallelism", 2),
                        "checkpointInterval": settings.get("checkpointInterval", "30s"),
                        "upgradeMode": settings.get("upgradeMode", "savepoint"),
                    },
                    "thresholds": thresholds,
                }
                if "alarmOutOfOrderness" in settings:
                    own["job"]["alarmOutOfOrderness"] = settings["alarmOutOfOrderness"]
                upgrade_mode = settings.get("upgradeMode", "savepoint")
            else:
                settings = components.get(component) or {}
                chart, own, upgrade_mode = component, {}, None
            values = merge_values(
                read_yaml(overlays / f"{chart}.yaml"),
                _wiring(name, component, spec),
                own,
                _common_keys(settings),
                settings.get("values"),
            )
            version = chart_version(charts_dir, chart)
            releases.append(
                Release(
                    component=component,
                    name=f"{name}-{component}",
                    chart=chart,
                    values=values,
                    enabled=settings.get("enabled", True),
                    upgrade_mode=upgrade_mode,
                    keep_volumes=not (settings.get("storage") or {}).get("deleteClaim", False),
                    stage=stage,
                    inputs_hash=inputs_hash(chart, version, values),
                )
            )
    topics(spec, *kafka_replication(kafka_values(releases, charts_dir)))  # refuses what cannot work
    return releases


def kafka_values(releases: list[Release], charts_dir: Path) -> dict:
    """The kafka release's values over its chart's defaults (what the topics are created from)."""
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
