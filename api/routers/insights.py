"""Alarm heatmaps, inactive devices, self-driving KPIs and per-region trip metrics, each limited
to the key's fleets (api.scope). Trip metrics are kept per region and fleet: a region's figures
sum the key's fleets."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from psycopg import sql

from api.db import Db
from api.models import DrivingKpi, DrivingKpis, HourHeatmap, InactiveDevices, RegionMetrics, ZoneHeatmap
from api.params import ID_PATTERN, OptionalId, Since, Until, time_range
from api.scope import FleetScope
from contracts.records import AlertType
from contracts.windows import WINDOWS

router = APIRouter()
HEATMAP_SPAN = timedelta(days=92)
KPI_SPAN = timedelta(days=366)
WindowName = Literal[tuple(WINDOWS)]  # a 422 lists the allowed names (contracts.windows)
Types = Annotated[list[AlertType] | None, Query(description="Only these alarm types.")]


@router.get(
    "/heatmaps/alarms/hourly",
    response_model=HourHeatmap,
    tags=["heatmaps"],
    summary="Alarms started per hour of day (UTC) and day",
)
async def hourly_heatmap(
    db: Db,
    scope: FleetScope,
    *,
    since: Since = None,
    until: Until = None,
    alert_type: Types = None,
    fleet_id: OptionalId = None,
) -> HourHeatmap:
    since, until = time_range(since, until, default=timedelta(days=7), limit=HEATMAP_SPAN)
    rows = await (
        await db.execute(
            sql.SQL("""
        SELECT (first_seen AT TIME ZONE 'UTC')::date AS day, extract(hour FROM first_seen AT TIME ZONE 'UTC')::int AS hour,
               count(*) AS count
        FROM alarms
        WHERE first_seen >= %(since)s AND first_seen < %(until)s
          AND (%(types)s::text[] IS NULL OR alert_type = ANY(%(types)s::text[]))
          AND (%(fleet_id)s::text IS NULL OR fleet_id = %(fleet_id)s::text) AND {}
        GROUP BY 1, 2 ORDER BY 1, 2
        """).format(scope.where("fleet_id")),
            {
                **scope.params,
                "since": since,
                "until": until,
                "types": [str(t) for t in alert_type] if alert_type else None,
                "fleet_id": fleet_id,
            },
        )
    ).fetchall()
    return HourHeatmap(since=since, until=until, cells=rows)


@router.get(
    "/heatmaps/alarms/zones",
    response_model=ZoneHeatmap,
    tags=["heatmaps"],
    summary="Alarms started per building site and zone",
)
async def zone_heatmap(
    db: Db,
    scope: FleetScope,
    *,
    since: Since = None,
    until: Until = None,
    site_id: OptionalId = None,
    alert_type: Types = None,
) -> ZoneHeatmap:
    since, until = time_range(since, until, default=timedelta(days=7), limit=HEATMAP_SPAN)
    rows = await (
        await db.execute(
            sql.SQL("""
        SELECT s.site_id, s.zone_id, count(*) AS count
        FROM alarms a JOIN source_state s USING (source_id)
        WHERE s.site_id IS NOT NULL AND s.zone_id IS NOT NULL
          AND a.first_seen >= %(since)s AND a.first_seen < %(until)s
          AND (%(site_id)s::text IS NULL OR s.site_id = %(site_id)s::text)
          AND (%(types)s::text[] IS NULL OR a.alert_type = ANY(%(types)s::text[])) AND {} AND {}
        GROUP BY 1, 2 ORDER BY 1, 2
        """).format(scope.where("s.fleet_id"), scope.where("a.fleet_id")),
            {
                **scope.params,
                "since": since,
                "until": until,
                "site_id": site_id,
                "types": [str(t) for t in alert_type] if alert_type else None,
            },
        )
    ).fetchall()
    return ZoneHeatmap(since=since, until=until, cells=rows)


@router.get(
    "/devices/inactive",
    response_model=InactiveDevices,
    tags=["fleet"],
    summary="Devices silent past their timeout right now, longest silent first",
)
async def inactive_devices(
    db: Db, scope: FleetScope, limit: Annotated[int, Query(ge=1, le=5000)] = 1000
) -> InactiveDevices:
    # Flagged by the inactivity job, or already past the timeout before its next evaluation.
    # device_inactivity has no fleet: a device's is its source_state row's.
    rows = await (
        await db.execute(
            sql.SQL("""
        SELECT device_id, last_seen, timeout_s, coalesce(inactive_since, last_seen + make_interval(secs => timeout_s))
                 AS inactive_since, extract(epoch FROM now() - last_seen)::float AS silent_for_s
        FROM device_inactivity
        WHERE (inactive OR last_seen + make_interval(secs => timeout_s) < now()) AND {}
        ORDER BY last_seen, device_id LIMIT %(limit)s
        """).format(scope.sources_where("device_id")),
            {**scope.params, "limit": limit},
        )
    ).fetchall()
    return InactiveDevices(count=len(rows), items=rows)


@router.get(
    "/kpis/driving",
    response_model=DrivingKpis,
    tags=["kpis"],
    summary="Self-driving KPIs: km per intervention and interventions per 1000 km",
)
async def driving_kpis(
    db: Db,
    scope: FleetScope,
    *,
    since: Since = None,
    until: Until = None,
    source_id: OptionalId = None,
    fleet_id: OptionalId = None,
) -> DrivingKpis:
    since, until = time_range(since, until, default=timedelta(days=1), limit=KPI_SPAN)
    # The jobs may write several window sizes: sum the finest one so nothing is counted twice.
    rows = await (
        await db.execute(
            sql.SQL("""
        WITH base AS (SELECT min(window_s) AS window_s FROM driving_kpis
                      WHERE window_start >= %(since)s AND window_start < %(until)s AND {scope})
        SELECT source_id, sum(interventions)::bigint AS interventions, sum(disengagements)::bigint AS disengagements,
               sum(distance_km) AS distance_km, (SELECT window_s FROM base) AS window_s
        FROM driving_kpis
        WHERE window_s = (SELECT window_s FROM base) AND window_start >= %(since)s AND window_start < %(until)s
          AND (%(source_id)s::text IS NULL OR source_id = %(source_id)s::text)
          AND (%(fleet_id)s::text IS NULL OR fleet_id = %(fleet_id)s::text) AND {scope}
        GROUP BY source_id ORDER BY source_id
        """).format(scope=scope.where("fleet_id")),
            {**scope.params, "since": since, "until": until, "source_id": source_id, "fleet_id": fleet_id},
        )
    ).fetchall()
    vehicles = [_kpi(row["source_id"], row["interventions"], row["disengagements"], row["distance_km"]) for row in rows]
    fleet = _kpi(
        "fleet",
        sum(v.interventions for v in vehicles),
        sum(v.disengagements for v in vehicles),
        sum(v.distance_km for v in vehicles),
    )
    window_s = rows[0]["window_s"] if rows else None
    return DrivingKpis(since=since, until=until, window_s=window_s, fleet=fleet, vehicles=vehicles)


def _kpi(source_id: str, interventions: int, disengagements: int, distance_km: float) -> DrivingKpi:
    return DrivingKpi(
        source_id=source_id,
        interventions=interventions,
        disengagements=disengagements,
        distance_km=distance_km,
        km_per_intervention=distance_km / interventions if interventions else None,
        interventions_per_1000km=interventions * 1000 / distance_km if distance_km else None,
    )


@router.get(
    "/metrics/region/{region_id}",
    response_model=RegionMetrics,
    tags=["kpis"],
    summary="Per-region trip metrics per window",
)
async def region_metrics(
    db: Db,
    scope: FleetScope,
    *,
    region_id: Annotated[str, Path(pattern=ID_PATTERN)],
    window: Annotated[WindowName, Query(description="window size; the jobs write trip windows only in these")] = "5m",
    since: Since = None,
    until: Until = None,
) -> RegionMetrics:
    window_s = WINDOWS[window]
    since, until = time_range(
        since, until, default=timedelta(seconds=window_s * 288), limit=timedelta(seconds=window_s * 10_000)
    )
    # Roll up from the largest window the jobs wrote that divides the one asked for.
    fleets = scope.where("fleet_id")
    base = await (
        await db.execute(
            sql.SQL(
                "SELECT max(window_s) AS w FROM (SELECT DISTINCT window_s FROM trip_metrics"
                " WHERE region_id = %(region)s AND {fleets}) d WHERE %(w)s %% window_s = 0"
            ).format(fleets=fleets),
            {"region": region_id, "w": window_s, **scope.params},
        )
    ).fetchone()
    rows = []
    if base["w"] is not None:
        rows = await (
            await db.execute(
                sql.SQL("""
            SELECT time_bucket(make_interval(secs => %(w)s), window_start) AS window_start,
                   time_bucket(make_interval(secs => %(w)s), window_start) + make_interval(secs => %(w)s) AS window_end,
                   sum(trips)::bigint AS trips, sum(revenue) AS revenue,
                   coalesce(sum(avg_duration_s * trips) / nullif(sum(trips), 0), 0) AS avg_duration_s,
                   coalesce(sum(avg_distance_km * trips) / nullif(sum(trips), 0), 0) AS avg_distance_km
            FROM trip_metrics
            WHERE region_id = %(region)s AND window_s = %(base)s AND window_start >= %(since)s AND window_start < %(until)s
              AND {fleets}
            GROUP BY 1, 2 ORDER BY 1
            """).format(fleets=fleets),
                {"w": window_s, "region": region_id, "base": base["w"], "since": since, "until": until, **scope.params},
            )
        ).fetchall()
    return RegionMetrics(region_id=region_id, window=window, base_window_s=base["w"], windows=rows)
