"""Where the pinned Java artifacts live (scripts/setup.d/java-artifacts.sh installs them).

In the job image the connectors sit in Flink's lib/ and need no mention; on a developer machine
and in CI they are in a cache outside the work tree, and the jobs add them to `pipeline.jars`.
"""

from __future__ import annotations

import os
from pathlib import Path


def java_dir() -> Path:
    """FLEET_JAVA_DIR, else the per-user cache the set-up script fills."""
    configured = os.environ.get("FLEET_JAVA_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "fleet-monitor" / "java"


def flink_lib_dir() -> Path | None:
    """Flink's lib/ of the process that runs the job, where known (the image sets FLINK_HOME, the
    local cluster FLINK_LIB_DIR)."""
    if os.environ.get("FLINK_LIB_DIR"):
        return Path(os.environ["FLINK_LIB_DIR"])
    if os.environ.get("FLINK_HOME"):
        return Path(os.environ["FLINK_HOME"]) / "lib"
    return None


def cached_connector_jars() -> list[Path]:
    """The pinned Flink connector jars of the cache."""
    return sorted((java_dir() / "flink").glob("*.jar"))


def flink_connector_jars() -> list[Path]:
    """The cache's Flink connector jars that Flink's lib/ does not already have: a jar both on the
    cluster's classpath and in pipeline.jars would load its classes twice."""
    lib = flink_lib_dir()
    have = {jar.name for jar in lib.glob("*.jar")} if lib else set()
    return [jar for jar in cached_connector_jars() if jar.name not in have]


def kafka_classpath() -> str:
    """The Apache Kafka broker's classpath; raises with the fix when it is not installed."""
    libs = java_dir() / "kafka"
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise FileNotFoundError(f"Apache Kafka jars not found in {libs}: run make setup")
    return f"{libs}/*"
