"""Alarms: filtered, cursor-paginated listing, counts, and the acknowledge/clear lifecycle.

Every query is limited to the key's fleets (api.scope). An alarm of a fleet the key does not see
is answered 404, as one that does not exist, for reads and mutations alike: the answer tells
nothing about other fleets' alarm ids. Acknowledging and clearing need role `operate` (403
naming it otherwise); each change writes its audit row (alarm_audit: who, when, the alarm's
fleet, an optional note) in the same statement, so neither is ever without the other."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query
from psycopg import sql

from api.auth import AUTH_RESPONSES, OPERATE_REQUIRED, Operator
from api.db import Db
from api.models import Alarm, AlarmAction, AlarmAudit, AlarmCounts, AlarmPage
from api.params import ID_PATTERN, Cursor, Limit, OptionalId, Since, Until, check_order, decode_cursor, encode_cursor
from api.scope import FleetScope, Scope
from contracts.records import AlertSeverity, AlertStatus, AlertType

router = APIRouter(prefix="/alarms", tags=["alarms"])
log = logging.getLogger("api.alarms")

ALARM_COLUMNS = sql.SQL(", ").join(map(sql.Identifier, Alarm.model_fields))
AlertId = Annotated[str, Path(pattern=ID_PATTERN, description="The alarm's id.")]
Statuses = Annotated[list[AlertStatus] | None, Query(description="Repeat to match several.")]
Severities = Annotated[list[AlertSeverity] | None, Query()]
Types = Annotated[list[AlertType] | None, Query()]
_NOT_FOUND = {404: {"description": "No such alarm"}}


def _filters(
    scope: Scope, *, status, severity, alert_type, source_id, fleet_id, since, until
) -> tuple[list[sql.Composable], dict]:
    """WHERE conditions for the shared filters; times match alarms seen in [since, until)."""
    conditions: list[sql.Composable] = [scope.where("fleet_id")]
    params = {
        **scope.params,
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
    scope: FleetScope,
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
        scope,
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
    scope: FleetScope,
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
        scope,
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
async def get_alarm(db: Db, scope: FleetScope, alert_id: AlertId) -> Alarm:
    return await _current(db, scope, alert_id)


_LIFECYCLE_RESPONSES = {**_NOT_FOUND, **AUTH_RESPONSES, 409: {"description": "The alarm is already cleared"}}
Note = Annotated[AlarmAction | None, Body(description="Optional: a note for the audit record.")]

# One statement: the change and its audit row commit together or not at all.
_CHANGE = """
WITH changed AS (
    UPDATE alarms SET {assignments}, updated_at = now()
    WHERE alert_id = %(alert_id)s AND {allowed} AND {scope}
    RETURNING *
), audit AS (
    INSERT INTO alarm_audit (alert_id, action, key_name, fleet_id, at, note)
    SELECT alert_id, %(action)s, %(who)s, fleet_id, updated_at, %(note)s FROM changed
)
SELECT {columns} FROM changed
"""


async def _change(db, caller, alert_id: str, *, action: str, assignments: str, allowed: str, note) -> dict | None:
    """The alarm as changed (and audited), or None when it was not in a state `allowed` to change."""
    query = sql.SQL(_CHANGE).format(
        assignments=sql.SQL(assignments),
        allowed=sql.SQL(allowed),
        scope=Scope.of(caller).where("fleet_id"),
        columns=ALARM_COLUMNS,
    )
    params = {
        **Scope.of(caller).params,
        "alert_id": alert_id,
        "action": action,
        "who": caller.name,
        "note": note.note if note else None,
    }
    row = await (await db.execute(query, params)).fetchone()
    if row is not None:
        log.info(f"alarm {action}d", extra={"alert_id": alert_id, "by": caller.name})
    return row


@router.post(
    "/{alert_id}/acknowledge",
    response_model=Alarm,
    responses=_LIFECYCLE_RESPONSES,
    dependencies=OPERATE_REQUIRED,  # first: the key is checked before a connection is borrowed
    summary="Acknowledge an active alarm (idempotent; needs a key with role operate)",
)
async def acknowledge(db: Db, alert_id: AlertId, caller: Operator, note: Note = None) -> Alarm:
    assignments = "status = 'acknowledged', acknowledged_at = now(), acknowledged_by = %(who)s"
    row = await _change(
        db, caller, alert_id, action="acknowledge", assignments=assignments, allowed="status = 'active'", note=note
    )
    if row is None:
        row = await _current(db, Scope.of(caller), alert_id)
        if row["status"] == AlertStatus.CLEARED:
            raise HTTPException(409, f"alarm {alert_id!r} is already cleared")
    return row


@router.post(
    "/{alert_id}/clear",
    response_model=Alarm,
    responses=_LIFECYCLE_RESPONSES,
    dependencies=OPERATE_REQUIRED,  # first: the key is checked before a connection is borrowed
    summary="Clear an open alarm by hand (needs a key with role operate)",
)
async def clear(db: Db, alert_id: AlertId, caller: Operator, note: Note = None) -> Alarm:
    assignments = "status = 'cleared', cleared_at = now(), cleared_by = %(who)s"
    row = await _change(
        db, caller, alert_id, action="clear", assignments=assignments, allowed="status <> 'cleared'", note=note
    )
    if row is None:
        await _current(db, Scope.of(caller), alert_id)
        raise HTTPException(409, f"alarm {alert_id!r} is already cleared")
    return row


@router.get(
    "/{alert_id}/audit",
    response_model=AlarmAudit,
    responses={**_NOT_FOUND, **AUTH_RESPONSES},
    dependencies=OPERATE_REQUIRED,  # names who did what: operators' business, whatever API_READ_AUTH says
    summary="Who acknowledged or cleared an alarm, and when (needs a key with role operate)",
)
async def alarm_audit(db: Db, alert_id: AlertId, caller: Operator) -> AlarmAudit:
    scope = Scope.of(caller)
    await _current(db, scope, alert_id)
    query = sql.SQL(
        "SELECT action, key_name, fleet_id, at, note FROM alarm_audit WHERE alert_id = %(alert_id)s AND {}"
        " ORDER BY at, id"
    ).format(scope.where("fleet_id"))
    rows = await (await db.execute(query, {**scope.params, "alert_id": alert_id})).fetchall()
    return AlarmAudit(alert_id=alert_id, items=rows)


async def _current(db, scope: Scope, alert_id: str) -> dict:
    """The alarm if the key's fleets include it, else 404 (as if it did not exist)."""
    query = sql.SQL("SELECT {} FROM alarms WHERE alert_id = %(alert_id)s AND {}").format(
        ALARM_COLUMNS, scope.where("fleet_id")
    )
    row = await (await db.execute(query, {**scope.params, "alert_id": alert_id})).fetchone()
    if row is None:
        raise HTTPException(404, f"alarm {alert_id!r} not found")
    return row
