"""Flink SQL tables every pipeline shares: the Kafka sources, the contract-checked views over
them, and the transactional Kafka sinks (the loader, storage.loader, upserts what they commit)."""

from __future__ import annotations

from pyflink.java_gateway import get_gateway
from pyflink.table import Schema, StreamTableEnvironment

from contracts.events import EPOCH_MILLIS_FROM, LAST_EPOCH_MS
from contracts.kafka_auth import FLINK_SHADED_PREFIX
from jobs import fastpath
from jobs.config import JobConfig
from jobs.parse import function_name, output_columns, parse_function
from storage.writes import WRITES

EPOCH = "TIMESTAMP '1970-01-01 00:00:00'"


def epoch_sql(number: str) -> str:
    """SQL twin of contracts.events.epoch_millis: the instant of an epoch number (a DOUBLE: seconds
    below EPOCH_MILLIS_FROM, else milliseconds, rounded half up) as TIMESTAMP(3), NULL out of the
    contract's range. The same IEEE double arithmetic as Python gives the same millisecond."""
    millis = (
        f"FLOOR(CASE WHEN {number} < {EPOCH_MILLIS_FROM} THEN {number} * 1000 ELSE {number} END + CAST(0.5 AS DOUBLE))"
    )
    return (
        f"CASE WHEN {number} >= 0 AND {number} <= {LAST_EPOCH_MS} "
        f"THEN TIMESTAMPADD(MILLISECOND, CAST({millis} AS BIGINT), {EPOCH}) END"
    )


_TIME_TEXT = "COALESCE(JSON_VALUE(line, '$.event_time'), JSON_VALUE(line, '$.time'))"
# RFC 3339 in every form the contract accepts: `T`, `t` or a space between date and time, any
# fraction (read to the millisecond, truncated as the contract's reading is), `Z`, `z` or an
# offset with or without its colon. Groups: 1 the local date-time, 3 the offset's sign, 4-5 its
# hours and minutes (NULL for Z).
_RFC3339 = "^(.+?)(Z|([+-])([0-9]{2}):?([0-9]{2}))$"


def _rfc3339_sql(text: str) -> str:
    """The instant of RFC 3339 text as TIMESTAMP(3) in UTC, NULL if it is none."""
    part = lambda n: f"REGEXP_EXTRACT(UPPER({text}), '{_RFC3339}', {n})"  # noqa: E731
    local = f"TRY_CAST(REPLACE({part(1)}, 'T', ' ') AS TIMESTAMP(3))"
    minutes = f"(CAST({part(4)} AS INT) * 60 + CAST({part(5)} AS INT))"
    return (
        f"CASE WHEN {part(3)} IS NULL THEN {local} WHEN {part(3)} = '+' THEN TIMESTAMPADD(MINUTE, -{minutes}, {local}) "
        f"ELSE TIMESTAMPADD(MINUTE, {minutes}, {local}) END"
    )


