"""Fleet status: every vehicle/device with last seen, status and open alarms; one source's detail."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from psycopg import sql

from api.db import Db
from api.models import FleetPage, FleetSummary, SourceDetail, SourceStatus
from api.params import Cursor, Limit, OptionalId, SourceId, decode_cursor, encode_cursor
from api.routers.alarms import ALARM_COLUMNS

router = APIRouter(prefix="/fleet", tags=["fleet"])
Kind = Literal["vehicle", "building_device", "device"]

# One row per source: its open alarms and whether it is inactive (flagged by the inactivity job,
# silent past its own timeout, or silent longer than the API's stale limit).
_SOURCES = """
SELECT source_id, kind, fleet_id, site_id, zone_id, last_seen, last_schema, latest, open_alarms,
       CASE WHEN inactive THEN 'inactive' WHEN open_alarms > 0 THEN 'alarm' ELSE 'ok' END AS status
FROM (
    SELECT s.*,
           (SELECT count(*) FROM alarms a WHERE a.source_id = s.source_id AND a.status <> 'cleared') AS open_alarms,
           coalesce(d.inactive OR d.last_seen + make_interval(secs => d.timeout_s) < now(), false)
             OR s.last_seen < now() - make_interval(secs => %(stale_s)s) AS inactive
    FROM source_state s LEFT JOIN device_inactivity d ON d.device_id = s.source_id
    WHERE {where}
) sources
"""


def _filters(kind: str | None, fleet_id: str | None, site_id: str | None) -> tuple[list[sql.Composable], dict]:
    conditions: list[sql.Composable] = [sql.SQL("true")]
    params: dict = {"kind": kind, "fleet_id": fleet_id, "site_id": site_id}
    for column in ("kind", "fleet_id", "site_id"):
        if params[column] is not None:
            conditions.append(sql.SQL("s.{} = %({})s").format(sql.Identifier(column), sql.SQL(column)))
    return conditions, params


@router.get("", response_model=FleetPage, summary="Vehicles and devices with last seen, status and open alarms")
async def list_sources(
    request: Request,
    db: Db,
    *,
    kind: Kind | None = None,
    fleet_id: OptionalId = None,
    site_id: OptionalId = None,
    status: SourceStatus | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> FleetPage:
    conditions, params = _filters(kind, fleet_id, site_id)
    if cursor:
        (params["after"],) = decode_cursor(cursor, (str,))
        conditions.append(sql.SQL("s.source_id > %(after)s"))
    query = sql.SQL(_SOURCES).format(where=sql.SQL(" AND ").join(conditions))
    if status:
        query += sql.SQL(
            " WHERE CASE WHEN inactive THEN 'inactive' WHEN open_alarms > 0 THEN 'alarm' ELSE 'ok' END = %(status)s"
        )
    query += sql.SQL(" ORDER BY source_id LIMIT %(limit)s")
    params |= {"status": status, "limit": limit + 1, "stale_s": request.app.state.settings.stale_after_s}
    rows = await (await db.execute(query, params)).fetchall()
    next_cursor = encode_cursor(rows[limit - 1]["source_id"]) if len(rows) > limit else None
    return FleetPage(items=rows[:limit], next_cursor=next_cursor)


@router.get("/summary", response_model=FleetSummary, summary="Counts of sources by status and kind")
async def summary(
    request: Request, db: Db, kind: Kind | None = None, fleet_id: OptionalId = None, site_id: OptionalId = None
) -> FleetSummary:
    conditions, params = _filters(kind, fleet_id, site_id)
    params["stale_s"] = request.app.state.settings.stale_after_s
    inner = sql.SQL(_SOURCES).format(where=sql.SQL(" AND ").join(conditions))
    query = sql.SQL("SELECT kind, status, count(*) AS n FROM ({}) t GROUP BY kind, status").format(inner)
    rows = await (await db.execute(query, params)).fetchall()
    by_status = dict.fromkeys(("ok", "alarm", "inactive"), 0)
    by_kind: dict[str, int] = {}
    for row in rows:
        by_status[row["status"]] += row["n"]
        by_kind[row["kind"]] = by_kind.get(row["kind"], 0) + row["n"]
    severity_query = sql.SQL(
        "SELECT a.severity, count(*) AS n FROM alarms a JOIN source_state s USING (source_id)"
        " WHERE a.status <> 'cleared' AND {} GROUP BY a.severity"
    ).format(sql.SQL(" AND ").join(conditions))
    severities = await (await db.execute(severity_query, params)).fetchall()
    open_by_severity = dict.fromkeys(("info", "warning", "critical"), 0) | {r["severity"]: r["n"] for r in severities}
    return FleetSummary(
        total=sum(by_status.values()), by_status=by_status, by_kind=by_kind, open_alarms_by_severity=open_by_severity
    )


@router.get(
    "/{source_id}",
    response_model=SourceDetail,
    responses={404: {"description": "No such source"}},
    summary="One vehicle or device: latest state, liveness and open alarms",
)
async def source_detail(request: Request, db: Db, source_id: SourceId) -> SourceDetail:
    query = sql.SQL(_SOURCES).format(where=sql.SQL("s.source_id = %(source_id)s"))
    params = {"source_id": source_id, "stale_s": request.app.state.settings.stale_after_s}
    row = await (await db.execute(query, params)).fetchone()
    if row is None:
        raise HTTPException(404, f"source {source_id!r} not found")
    inactivity = await (
        await db.execute(
            "SELECT timeout_s, inactive, inactive_since, last_seen AS last_heartbeat"
            " FROM device_inactivity WHERE device_id = %s",
            (source_id,),
        )
    ).fetchone()
    alarms = await (
        await db.execute(
            sql.SQL(
                "SELECT {} FROM alarms WHERE source_id = %s AND status <> 'cleared' ORDER BY last_seen DESC"
            ).format(ALARM_COLUMNS),
            (source_id,),
        )
    ).fetchall()
    return SourceDetail(**row, inactivity=inactivity, alarms=alarms)
