"""The four pipelines as Flink SQL over the valid_<family> views (jobs.tables). Windows, filters,
thresholds and unions are SQL; only the alarm lifecycle and the processing-time inactivity
timers are Python (jobs.lifecycle), fed with the few rows SQL leaves for them."""

from __future__ import annotations

from pyflink.table import StreamTableEnvironment
from pyflink.table.statement_set import StatementSet

from contracts.metrics import NO_TIRE, SOURCE_KINDS, TIRE_FAMILY, TIRE_FIELD, metric_names
from contracts.records import AlertType
from contracts.thresholds import DEFAULT_RULES, Rule, Thresholds
from jobs.config import JobConfig
from jobs.tables import create_dead_letter_sink, create_store_sink, shifted_clock, short


def _window(view: str, seconds: int) -> str:
    return f"TABLE(TUMBLE(TABLE {view}, DESCRIPTOR(rowtime), INTERVAL '{seconds}' SECOND(9)))"


def _metrics_view(t_env: StreamTableEnvironment, schema_name: str) -> str:
    """metrics_<family>: one row per (event, numeric field), named by contracts.metrics; tire
    readings carry their tire position in `tire` (aggregates are kept per vehicle and tire), every
    other family the empty text."""
    name = short(schema_name)
    tire = TIRE_FIELD if schema_name == TIRE_FAMILY else f"'{NO_TIRE}'"
    pairs = ", ".join(
        f"ROW(CAST('{metric}' AS STRING), CAST({field} AS DOUBLE))"
        for field, metric in metric_names(schema_name).items()
    )
    t_env.execute_sql(
        f"CREATE TEMPORARY VIEW metrics_{name} AS SELECT v.rowtime, v.source_id, v.fleet_id, v.event_id, "
        f"CAST('{schema_name}' AS STRING) AS schema_name, m.metric, CAST({tire} AS STRING) AS tire, m.val "
        f"FROM valid_{name} AS v CROSS JOIN UNNEST(ARRAY[{pairs}]) AS m(metric, val) WHERE m.val IS NOT NULL"
    )
    return f"metrics_{name}"


def dead_letters(t_env, statements: StatementSet, config: JobConfig) -> None:
    sink = create_dead_letter_sink(t_env, config)
    union = " UNION ALL ".join(f"SELECT * FROM rejects_{short(family)}" for family in config.families)
    statements.add_insert_sql(f"INSERT INTO {sink} {union}")


def aggregates(t_env, statements: StatementSet, config: JobConfig) -> None:
    readings, windows, state = (create_store_sink(t_env, config, table) for table in WRITES_OF_AGGREGATES)
    metric_views, window_selects, state_selects = [], [], []
    for family in config.families:
        view = _metrics_view(t_env, family)
        metric_views.append(
            f"SELECT rowtime, source_id, fleet_id, schema_name, metric, tire, val, event_id FROM {view}"
        )
        sizes = config.building_windows_s if family == "building.reading" else (config.window_s,)
        window_selects += [
            f"SELECT window_start, window_end, {seconds}, source_id, fleet_id, schema_name, metric, tire, "
            f"AVG(val), MIN(val), MAX(val), COUNT(*) FROM {_window(view, seconds)} "
            "GROUP BY window_start, window_end, source_id, fleet_id, schema_name, metric, tire"
            for seconds in sizes
        ]
        site_zone = "site_id, zone_id" if family == "building.reading" else "CAST(NULL AS STRING), CAST(NULL AS STRING)"
        state_selects.append(
            f"SELECT rowtime, source_id, CAST('{SOURCE_KINDS.get(family, 'vehicle')}' AS STRING) AS kind, fleet_id, "
            f"{site_zone}, CAST('{family}' AS STRING) AS schema_name, line FROM valid_{short(family)}"
        )
    statements.add_insert_sql(f"INSERT INTO {readings} {' UNION ALL '.join(metric_views)}")
    statements.add_insert_sql(f"INSERT INTO {windows} {' UNION ALL '.join(window_selects)}")
    t_env.execute_sql(
        "CREATE TEMPORARY VIEW state_input (rowtime, source_id, kind, fleet_id, site_id, zone_id, schema_name, line) "
        f"AS {' UNION ALL '.join(state_selects)}"
    )
    statements.add_insert_sql(f"INSERT INTO {state} {_latest_per_source()}")


