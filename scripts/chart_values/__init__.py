"""The typed source of every chart's values: one module per chart, each with a `Values` TypedDict
(scripts/chart-schemas.py writes values.schema.json and README.md from them)."""

from __future__ import annotations

import importlib
from types import ModuleType

NAMES = ("api", "fleet-operator", "flink-job", "generator", "grafana", "kafka", "loader", "timescaledb", "vector")
CHARTS: dict[str, ModuleType] = {
    name: importlib.import_module(f"chart_values.{name.replace('-', '_')}") for name in NAMES
}
