"""Build one Flink job from the chosen pipelines and run it until it ends or is stopped: in a local
mini-cluster when started as `python -m jobs`, or in the Flink cluster whose JobManager runs it in
application mode (Flink's PythonDriver: charts/flink-job, devstack.flink_cluster)."""

from __future__ import annotations

import logging
import os
import site
import sys
import threading
from pathlib import Path

from pyflink.common import Configuration, Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from jobs import pipelines
from jobs.config import JobConfig
from jobs.connectors import flink_connector_jars
from jobs.lifecycle import OUTPUT_TYPE, AlarmLifecycle, InactivityTimers
from jobs.tables import create_keyed_json_sink, create_parsed_views, create_source

log = logging.getLogger("jobs.runner")
# The local mini-cluster runs in the JVM PyFlink launches on its first call, so its options must be
# set before that. The parallel collector instead of G1 (the JVM's default here) took the full job
# set from ~42 s to ~34 s of CPU per 454k events (mean of three runs each): short-lived rows are most
# of what Flink allocates, and G1's write barriers tax every store. This reaches only the
# mini-cluster; a Flink cluster's JVMs take their options from its config (env.java.opts.*), where
# neither the chart nor devstack.flink_cluster sets a collector yet. JVM_ARGS set by the caller win.
os.environ.setdefault("JVM_ARGS", "-XX:+UseParallelGC")
REPO_ROOT = Path(__file__).resolve().parent.parent
# Event time handed to Python as text: thread-mode Python receives SQL timestamps as Java objects.
EVENT_AT = "CAST(rowtime AS STRING) AS event_at"
POLL_S = 0.05


def latest_checkpoint(checkpoint_dir: Path) -> str | None:
    """The newest complete checkpoint (chk-N with _metadata) under a checkpoint directory."""
    found = [meta.parent for meta in checkpoint_dir.glob("*/chk-*/_metadata")]
    if not found:
        return None
    return str(max(found, key=lambda path: (path.stat().st_mtime_ns, int(path.name.split("-")[1]))))


def in_flink_cluster() -> bool:
    """True when a Flink cluster's PythonDriver runs this program (application mode: the chart,
    devstack.flink_cluster): it hands over its gateway, where a local run starts its own JVM."""
    return "PYFLINK_GATEWAY_PORT" in os.environ


def job_options(config: JobConfig) -> dict[str, str]:
    """The Flink options that belong to the job, wherever it runs: set here only. A cluster's own
    config.yaml (charts/flink-job's configmap, devstack.flink_cluster) leaves them out; the job's
    value would win anyway."""
    options = {
        "execution.checkpointing.interval": f"{int(config.checkpoint_interval_s * 1000)}ms",
        "execution.checkpointing.dir": config.checkpoint_dir,
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "3",
        "parallelism.default": str(config.parallelism),
        "python.execution-mode": "thread",
        "python.executable": sys.executable,  # the TaskManagers' Python workers: this program's interpreter
        "python.pythonpath": ":".join([str(REPO_ROOT), *site.getsitepackages()]),
        "pipeline.object-reuse": "true",
        # Python operators hand results on at least every 100 ms (default 1 s): live alarms measured
        # 2.5 s -> 2.0 s from event to row.
        "python.fn-execution.bundle.time": "100",
        "table.local-time-zone": "UTC",
        "table.exec.source.idle-timeout": f"{int(config.idle_timeout_s * 1000)}ms",
        # Emit a watermark as soon as it advances: late-event routing then depends on the input
        # order only, not on timing, and restores/replays classify events the same way.
        "pipeline.auto-watermark-interval": "50ms",
    }
    jars = flink_connector_jars()
    if jars:
        options["pipeline.jars"] = ";".join(jar.as_uri() for jar in jars)
    if config.restore_from:
        options["execution.state-recovery.path"] = config.restore_from
    return options


def mini_cluster_options(config: JobConfig) -> dict[str, str]:
    """The process options of the local mini-cluster `python -m jobs` starts. In a Flink cluster
    its config.yaml has them (a job cannot change a running cluster's reporters or ports)."""
    options = {
        "python.client.executable": sys.executable,
        "metrics.reporter.prom.factory.class": "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
        "metrics.reporter.prom.port": config.metrics_port,
    }
    if config.rest_port:
        options["rest.port"] = str(config.rest_port)
        # Record counts served by REST refresh every 2 s (default 10 s): the live summary reads them.
        options["metrics.fetcher.update-interval"] = "2000"
    return options