WRITES_OF_AGGREGATES = ("readings", "aggregates", "source_state")
STATE_WINDOW_S = 5
"""source_state gets each source's latest event once per this many seconds of event time, not every
event: a vehicle sends several families a second, and each row carried the whole event."""


def _latest_per_source() -> str:
    """Per source and window, the newest event by (event time, family, line): MAX over the three
    packed into one text (the time text sorts as time), so ties resolve the same in every replay."""
    packed = "CONCAT(CAST(rowtime AS STRING), CHR(1), schema_name, CHR(1), line)"
    rest = "SUBSTRING(newest, 25)"  # after the 23-character time and its separator
    return (
        f"SELECT source_id, kind, fleet_id, site_id, zone_id, CAST(SUBSTRING(newest, 1, 23) AS TIMESTAMP(3)), "
        f"SPLIT_INDEX({rest}, CHR(1), 0), SUBSTRING({rest}, POSITION(CHR(1) IN {rest}) + 1) "
        f"FROM (SELECT source_id, kind, fleet_id, site_id, zone_id, MAX({packed}) AS newest "
        f"FROM {_window('state_input', STATE_WINDOW_S)} "
        "GROUP BY window_start, window_end, source_id, kind, fleet_id, site_id, zone_id)"
    )


def kpis(t_env, statements: StatementSet, config: JobConfig) -> None:
    """Driving KPIs per vehicle and window (distance = odometer span seen in the window, from
    telemetry and driving events) and trip metrics per region and fleet in each of the trip windows."""
    kpi_sink, trip_sink = (
        create_store_sink(t_env, config, "driving_kpis"),
        create_store_sink(t_env, config, "trip_metrics"),
    )
    t_env.execute_sql(
        "CREATE TEMPORARY VIEW kpi_input AS "
        "SELECT rowtime, source_id, fleet_id, odometer_km, 0 AS interventions, 0 AS disengagements "
        "FROM valid_vehicle_telemetry UNION ALL "
        "SELECT rowtime, source_id, fleet_id, odometer_km, CASE WHEN event_type = 'intervention' THEN 1 ELSE 0 END, "
        "CASE WHEN event_type = 'disengagement' THEN 1 ELSE 0 END FROM valid_driving_event"
    )
    seconds = config.kpi_window_s
    statements.add_insert_sql(
        f"INSERT INTO {kpi_sink} SELECT window_start, window_end, {seconds}, source_id, fleet_id, "
        "CAST(SUM(interventions) AS BIGINT), CAST(SUM(disengagements) AS BIGINT), MAX(odometer_km) - MIN(odometer_km), "
        "(MAX(odometer_km) - MIN(odometer_km)) / NULLIF(CAST(SUM(interventions) AS DOUBLE), 0) "
        f"FROM {_window('kpi_input', seconds)} GROUP BY window_start, window_end, source_id, fleet_id"
    )
    trips = " UNION ALL ".join(
        f"SELECT window_start, window_end, {size}, region_id, fleet_id, COUNT(*), SUM(fare), AVG(duration_s), "
        f"AVG(distance_km) FROM {_window('valid_trip', size)} GROUP BY window_start, window_end, region_id, fleet_id"
        for size in config.trip_windows_s
    )
    statements.add_insert_sql(f"INSERT INTO {trip_sink} {trips}")


# --- alarms: thresholds as generated SQL, transitions filtered in SQL -------------------------

METRIC_SQL = {
    "speed_over_limit_kmh": "speed_kmh - COALESCE(speed_limit_kmh, {speed_limit})",
    # No risk (NULL, which counts as back in bounds) unless the object is closing in.
    "time_to_collision_s": "CASE WHEN relative_speed_mps < 0 THEN distance_m / -relative_speed_mps END",
}