_EVENT_TIME_AT = 'POSITION(\'"event_time":"\' IN line)'
_WIRE_TIME_SQL = f"TRY_CAST(REPLACE(SUBSTRING(line, {_EVENT_TIME_AT} + 14, 23), 'T', ' ') AS TIMESTAMP(3))"
# The event time as SQL reads it (legacy heartbeats call it `time`): RFC 3339 text or an epoch
# number (JSON_VALUE gives its text); the parse function checks it equals the contract's
# event_time. Nearly every line carries the wire form (24 characters ending in Z, right after
# `"event_time":"`, the key not repeated: JSON's last one would count): found by position, it is
# cut out and cast, with no JSON parse. Flink evaluates every argument of a COALESCE but only the
# chosen branch of a CASE, so the rest (offsets, epoch numbers, spaced JSON: the Python parse reads
# those lines anyway) costs nothing on that path. Unusable times become the epoch: they never move
# a watermark and the row is a dead letter anyway.
ROWTIME_SQL = (
    f"CASE WHEN {_EVENT_TIME_AT} > 0 AND SUBSTRING(line, {_EVENT_TIME_AT} + 37, 2) = 'Z\"' "
    f"AND LOCATE('\"event_time\"', line, {_EVENT_TIME_AT} + 1) = 0 "
    f"THEN COALESCE({_WIRE_TIME_SQL}, {EPOCH}) "
    f"ELSE COALESCE({epoch_sql(f'TRY_CAST({_TIME_TEXT} AS DOUBLE)')}, {_rfc3339_sql(_TIME_TEXT)}, {EPOCH}) END"
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


def _with(options: dict[str, str]) -> str:
    return ", ".join(f"'{key}' = '{_sql_text(value)}'" for key, value in options.items())


def _sql_text(value: str) -> str:
    return str(value).replace("'", "''")


def kafka_properties(config: JobConfig) -> dict[str, str]:
    """The Kafka client's security settings as connector options (`properties.*`), the login
    module named as flink-sql-connector-kafka relocates it."""
    auth = config.kafka_auth
    if not (auth.sasl or auth.tls):
        return {}  # PLAINTEXT, the client's default: the tables' options stay as they were
    return {f"properties.{key}": value for key, value in auth.java(FLINK_SHADED_PREFIX).items()}


def _start_options(config: JobConfig) -> dict[str, str]:
    if config.start_from == "group":
        return {"scan.startup.mode": "group-offsets", "properties.auto.offset.reset": "earliest"}
    if config.start_from in ("earliest", "latest"):
        return {"scan.startup.mode": f"{config.start_from}-offset"}
    return {"scan.startup.mode": "timestamp", "scan.startup.timestamp-millis": config.start_from}


def create_source(t_env: StreamTableEnvironment, config: JobConfig, schema_name: str) -> None:
    """src_<family>: the family's topic as raw lines. The watermark is pushed into the Kafka source,
    which keeps one per partition: a partition read behind the others (a backlog after a restore,
    a slow producer) holds the watermark back instead of having its events turned late."""
    options = {
        "connector": "kafka",
        "topic": config.topics[schema_name],
        "properties.bootstrap.servers": config.bootstrap_servers,
        "properties.group.id": config.group_id,
        "properties.isolation.level": "read_committed",
        **kafka_properties(config),
        "format": "raw",
        **_start_options(config),
    }
    if config.bounded:
        options["scan.bounded.mode"] = "latest-offset"
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE src_{short(schema_name)} (line STRING, "
        "received_at TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL, "
        f"rowtime AS {ROWTIME_SQL}, "
        f"WATERMARK FOR rowtime AS rowtime - INTERVAL '{config.watermark_delay_s:.3f}' SECOND(3)"
        f") WITH ({_with(options)})"
    )


def _pin(
    t_env: StreamTableEnvironment,
    table,
    view: str,
    watermark: str = "SOURCE_WATERMARK()",
    *,
    new_task: bool = False,
) -> None:
    """Register `table` as `view` behind a round trip through one DataStream: every query that
    reads the view then shares one operator (the planner would otherwise copy the work into each
    query, and into both sides of a split). Java only: no Python cost. The view keeps the input's
    watermark unless given another one over `rowtime`. `new_task`: what reads the view runs in a
    task of its own, not chained to the operators before it (see create_parsed_views)."""
    stream = t_env.to_data_stream(table)
    if new_task:
        strategy = get_gateway().jvm.org.apache.flink.streaming.api.operators.ChainingStrategy.HEAD
        stream._j_data_stream.getTransformation().setChainingStrategy(strategy)
    watermarked = Schema.new_builder().watermark("rowtime", watermark).build()
    t_env.create_temporary_view(view, t_env.from_data_stream(stream, watermarked))


def shifted_clock(t_env: StreamTableEnvironment, view: str, name: str, lead_s: float) -> None:
    """`name`: the rows of `view` with `event_rowtime` holding their event time and `rowtime` moved
    `lead_s` earlier, under the unchanged watermark of the source. An operator ordered by `rowtime`
    then fires `lead_s` sooner than the source's bound allows, and the disorder it tolerates is still
    counted per partition: a row is late only when every partition has moved on past it (source
    bound - lead_s), so a partition resuming behind the others after an outage loses nothing. A
    watermark regenerated from the rows would instead count from the newest row of any partition."""
    columns = [c for c in t_env.from_path(view).get_schema().get_field_names() if c != "rowtime"]
    shifted = t_env.sql_query(
        f"SELECT {', '.join(f'`{c}`' for c in columns)}, CAST(rowtime AS TIMESTAMP(3)) AS event_rowtime, "
        f"CAST(rowtime AS TIMESTAMP(3)) - INTERVAL '{lead_s:.3f}' SECOND(3) AS rowtime FROM {view}"
    )
    _pin(t_env, shifted, name)


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
    # The source runs in a task of its own, not chained to the parsing (Python) after it. A split's
    # idle timeout counts the time its task spends in chained operators, so a slow bundle there
    # would mark splits idle whose records are fetched but not yet emitted: the other splits then
    # move the watermark on and those records turn late (a backlog after a start or a restore).
    # Downstream slowness now reaches the source as backpressure, which pauses the idle clock.
    _pin(t_env, checked, f"checked_{name}", new_task=True)
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


# Brokers cap transactions at transaction.max.timeout.ms (15 min by default); Flink's producers
# ask for an hour unless told, which the broker refuses.
TRANSACTION_TIMEOUT_MS = 10 * 60 * 1000


def _sink_options(config: JobConfig, topic: str, name: str) -> dict[str, str]:
    """Exactly-once Kafka sink options: records become visible to read_committed consumers when
    the checkpoint that covers them completes."""
    return {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": config.bootstrap_servers,
        "sink.delivery-guarantee": "exactly-once",
        "sink.transactional-id-prefix": f"{config.transactional_prefix}-{name}",
        "properties.transaction.timeout.ms": str(TRANSACTION_TIMEOUT_MS),
        **kafka_properties(config),
    }


def create_store_sink(t_env: StreamTableEnvironment, config: JobConfig, table: str) -> str:
    """sink_<table>: the table's rows, columns in storage.writes order, to its store topic as CSV
    lines (COPY-ready for the loader). Every store table's upsert is order-insensitive, so the
    records need no key."""
    columns = ", ".join(f"`{column}` {SINK_TYPE.get(column, 'STRING')}" for column in WRITES[table].columns)
    options = {**_sink_options(config, config.store_topics[table], table), "format": "csv"}
    t_env.execute_sql(f"CREATE TEMPORARY TABLE sink_{table} ({columns}) WITH ({_with(options)})")
    return f"sink_{table}"


def create_dead_letter_sink(t_env: StreamTableEnvironment, config: JobConfig) -> str:
    """sink_dead_letters: malformed and late events with the reason, as JSON keyed by their id."""
    columns = ", ".join(f"`{column}` {SINK_TYPE.get(column, 'STRING')}" for column in WRITES["dead_letters"].columns)
    options = {
        **_sink_options(config, config.dead_letter_topic, "dead-letters"),
        "key.format": "raw",
        "key.fields": "id",
        "value.format": "json",
        "value.json.timestamp-format.standard": "ISO-8601",
        "value.fields-include": "ALL",
    }
    t_env.execute_sql(f"CREATE TEMPORARY TABLE sink_dead_letters ({columns}) WITH ({_with(options)})")
    return "sink_dead_letters"


def create_keyed_json_sink(t_env: StreamTableEnvironment, config: JobConfig, name: str, topic: str) -> str:
    """sink_<name>: JSON documents made in Python (alarm records, device liveness), keyed so that
    every record of one source lands in one partition, in order."""
    options = {
        **_sink_options(config, topic, name),
        "key.format": "raw",
        "key.fields": "k",
        "value.format": "raw",
        "value.fields-include": "EXCEPT_KEY",
    }
    t_env.execute_sql(f"CREATE TEMPORARY TABLE sink_{name} (k STRING, payload STRING) WITH ({_with(options)})")
    return f"sink_{name}"
