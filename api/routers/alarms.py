"""Alarms: filtered, cursor-paginated listing, counts, and the acknowledge/clear lifecycle."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from psycopg import sql

from api.auth import AUTH_RESPONSES, KEY_REQUIRED, Writer
from api.db import Db
from api.models import Alarm, AlarmCounts, AlarmPage
from api.params import ID_PATTERN, Cursor, Limit, OptionalId, Since, Until, check_order, decode_cursor, encode_cursor
from contracts.records import AlertSeverity, AlertStatus, AlertType

router = APIRouter(prefix="/alarms", tags=["alarms"])
log = logging.getLogger("api.alarms")

ALARM_COLUMNS = sql.SQL(", ").join(map(sql.Identifier, Alarm.model_fields))
AlertId = Annotated[str, Path(pattern=ID_PATTERN, description="The alarm's id.")]
Statuses = Annotated[list[AlertStatus] | None, Query(description="Repeat to match several.")]
Severities = Annotated[list[AlertSeverity] | None, Query()]
Types = Annotated[list[AlertType] | None, Query()]
_NOT_FOUND = {404: {"description": "No such alarm"}}


def _filters(*, status, severity, alert_type, source_id, fleet_id, since, until) -> tuple[list[sql.Composable], dict]:
    """WHERE conditions for the shared filters; times match alarms seen in [since, until)."""
    conditions: list[sql.Composable] = [sql.SQL("true")]
    params = {
        "status": status,
        "severity": severity,
        "alert_type": alert_type,
        "source_id": source_id,
        "fleet_id": fleet_id,
        "since": since,
        "until": until,
    }
    for column in ("status", "severity", "alert_type"):
        if params[column]:
            values = sorted({str(value) for value in params[column]})
            # One value is a plain `=`: only then can PostgreSQL read the listing indexes in order.
            params[column] = values[0] if len(values) == 1 else values
            operator = "{} = %({})s" if len(values) == 1 else "{} = ANY(%({})s)"
            conditions.append(sql.SQL(operator).format(sql.Identifier(column), sql.SQL(column)))
    for column in ("source_id", "fleet_id"):
        if params[column] is not None:
            conditions.append(sql.SQL("{} = %({})s").format(sql.Identifier(column), sql.SQL(column)))
    if since is not None:
        conditions.append(sql.SQL("last_seen >= %(since)s"))
    if until is not None:
        conditions.append(sql.SQL("last_seen < %(until)s"))
    return conditions, params


@router.get("", response_model=AlarmPage, summary="Alarms, newest first, filtered and cursor-paginated")
async def list_alarms(
    db: Db,
    *,
    status: Statuses = None,
    severity: Severities = None,
    alert_type: Types = None,
    source_id: OptionalId = None,
    fleet_id: OptionalId = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> AlarmPage:
    check_order(since, until)
    conditions, params = _filters(
        status=status,
        severity=severity,
        alert_type=alert_type,
        source_id=source_id,
        fleet_id=fleet_id,
        since=since,
        until=until,
    )
    if cursor:
        params["after_seen"], params["after_id"] = decode_cursor(cursor, (datetime, str))
        conditions.append(sql.SQL("(last_seen, alert_id) < (%(after_seen)s, %(after_id)s)"))
    params["limit"] = limit + 1
    query = sql.SQL("SELECT {} FROM alarms WHERE {} ORDER BY last_seen DESC, alert_id DESC LIMIT %(limit)s").format(
        ALARM_COLUMNS, sql.SQL(" AND ").join(conditions)
    )
    rows = await (await db.execute(query, params)).fetchall()
    last = rows[limit - 1] if len(rows) > limit else None
    return AlarmPage(
        items=rows[:limit], next_cursor=encode_cursor(last["last_seen"], last["alert_id"]) if last else None
    )


@router.get("/counts", response_model=AlarmCounts, summary="Alarm counts by type, severity or status")
async def alarm_counts(
    db: Db,
    *,
    by: Literal["type", "severity", "status"] = "type",
    status: Statuses = None,
    severity: Severities = None,
    source_id: OptionalId = None,
    fleet_id: OptionalId = None,
    since: Since = None,
    until: Until = None,
) -> AlarmCounts:
    check_order(since, until)
    column = {"type": "alert_type", "severity": "severity", "status": "status"}[by]
    conditions, params = _filters(
        status=status,
        severity=severity,
        alert_type=None,
        source_id=source_id,
        fleet_id=fleet_id,
        since=since,
        until=until,
    )
    query = sql.SQL("SELECT {col} AS key, count(*) AS n FROM alarms WHERE {where} GROUP BY {col}").format(
        col=sql.Identifier(column), where=sql.SQL(" AND ").join(conditions)
    )
    rows = await (await db.execute(query, params)).fetchall()
    known = {"type": AlertType, "severity": AlertSeverity, "status": AlertStatus}[by]
    counts = dict.fromkeys((member.value for member in known), 0) | {row["key"]: row["n"] for row in rows}
    return AlarmCounts(by=by, counts=counts, total=sum(counts.values()))


@router.get("/{alert_id}", response_model=Alarm, responses=_NOT_FOUND, summary="One alarm")
async def get_alarm(db: Db, alert_id: AlertId) -> Alarm:
    row = await (
        await db.execute(sql.SQL("SELECT {} FROM alarms WHERE alert_id = %s").format(ALARM_COLUMNS), (alert_id,))
    ).fetchone()
    if row is None:
        raise HTTPException(404, f"alarm {alert_id!r} not found")
    return row


_LIFECYCLE_RESPONSES = {**_NOT_FOUND, **AUTH_RESPONSES, 409: {"description": "The alarm is already cleared"}}


@router.post(
    "/{alert_id}/acknowledge",
    response_model=Alarm,
    responses=_LIFECYCLE_RESPONSES,
    dependencies=KEY_REQUIRED,  # first: the key is checked before a connection is borrowed
    summary="Acknowledge an active alarm (idempotent; needs an API key)",
)
async def acknowledge(db: Db, alert_id: AlertId, caller: Writer) -> Alarm:
    query = sql.SQL(
        "UPDATE alarms SET status = 'acknowledged', acknowledged_at = now(), acknowledged_by = %s, updated_at = now()"
        " WHERE alert_id = %s AND status = 'active' RETURNING {}"
    ).format(ALARM_COLUMNS)
    row = await (await db.execute(query, (caller.name, alert_id))).fetchone()
    if row is None:
        row = await _current(db, alert_id)
        if row["status"] == AlertStatus.CLEARED:
            raise HTTPException(409, f"alarm {alert_id!r} is already cleared")
    else:
        log.info("alarm acknowledged", extra={"alert_id": alert_id, "by": caller.name})
    return row


@router.post(
    "/{alert_id}/clear",
    response_model=Alarm,
    responses=_LIFECYCLE_RESPONSES,
    dependencies=KEY_REQUIRED,  # first: the key is checked before a connection is borrowed
    summary="Clear an open alarm by hand (needs an API key)",
)
async def clear(db: Db, alert_id: AlertId, caller: Writer) -> Alarm:
    query = sql.SQL(
        "UPDATE alarms SET status = 'cleared', cleared_at = now(), updated_at = now()"
        " WHERE alert_id = %s AND status <> 'cleared' RETURNING {}"
    ).format(ALARM_COLUMNS)
    row = await (await db.execute(query, (alert_id,))).fetchone()
    if row is None:
        await _current(db, alert_id)
        raise HTTPException(409, f"alarm {alert_id!r} is already cleared")
    log.info("alarm cleared", extra={"alert_id": alert_id, "by": caller.name})
    return row


async def _current(db, alert_id: str) -> dict:
    row = await (
        await db.execute(sql.SQL("SELECT {} FROM alarms WHERE alert_id = %s").format(ALARM_COLUMNS), (alert_id,))
    ).fetchone()
    if row is None:
        raise HTTPException(404, f"alarm {alert_id!r} not found")
    return row