def _condition(rule: Rule) -> str:
    """'B' breached, 'O' back in bounds (past the clear level, or no value), NULL in the band."""
    clear_op = ">=" if rule.op == "<" else "<="
    return (
        f"CASE WHEN val IS NULL THEN 'O' WHEN val {rule.op} {rule.threshold!r} THEN 'B' "
        f"WHEN val {clear_op} {rule.clear!r} THEN 'O' END"
    )


def _resolved(thresholds: Thresholds, alert_type: AlertType) -> list[tuple[str, Rule]]:
    """(SQL match, rule) pairs, most specific first, mirroring Thresholds.rule_for."""
    branches = []
    for source in thresholds.sources:
        for fleet in thresholds.fleets:
            branches.append(
                (f"source_id = '{source}' AND fleet_id = '{fleet}'", thresholds.rule_for(alert_type, fleet, source))
            )
        branches.append((f"source_id = '{source}'", thresholds.rule_for(alert_type, None, source)))
    for fleet in thresholds.fleets:
        branches.append((f"fleet_id = '{fleet}'", thresholds.rule_for(alert_type, fleet, None)))
    return branches


def _by_rule(branches: list[tuple[str, Rule]], default: Rule, render) -> str:
    if not branches:
        return render(default)
    whens = " ".join(f"WHEN {match} THEN {render(rule)}" for match, rule in branches)
    return f"CASE {whens} ELSE {render(default)} END"


def _alarm_input(t_env, config: JobConfig, schema_name: str) -> str:
    """alarm_<family>: valid_<family> on the alarm clock (jobs.tables.shifted_clock), so that the
    rules wait `alarm_delay_s` for disorder instead of the source's whole watermark delay."""
    name = f"alarm_{short(schema_name)}"
    shifted_clock(t_env, f"valid_{short(schema_name)}", name, config.watermark_delay_s - config.alarm_delay_s)
    return name


def alarm_candidates(t_env, config: JobConfig) -> str:
    """alarm_transitions: per (source, alert type, subject) in event-time order, every breaching reading
    and the first reading back in bounds after one. Readings in the hysteresis band and repeated
    in-bounds readings change nothing and stay in SQL."""
    selects, inputs = [], {}
    for base in DEFAULT_RULES:
        if base.schema_name not in config.families:
            continue
        if base.schema_name not in inputs:
            inputs[base.schema_name] = _alarm_input(t_env, config, base.schema_name)
        metric = METRIC_SQL.get(base.metric, base.metric).format(speed_limit=config.thresholds.speed_limit_kmh)
        branches = _resolved(config.thresholds, base.alert_type)
        default = config.thresholds.rule_for(base.alert_type)
        # Tire alarms are per vehicle, evaluated per tire: the vehicle's alarm stays open while any tire breaches.
        subject = "tire_position" if base.schema_name == "tire.reading" else "''"
        selects.append(
            f"SELECT source_id, fleet_id, rowtime, event_rowtime, CAST('{base.alert_type}' AS STRING) AS alert_type, "
            f"CAST({subject} AS STRING) AS subject, val, "
            f"CAST({_by_rule(branches, default, lambda rule: repr(rule.threshold))} AS DOUBLE) AS threshold, "
            f"CAST({_by_rule(branches, default, lambda rule: repr(str(rule.severity)))} AS STRING) AS severity, "
            f"{_by_rule(branches, default, _condition)} AS cond "
            f"FROM (SELECT *, CAST({metric} AS DOUBLE) AS val FROM {inputs[base.schema_name]})"
        )
    t_env.execute_sql(
        f"CREATE TEMPORARY VIEW alarm_input AS SELECT * FROM ({' UNION ALL '.join(selects)}) WHERE cond IS NOT NULL"
    )
    t_env.execute_sql(
        "CREATE TEMPORARY VIEW alarm_transitions AS SELECT source_id, fleet_id, alert_type, subject, event_rowtime, val, "
        "threshold, severity, cond FROM (SELECT *, "
        "LAG(cond) OVER (PARTITION BY source_id, alert_type, subject ORDER BY rowtime) AS previous "
        "FROM alarm_input) WHERE cond = 'B' OR previous = 'B'"
    )
    return "alarm_transitions"
