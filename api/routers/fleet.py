"""Fleet status: every vehicle/device with last seen, status and open alarms; one source's detail.
Sources and the alarms counted with them are limited to the key's fleets (api.scope); a source of
another fleet is a 404, as one that does not exist."""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, Response
from psycopg import sql
from psycopg.rows import tuple_row

from api.db import Db
from api.models import FleetPage, FleetSource, FleetSummary, SourceDetail, SourceStatus
from api.params import Cursor, Limit, OptionalId, SourceId, decode_cursor, encode_cursor
from api.routers.alarms import ALARM_COLUMNS
from api.scope import FleetScope, Scope

router = APIRouter(prefix="/fleet", tags=["fleet"])
Kind = Literal["vehicle", "building_device", "device"]

# One row per source: its open alarms and whether it is inactive (flagged by the inactivity job,
# silent past its own timeout, or silent longer than the API's stale limit). Lists leave out the
# latest payload (`detail`): decoding a JSON document per row was most of a fleet page's cost.
_SOURCES = """
SELECT source_id, kind, fleet_id, site_id, zone_id, last_seen, {detail}open_alarms,
       CASE WHEN inactive THEN 'inactive' WHEN open_alarms > 0 THEN 'alarm' ELSE 'ok' END AS status
FROM (
    SELECT s.*, o.open_alarms,
           coalesce(d.inactive OR d.last_seen + make_interval(secs => d.timeout_s) < now(), false)
             OR s.last_seen < now() - make_interval(secs => %(stale_s)s) AS inactive
    FROM source_state s LEFT JOIN device_inactivity d ON d.device_id = s.source_id
    CROSS JOIN LATERAL (  -- counted once per row; as a scalar subquery the status CASE counted again
        SELECT count(*) AS open_alarms FROM alarms a
        WHERE a.source_id = s.source_id AND a.status <> 'cleared' AND {alarm_scope}
    ) o
    WHERE {where}
) sources
"""


# Fleet rows as PostgreSQL renders them: (source_id, the item's JSON with FleetSource's fields in
# its order). Building 100 rows into Python objects and back to JSON took longer than the query;
# one JSON text per row costs PostgreSQL less than aggregating the page (backend CPU 1.25 vs
# 1.6 ms per page on the bench_api data).
_ITEM_FIELDS = ", ".join(FleetSource.model_fields)
_PAGE = f"SELECT source_id, to_json(item)::text FROM (SELECT {_ITEM_FIELDS} FROM ({{rows}}) page_rows) item"


def _sources(scope: Scope, where: sql.Composable, detail: bool = False) -> sql.Composed:
    return sql.SQL(_SOURCES).format(
        where=sql.SQL(" AND ").join([scope.where("s.fleet_id"), where]),
        alarm_scope=scope.where("a.fleet_id"),
        detail=sql.SQL("last_schema, latest, " if detail else ""),
    )


def _filters(
    scope: Scope, kind: str | None, fleet_id: str | None, site_id: str | None
) -> tuple[list[sql.Composable], dict]:
    conditions: list[sql.Composable] = [sql.SQL("true")]
    params: dict = {**scope.params, "kind": kind, "fleet_id": fleet_id, "site_id": site_id}
    for column in ("kind", "fleet_id", "site_id"):
        if params[column] is not None:
            conditions.append(sql.SQL("s.{} = %({})s").format(sql.Identifier(column), sql.SQL(column)))
    return conditions, params


@router.get("", response_model=FleetPage, summary="Vehicles and devices with last seen, status and open alarms")
async def list_sources(
    request: Request,
    db: Db,
    scope: FleetScope,
    *,
    kind: Kind | None = None,
    fleet_id: OptionalId = None,
    site_id: OptionalId = None,
    status: SourceStatus | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    conditions, params = _filters(scope, kind, fleet_id, site_id)
    if cursor:
        (params["after"],) = decode_cursor(cursor, (str,))
        conditions.append(sql.SQL("s.source_id > %(after)s"))
    query = _sources(scope, sql.SQL(" AND ").join(conditions))
    if status:
        query += sql.SQL(
            " WHERE CASE WHEN inactive THEN 'inactive' WHEN open_alarms > 0 THEN 'alarm' ELSE 'ok' END = %(status)s"
        )
    query += sql.SQL(" ORDER BY source_id LIMIT %(limit)s")
    params |= {"status": status, "limit": limit + 1, "stale_s": request.app.state.settings.stale_after_s}
    page = await db.cursor(row_factory=tuple_row).execute(sql.SQL(_PAGE).format(rows=query), params)
    rows = await page.fetchall()
    next_cursor = encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None
    items = ",".join(item for _, item in rows[:limit])
    # Already JSON (see _PAGE): returned as is, FastAPI does not encode it again.
    return Response(f'{{"items":[{items}],"next_cursor":{json.dumps(next_cursor)}}}', media_type="application/json")


@router.get("/summary", response_model=FleetSummary, summary="Counts of sources by status and kind")
async def summary(
    request: Request,
    db: Db,
    scope: FleetScope,
    *,
    kind: Kind | None = None,
    fleet_id: OptionalId = None,
    site_id: OptionalId = None,
) -> FleetSummary:
    conditions, params = _filters(scope, kind, fleet_id, site_id)
    params["stale_s"] = request.app.state.settings.stale_after_s
    inner = _sources(scope, sql.SQL(" AND ").join(conditions))
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
    ).format(sql.SQL(" AND ").join([scope.where("s.fleet_id"), scope.where("a.fleet_id"), *conditions]))
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
async def source_detail(request: Request, db: Db, scope: FleetScope, source_id: SourceId) -> SourceDetail:
    query = _sources(scope, sql.SQL("s.source_id = %(source_id)s"), detail=True)
    params = {**scope.params, "source_id": source_id, "stale_s": request.app.state.settings.stale_after_s}
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
                "SELECT {} FROM alarms WHERE source_id = %(source_id)s AND status <> 'cleared' AND {}"
                " ORDER BY last_seen DESC"
            ).format(ALARM_COLUMNS, scope.where("fleet_id")),
            params,
        )
    ).fetchall()
    return SourceDetail(**row, inactivity=inactivity, alarms=alarms)
