"""Response bodies: what the OpenAPI document promises and schemathesis checks."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from contracts.records import AlertSeverity, AlertStatus, AlertType

SourceStatus = Literal["ok", "alarm", "inactive"]


class Alarm(BaseModel):
    alert_id: str
    alert_type: str  # free text in the table; contracts.records.AlertType lists what the jobs write
    severity: AlertSeverity
    status: AlertStatus
    source_id: str
    fleet_id: str
    first_seen: datetime
    last_seen: datetime
    cleared_at: datetime | None
    count: int
    value: float | None
    threshold: float | None
    message: str
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    cleared_by: str | None  # the key that cleared it by hand; None when the pipeline cleared it


class AlarmAction(BaseModel):
    """Optional body of an acknowledge or clear."""

    # No NUL: PostgreSQL text cannot hold one (a DataError, a 500, before this was checked).
    note: str | None = Field(default=None, max_length=500, pattern=r"^[^\x00]*$")


class AuditEntry(BaseModel):
    action: Literal["acknowledge", "clear"]
    key_name: str  # the API key's name: who
    fleet_id: str
    at: datetime
    note: str | None


class AlarmAudit(BaseModel):
    alert_id: str
    items: list[AuditEntry]  # oldest first


class AlarmPage(BaseModel):
    items: list[Alarm]
    next_cursor: str | None


class AlarmCounts(BaseModel):
    by: Literal["type", "severity", "status"]
    counts: dict[str, int]
    total: int


class FleetSource(BaseModel):
    source_id: str
    kind: str
    fleet_id: str
    site_id: str | None
    zone_id: str | None
    last_seen: datetime
    status: SourceStatus
    open_alarms: int


class FleetPage(BaseModel):
    items: list[FleetSource]
    next_cursor: str | None


class FleetSummary(BaseModel):
    total: int
    by_status: dict[str, int]
    by_kind: dict[str, int]
    open_alarms_by_severity: dict[str, int]


class Inactivity(BaseModel):
    timeout_s: float
    inactive: bool
    inactive_since: datetime | None
    last_heartbeat: datetime


class SourceDetail(FleetSource):
    last_schema: str
    latest: dict[str, Any]
    inactivity: Inactivity | None
    alarms: list[Alarm]


class TrendPoint(BaseModel):
    time: datetime
    avg: float
    min: float
    max: float
    count: int


class Trend(BaseModel):
    source_id: str
    metric: str
    tire: str | None = None
    resolution: str
    start: datetime
    end: datetime
    points: list[TrendPoint]


class HourCell(BaseModel):
    day: date
    hour: int
    count: int


class HourHeatmap(BaseModel):
    since: datetime
    until: datetime
    cells: list[HourCell]


class ZoneCell(BaseModel):
    site_id: str
    zone_id: str
    count: int


class ZoneHeatmap(BaseModel):
    since: datetime
    until: datetime
    cells: list[ZoneCell]


class InactiveDevice(BaseModel):
    device_id: str
    last_seen: datetime
    timeout_s: float
    inactive_since: datetime | None
    silent_for_s: float


class InactiveDevices(BaseModel):
    count: int
    items: list[InactiveDevice]


class DrivingKpi(BaseModel):
    source_id: str
    interventions: int
    disengagements: int
    distance_km: float
    km_per_intervention: float | None  # None: no intervention in the period
    interventions_per_1000km: float | None  # None: no distance driven


class DrivingKpis(BaseModel):
    since: datetime
    until: datetime
    window_s: int | None
    fleet: DrivingKpi
    vehicles: list[DrivingKpi]


class RegionWindow(BaseModel):
    window_start: datetime
    window_end: datetime
    trips: int
    revenue: float
    avg_duration_s: float
    avg_distance_km: float


class RegionMetrics(BaseModel):
    region_id: str
    window: str
    base_window_s: int | None
    windows: list[RegionWindow]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    database: bool
    pending_migrations: list[str]
    detail: str | None = None


__all__ = ["AlertSeverity", "AlertStatus", "AlertType"]
