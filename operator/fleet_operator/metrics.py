"""Prometheus metrics of the operator (served on FLEET_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("fleet_operator_reconciles_total", "Reconciliations by outcome", ["result"])
RECONCILE_SECONDS = Histogram(
    "fleet_operator_reconcile_duration_seconds",
    "Duration of one reconciliation",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300),
)
FAILURES = Counter("fleet_operator_failures_total", "Failures by kind", ["kind"])
HELM_CALLS = Counter("fleet_operator_helm_operations_total", "Helm operations", ["operation", "result"])
TOPICS_CREATED = Counter("fleet_operator_topics_created_total", "Kafka topics created by self-healing")
DRIFT = Gauge("fleet_operator_drift", "Drifted items found by the last self-healing pass", ["namespace", "name"])
