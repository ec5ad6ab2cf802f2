"""Trends: one source's metric over a time range, raw or at 1m/5m/15m/1h/1d resolution.

1m/5m/15m read the pipeline's window aggregates; 1h/1d read the rollups (TimescaleDB continuous
aggregates, or plain views on PostgreSQL); raw reads the readings themselves.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.db import Db
from api.models import Trend
from api.params import Since, SourceId, Until, time_range

router = APIRouter(prefix="/sources", tags=["trends"])
Resolution = Literal["raw", "1m", "5m", "15m", "1h", "1d"]
MAX_POINTS = 10_000
_STEP = {
    "raw": timedelta(seconds=10),
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}

_AGGREGATES = """
SELECT window_start AS time, avg, min, max, count FROM aggregates
WHERE source_id = %(source_id)s AND metric = %(metric)s AND window_s = %(window_s)s
  AND window_start >= %(since)s AND window_start < %(until)s
ORDER BY window_start
"""
_ROLLUP = """
SELECT bucket AS time, sum / count AS avg, min, max, count FROM {table}
WHERE source_id = %(source_id)s AND metric = %(metric)s AND bucket >= %(since)s AND bucket < %(until)s
ORDER BY bucket
"""
_RAW = """
SELECT time, value AS avg, value AS min, value AS max, 1 AS count FROM readings
WHERE source_id = %(source_id)s AND metric = %(metric)s AND time >= %(since)s AND time < %(until)s
ORDER BY time LIMIT %(max_points)s
"""
_QUERIES = {
    "raw": _RAW,
    "1m": _AGGREGATES,
    "5m": _AGGREGATES,
    "15m": _AGGREGATES,
    "1h": _ROLLUP.format(table="readings_1h"),
    "1d": _ROLLUP.format(table="readings_1d"),
}


@router.get("/{source_id}/trends", response_model=Trend, summary="A source's metric over time")
async def trend(
    db: Db,
    *,
    source_id: SourceId,
    metric: Annotated[str, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="e.g. pressure_kpa")],
    resolution: Resolution = "5m",
    since: Since = None,
    until: Until = None,
) -> Trend:
    step = _STEP[resolution]
    # At most MAX_POINTS buckets per answer (raw: readings every ~10 s are assumed, and capped).
    since, until = time_range(since, until, default=min(step * 288, timedelta(days=30)), limit=step * MAX_POINTS)
    params = {
        "source_id": source_id,
        "metric": metric,
        "since": since,
        "until": until,
        "window_s": int(step.total_seconds()),
        "max_points": MAX_POINTS,
    }
    rows = await (await db.execute(_QUERIES[resolution], params)).fetchall()
    return Trend(source_id=source_id, metric=metric, resolution=resolution, start=since, end=until, points=rows)
