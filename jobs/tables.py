"""Flink SQL tables every pipeline shares: raw sources (files or Kafka), the contract-checked
views over them, and the checkpointed filesystem sinks the loader merges into the database."""

from __future__ import annotations

from pyflink.table import Schema, StreamTableEnvironment

from jobs import fastpath
from jobs.config import JobConfig
from jobs.parse import function_name, output_columns, parse_function
from storage.writes import WRITES

EPOCH = "TIMESTAMP '1970-01-01 00:00:00'"
# The event time as SQL reads it (legacy heartbeats call it `time`); the parse function checks it
# equals the contract's event_time. Unusable times become the epoch: they never move a watermark
# and the row is a dead letter anyway.
ROWTIME_SQL = (
    "COALESCE(TRY_CAST(REPLACE(REPLACE(COALESCE(JSON_VALUE(line, '$.event_time'), JSON_VALUE(line, '$.time')),"
    f" 'T', ' '), 'Z', '') AS TIMESTAMP(3)), {EPOCH})"
)

# Flink types of the output columns (storage.writes names the columns, the migrations their types).
_SINK_TYPES = {
    "TIMESTAMP(3)": "time window_start window_end first_seen last_seen cleared_at received_at inactive_since updated_at",
    "DOUBLE": "value avg min max distance_km km_per_intervention revenue avg_duration_s avg_distance_km threshold "
    "timeout_s",
    "BIGINT": "count interventions disengagements trips",
    "INT": "window_s",
    "BOOLEAN": "inactive",
}
SINK_TYPE = {column: sql_type for sql_type, names in _SINK_TYPES.items() for column in names.split()}


def short(schema_name: str) -> str:
    return schema_name.replace(".", "_")


def create_source(t_env: StreamTableEnvironment, config: JobConfig, schema_name: str) -> None:
    topic = config.topics[schema_name]
    if config.input_dir is not None:
        # The simulator may not have written a topic yet; an absent directory would fail the job.
        (config.input_dir / topic).mkdir(parents=True, exist_ok=True)
        received = "received_at TIMESTAMP_LTZ(3) METADATA FROM 'file.modification-time' VIRTUAL"
        options = {"connector": "filesystem", "path": str(config.input_dir / topic), "format": "raw"}
        if config.follow:
            options["source.monitor-interval"] = f"{int(config.monitor_interval_s * 1000)}ms"
    elif config.bootstrap_servers:
        received = "received_at TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL"
        options = {
            "connector": "kafka",
            "topic": topic,
            "properties.bootstrap.servers": config.bootstrap_servers,
            "properties.group.id": config.group_id,
            "properties.auto.offset.reset": "earliest",
            "scan.startup.mode": "group-offsets",
            "format": "raw",
        }
    else:
        raise ValueError("a source is needed: --input-dir or --bootstrap-servers")
    with_clause = ", ".join(f"'{key}' = '{value}'" for key, value in options.items())
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE src_{short(schema_name)} (line STRING, {received}, rowtime AS {ROWTIME_SQL}, "
        f"WATERMARK FOR rowtime AS rowtime - INTERVAL '{config.watermark_delay_s:.3f}' SECOND(3)"
        f") WITH ({with_clause})"
    )


def _pin(t_env: StreamTableEnvironment, table, view: str, watermark: str = "SOURCE_WATERMARK()") -> None:
    """Register `table` as `view` behind a round trip through one DataStream: every query that
    reads the view then shares one operator (the planner would otherwise copy the work into each
    query, and into both sides of a split). Java only: no Python cost. The view keeps the input's
    watermark unless given another one over `rowtime`."""
    watermarked = Schema.new_builder().watermark("rowtime", watermark).build()
    t_env.create_temporary_view(view, t_env.from_data_stream(t_env.to_data_stream(table), watermarked))


def rewatermarked(t_env: StreamTableEnvironment, view: str, name: str, delay_s: float) -> None:
    """`name`: the rows of `view` under their own watermark, `delay_s` behind the newest row seen.
    Operators that wait for the watermark then wait that long instead of the source's bound."""
    _pin(t_env, t_env.from_path(view), name, f"rowtime - INTERVAL '{delay_s:.3f}' SECOND(3)")


def create_parsed_views(t_env: StreamTableEnvironment, config: JobConfig, schema_name: str) -> None:
    """parsed_<family>: every payload with its contract error (if any), checked in SQL when it is
    in the canonical form (jobs.fastpath) and by the Python parse otherwise;
    valid_<family>: good, on-time events; rejects_<family>: dead letters (malformed or late)."""
    name, topic = short(schema_name), config.topics[schema_name]
    t_env.create_temporary_system_function(function_name(schema_name), parse_function(schema_name))
    columns = ", ".join(output_columns(schema_name))
    checked = t_env.sql_query(
        f"SELECT {fastpath.typed_columns(schema_name)}, line, received_at, rowtime, "
        f"{fastpath.valid_predicate(schema_name)} AS certain "
        f"FROM (SELECT {fastpath.extracted(schema_name)} FROM {fastpath.members(f'src_{name}')})"
    )
    _pin(t_env, checked, f"checked_{name}")
    parsed = t_env.sql_query(
        f"SELECT {columns}, line, received_at, rowtime FROM checked_{name} WHERE certain "
        "UNION ALL SELECT p.*, s.line, s.received_at, s.rowtime "
        f"FROM (SELECT line, received_at, rowtime FROM checked_{name} WHERE NOT certain) AS s, "
        f"LATERAL TABLE({function_name(schema_name)}(s.line, CAST(s.rowtime AS STRING))) AS p({columns})"
    )
    _pin(t_env, parsed, f"parsed_{name}")
    late = "rowtime < CURRENT_WATERMARK(rowtime)"
    t_env.execute_sql(
        f"CREATE TEMPORARY VIEW valid_{name} AS SELECT * FROM parsed_{name} "
        f"WHERE error IS NULL AND NOT COALESCE({late}, FALSE)"
    )
    t_env.execute_sql(
        f"CREATE TEMPORARY VIEW rejects_{name} AS SELECT "
        f"SHA256(CONCAT(CASE WHEN error IS NULL THEN 'late' ELSE 'malformed' END, '|{topic}|', line)) AS id, "
        f"CASE WHEN error IS NULL THEN 'late' ELSE 'malformed' END AS kind, '{topic}' AS topic, line AS payload, "
        f"COALESCE(error, 'event time is behind the watermark by more than the allowed lateness') AS error, "
        f"error_field AS field, CAST(received_at AS TIMESTAMP(3)) AS received_at "
        f"FROM parsed_{name} WHERE error IS NOT NULL OR COALESCE({late}, FALSE)"
    )


def create_csv_sink(t_env: StreamTableEnvironment, config: JobConfig, table: str) -> str:
    """A checkpointed CSV sink whose columns follow storage.writes; files become visible
    (committed) with each completed checkpoint."""
    columns = ", ".join(f"`{column}` {SINK_TYPE.get(column, 'STRING')}" for column in WRITES[table].columns)
    interval = f"{max(1, int(config.checkpoint_interval_s * 1000))}ms"
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE sink_{table} ({columns}) WITH ("
        f"'connector' = 'filesystem', 'path' = '{config.output_dir / table}', 'format' = 'csv', "
        f"'sink.rolling-policy.rollover-interval' = '{interval}', 'sink.rolling-policy.check-interval' = '{interval}')"
    )
    return f"sink_{table}"
