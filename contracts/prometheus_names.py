"""Prometheus metric names, defined once.

Our processes register their metrics under these names (api.observability, generator.runner,
storage.loader, devstack.alert_shipper, fleet_operator.metrics); the dashboards' PromQL
(scripts/build-dashboards.py) is built from them, and tests/unit/test_prometheus_rules.py checks
that every metric the alert rules (charts/*/rules) and the dashboards select is named here and
that our processes really export theirs. The Flink and Vector names are those products'
(Flink's Prometheus reporter: `flink_<scope>_<name>`, dots and dashes as underscores); the
end-to-end test finds the Flink ones on a real run's Prometheus.
"""

from __future__ import annotations

# --- our processes (names as scraped: counters with their _total suffix)
API_REQUESTS = "fleet_api_requests_total"  # labels: method, route, status
API_REQUEST_SECONDS = "fleet_api_request_seconds"  # histogram; labels: method, route
GENERATOR_EVENTS = "generator_events_total"  # labels: topic
GENERATOR_DELIVERY_ERRORS = "generator_delivery_errors_total"
GENERATOR_RATE = "generator_rate_events_per_second"
LOADER_RECORDS = "fleet_loader_records_total"  # labels: table
LOADER_REJECTED = "fleet_loader_rejected_total"  # labels: table
LOADER_LAST_BATCH_SECONDS = "fleet_loader_last_batch_seconds"
LOADER_LAST_LOAD = "fleet_loader_last_load_timestamp_seconds"
ALERT_SHIPPER_RECORDS = "fleet_alert_shipper_records_total"
ALERT_SHIPPER_REJECTED = "fleet_alert_shipper_rejected_total"
OPERATOR_RECONCILES = "fleet_operator_reconciles_total"  # labels: result
OPERATOR_RECONCILE_SECONDS = "fleet_operator_reconcile_duration_seconds"  # histogram
OPERATOR_FAILURES = "fleet_operator_failures_total"  # labels: kind
OPERATOR_HELM_CALLS = "fleet_operator_helm_operations_total"  # labels: operation, result
OPERATOR_TOPICS_REPROVISIONED = "fleet_operator_topics_reprovisioned_total"  # missing, kafka release re-run
OPERATOR_DRIFT = "fleet_operator_drift"  # labels: namespace, name

OURS: dict[str, tuple[str, ...]] = {
    "api": (API_REQUESTS, API_REQUEST_SECONDS),
    "generator": (GENERATOR_EVENTS, GENERATOR_DELIVERY_ERRORS, GENERATOR_RATE),
    "loader": (LOADER_RECORDS, LOADER_REJECTED, LOADER_LAST_BATCH_SECONDS, LOADER_LAST_LOAD),
    "alert-shipper": (ALERT_SHIPPER_RECORDS, ALERT_SHIPPER_REJECTED),
    "operator": (
        OPERATOR_RECONCILES,
        OPERATOR_RECONCILE_SECONDS,
        OPERATOR_FAILURES,
        OPERATOR_HELM_CALLS,
        OPERATOR_TOPICS_REPROVISIONED,
        OPERATOR_DRIFT,
    ),
}
"""Each of our processes -> the metrics it exports."""

# --- Flink's Prometheus reporter (JobManager and TaskManager, port 9249 in the chart)
FLINK_RUNNING_JOBS = "flink_jobmanager_numRunningJobs"
FLINK_JOB_UPTIME = "flink_jobmanager_job_uptime"  # ms; labels: job_name
FLINK_JOB_RESTARTS = "flink_jobmanager_job_numRestarts"
FLINK_COMPLETED_CHECKPOINTS = "flink_jobmanager_job_numberOfCompletedCheckpoints"
FLINK_FAILED_CHECKPOINTS = "flink_jobmanager_job_numberOfFailedCheckpoints"
FLINK_RECORDS_IN_PER_SECOND = "flink_taskmanager_job_task_numRecordsInPerSecond"
FLINK_OPERATOR_RECORDS_OUT = "flink_taskmanager_job_task_operator_numRecordsOut"
FLINK_KAFKA_LAG_MAX = "flink_taskmanager_job_task_operator_KafkaSourceReader_KafkaConsumer_records_lag_max"

# --- Vector's internal metrics (charts/vector, port 9598): not run by `make run`
VECTOR_CONSUMER_LAG = "vector_kafka_consumer_lag"
VECTOR_COMPONENT_ERRORS = "vector_component_errors_total"
VECTOR_BUFFER_BYTES = "vector_buffer_byte_size"

# --- Prometheus itself and our recording rules (charts/flink-job/rules)
UP = "up"
LAST_CHECKPOINT_COMPLETED = "fleet_monitor:flink_last_checkpoint_completed:timestamp_seconds"

EXTERNAL: dict[str, tuple[str, ...]] = {
    "flink": (
        FLINK_RUNNING_JOBS,
        FLINK_JOB_UPTIME,
        FLINK_JOB_RESTARTS,
        FLINK_COMPLETED_CHECKPOINTS,
        FLINK_FAILED_CHECKPOINTS,
        FLINK_RECORDS_IN_PER_SECOND,
        FLINK_OPERATOR_RECORDS_OUT,
        FLINK_KAFKA_LAG_MAX,
    ),
    "vector": (VECTOR_CONSUMER_LAG, VECTOR_COMPONENT_ERRORS, VECTOR_BUFFER_BYTES),
    "prometheus": (UP, LAST_CHECKPOINT_COMPLETED),
}
"""Names other products define (and our recording rules): each producer -> the names we select."""

ALL: frozenset[str] = frozenset(name for names in (*OURS.values(), *EXTERNAL.values()) for name in names)


def producer_of(name: str) -> str:
    """The process (or product) that exports a metric; KeyError names the unknown one."""
    for producer, names in (*OURS.items(), *EXTERNAL.items()):
        if name in names:
            return producer
    raise KeyError(f"metric {name!r} is not defined in contracts.prometheus_names")
