"""Trends: one source's metric over a time range, raw or at 1m/5m/15m/1h/1d resolution.

1m/5m/15m read the pipeline's window aggregates; 1h/1d read the rollups (TimescaleDB continuous
aggregates, or plain views on PostgreSQL); raw reads the readings themselves.

Metric names are contracts.metrics'. A tire metric is one series per tire: `tire=FL` picks it, and
is required for a vehicle's tire metric (a 422 lists the positions) rather than mixing the tires
of one vehicle into one line; `temperature_c` of a building device takes no tire.

A source of a fleet the key does not see has no points, as one that never reported: readings and
aggregates carry the fleet of each row, the rollups go through source_state (api.scope).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from psycopg import sql

from api.db import Db
from api.errors import invalid
from api.models import Trend
from api.params import Since, SourceId, Until, time_range
from api.scope import FleetScope, Scope
from contracts.metrics import METRICS, NO_TIRE, TIRE_METRICS, TIRE_POSITIONS, UNTIRED_METRICS
from contracts.windows import WINDOWS

router = APIRouter(prefix="/sources", tags=["trends"])
Resolution = Literal["raw", "1m", "5m", "15m", "1h", "1d"]
MAX_POINTS = 10_000
_STEP = {
    "raw": timedelta(seconds=10),
    **{name: timedelta(seconds=seconds) for name, seconds in WINDOWS.items() if seconds < 3600},
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}

_SERIES = "source_id = %(source_id)s AND metric = %(metric)s AND tire = %(tire)s AND {scope}"
# The jobs write vehicles' metrics in 1-minute windows and buildings' in 5 and 15 (jobs --window,
# --building-windows): a resolution is rolled up from the largest written window that divides it,
# so 5m and 15m have points for every family, and the counts weigh the averages. Finer than every
# written window (a building at 1m), it is bucketed from the readings themselves.
_AGGREGATES = f"""
WITH base AS (
  SELECT max(size) AS window_s FROM unnest(%(sizes)s::int[]) AS size
  WHERE EXISTS (SELECT 1 FROM aggregates WHERE {_SERIES} AND window_s = size
                AND window_start >= %(since)s AND window_start < %(until)s)
)
SELECT time_bucket(make_interval(secs => %(window_s)s), window_start) AS time,
       sum(avg * count) / sum(count) AS avg, min(min) AS min, max(max) AS max, sum(count)::bigint AS count
FROM aggregates
WHERE {_SERIES} AND window_s = (SELECT window_s FROM base) AND window_start >= %(since)s AND window_start < %(until)s
GROUP BY 1
UNION ALL
SELECT time_bucket(make_interval(secs => %(window_s)s), time), avg(value), min(value), max(value), count(*)
FROM readings
WHERE {_SERIES} AND (SELECT window_s FROM base) IS NULL AND time >= %(since)s AND time < %(until)s
GROUP BY 1
ORDER BY 1
"""
_ROLLUP = f"""
SELECT bucket AS time, sum / count AS avg, min, max, count FROM {{{{table}}}}
WHERE {_SERIES} AND bucket >= %(since)s AND bucket < %(until)s
ORDER BY bucket
"""
_RAW = f"""
SELECT time, value AS avg, value AS min, value AS max, 1 AS count FROM readings
WHERE {_SERIES} AND time >= %(since)s AND time < %(until)s
ORDER BY time LIMIT %(max_points)s
"""
_QUERIES = {
    "raw": _RAW,
    "1m": _AGGREGATES,
    "5m": _AGGREGATES,
    "15m": _AGGREGATES,
    "1h": _ROLLUP.replace("{{table}}", "readings_1h"),
    "1d": _ROLLUP.replace("{{table}}", "readings_1d"),
}


def _query(resolution: str, scope: Scope) -> sql.Composed:
    # The rollups have no fleet column: their sources are checked against source_state.
    rollup = resolution in ("1h", "1d")
    where = scope.sources_where("source_id") if rollup else scope.where("fleet_id")
    return sql.SQL(_QUERIES[resolution]).format(scope=where)


async def _tire(db: Db, scope: Scope, source_id: str, metric: str, tire: str | None) -> str:
    """The `tire` column value the series has; 422 naming what is allowed for anything else."""
    if metric not in METRICS:
        raise invalid("metric", f"unknown metric {metric!r}; one of: {', '.join(METRICS)}")
    if tire is not None:
        if tire not in TIRE_POSITIONS:
            raise invalid("tire", f"unknown tire {tire!r}; one of: {', '.join(TIRE_POSITIONS)}")
        if metric not in TIRE_METRICS:
            raise invalid("tire", f"{metric} has no tires; tire applies to {', '.join(TIRE_METRICS)} only")
        return tire
    if metric in TIRE_METRICS:
        # temperature_c is also a building device's: a tire is needed only for a vehicle's.
        kind = None
        if metric in UNTIRED_METRICS:
            query = sql.SQL("SELECT kind FROM source_state WHERE source_id = %(source_id)s AND {}")
            row = await (
                await db.execute(query.format(scope.where("fleet_id")), {**scope.params, "source_id": source_id})
            ).fetchone()
            kind = row and row["kind"]
        if metric not in UNTIRED_METRICS or kind == "vehicle":
            raise invalid("tire", f"tire is required for a vehicle's {metric}: one of {', '.join(TIRE_POSITIONS)}")
    return NO_TIRE


@router.get("/{source_id}/trends", response_model=Trend, summary="A source's metric (and tire) over time")
async def trend(
    db: Db,
    scope: FleetScope,
    *,
    source_id: SourceId,
    metric: Annotated[str, Query(max_length=64, description="a metric of contracts.metrics, e.g. pressure_kpa")],
    tire: Annotated[
        str | None,
        Query(max_length=8, description=f"tire position of a tire metric: {', '.join(TIRE_POSITIONS)}"),
    ] = None,
    resolution: Resolution = "5m",
    since: Since = None,
    until: Until = None,
) -> Trend:
    step = _STEP[resolution]
    series_tire = await _tire(db, scope, source_id, metric, tire)
    # At most MAX_POINTS buckets per answer (raw: readings every ~10 s are assumed, and capped).
    since, until = time_range(since, until, default=min(step * 288, timedelta(days=30)), limit=step * MAX_POINTS)
    params = {
        **scope.params,
        "source_id": source_id,
        "metric": metric,
        "tire": series_tire,
        "since": since,
        "until": until,
        "window_s": int(step.total_seconds()),
        "sizes": [size for size in WINDOWS.values() if step.total_seconds() % size == 0],
        "max_points": MAX_POINTS,
    }
    rows = await (await db.execute(_query(resolution, scope), params)).fetchall()
    return Trend(
        source_id=source_id,
        metric=metric,
        tire=tire,
        resolution=resolution,
        start=since,
        end=until,
        points=rows,
    )