def flink_configuration(config: JobConfig) -> Configuration:
    settings = job_options(config) if in_flink_cluster() else {**mini_cluster_options(config), **job_options(config)}
    conf = Configuration()
    for key, value in settings.items():
        conf.set_string(key, value)
    return conf


def _keyed_stream(t_env: StreamTableEnvironment, query: str, key):
    table = t_env.sql_query(query)
    return t_env.to_data_stream(table).key_by(key, key_type=Types.STRING())


def _route_lifecycle(t_env, statements, config: JobConfig, streams) -> None:
    """Alarm records to the alerts topic, device liveness to its store topic."""
    merged = streams[0].union(*streams[1:]) if len(streams) > 1 else streams[0]
    t_env.create_temporary_view("lifecycle_out", t_env.from_data_stream(merged))
    targets = {"alarms": config.alerts_topic}
    if "inactivity" in config.jobs:
        targets["device_inactivity"] = config.store_topics["device_inactivity"]
    for table, topic in targets.items():
        sink = create_keyed_json_sink(t_env, config, table, topic)
        statements.add_insert_sql(f"INSERT INTO {sink} SELECT k, payload FROM lifecycle_out WHERE tbl = '{table}'")


def build(env: StreamExecutionEnvironment, config: JobConfig):
    t_env = StreamTableEnvironment.create(env)
    for family in config.families:
        create_source(t_env, config, family)
        create_parsed_views(t_env, config, family)
    statements = t_env.create_statement_set()
    pipelines.dead_letters(t_env, statements, config)
    if "aggregates" in config.jobs:
        pipelines.aggregates(t_env, statements, config)
    if "kpis" in config.jobs:
        pipelines.kpis(t_env, statements, config)
    lifecycles = []
    if "alarms" in config.jobs:
        view = pipelines.alarm_candidates(t_env, config)
        query = (
            "SELECT source_id, fleet_id, alert_type, subject, CAST(event_rowtime AS STRING) AS event_at, val, "
            f"threshold, severity, cond FROM {view}"
        )
        stream = _keyed_stream(t_env, query, lambda row: f"{row.source_id}|{row.alert_type}")
        lifecycles.append(stream.process(AlarmLifecycle(), output_type=OUTPUT_TYPE))
    if "inactivity" in config.jobs:
        query = f"SELECT source_id, fleet_id, {EVENT_AT}, timeout_s FROM valid_device_heartbeat"
        stream = _keyed_stream(t_env, query, lambda row: row.source_id)
        inactivity = config.thresholds.inactivity
        timers = InactivityTimers(inactivity.timeout_s, inactivity.check_interval_s)
        lifecycles.append(stream.process(timers, output_type=OUTPUT_TYPE))
    if lifecycles:
        _route_lifecycle(t_env, statements, config, lifecycles)
    statements.attach_as_datastream()
    return t_env


def run(config: JobConfig, stop: threading.Event | None = None, on_submitted=None) -> str:
    """Run until the job ends (bounded input) or `stop` is set; returns the final job status.
    `on_submitted()` is called once the job is planned and submitted (the benchmark times from it)."""
    stop = stop or threading.Event()
    env = StreamExecutionEnvironment.get_execution_environment(flink_configuration(config))
    build(env, config)
    client = env.execute_async("fleet-monitor " + "+".join(config.jobs))
    job_id = str(client.get_job_id())
    log.info("job submitted", extra={"job_id": job_id, "jobs": list(config.jobs)})
    outcome = client.get_job_execution_result()
    if on_submitted:
        on_submitted()
    while not outcome.done() and not stop.is_set():
        stop.wait(POLL_S)  # notice the job's end promptly
    status = "FINISHED"
    if not outcome.done():
        client.cancel().result()
        status = "CANCELED"
    else:
        outcome.result()  # raises the job's failure
    log.info("job ended", extra={"status": status})
    return status
