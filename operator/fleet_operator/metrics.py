"""Prometheus metrics of the operator (served on FLEET_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from contracts import prometheus_names as names

RECONCILES = Counter(names.OPERATOR_RECONCILES, "Reconciliations by outcome", ["result"])
RECONCILE_SECONDS = Histogram(
    names.OPERATOR_RECONCILE_SECONDS,
    "Duration of one reconciliation",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300),
)
FAILURES = Counter(names.OPERATOR_FAILURES, "Failures by kind", ["kind"])
HELM_CALLS = Counter(names.OPERATOR_HELM_CALLS, "Helm operations", ["operation", "result"])
TOPICS_REPROVISIONED = Counter(
    names.OPERATOR_TOPICS_REPROVISIONED, "Kafka topics found missing and re-provisioned (the kafka release upgraded)"
)
DRIFT = Gauge(names.OPERATOR_DRIFT, "Drifted items found by the last self-healing pass", ["namespace", "name"])
