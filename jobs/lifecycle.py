"""What SQL cannot say: the alarm lifecycle (one open incident per source and type, counted,
cleared with hysteresis) and the inactivity checks on processing time. Both are keyed Python functions
over the small streams SQL leaves for them; each output is a row (table, key, JSON document) that
SQL routes to its topic: alarm records to the alerts topic, device liveness to its store topic."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from contracts.events import format_time
from contracts.records import AlertRecord, AlertSeverity, AlertStatus, AlertType


def alert_id(alert_type: str, source_id: str, first_seen: datetime) -> str:
    """Deterministic per incident, so every replay upserts the same row."""
    digest = hashlib.sha1(f"{source_id}|{alert_type}|{format_time(first_seen)}".encode()).hexdigest()[:24]
    return f"{alert_type}-{digest}"


def _utc(text: str) -> datetime:
    """SQL's 'yyyy-MM-dd HH:mm:ss.SSS' (UTC) as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


OUTPUT_TYPE = Types.ROW_NAMED(["tbl", "k", "payload"], [Types.STRING(), Types.STRING(), Types.STRING()])
"""What the lifecycle functions emit: the target table, the record's key, the JSON document."""


def _line(table: str, key: str, row: dict) -> Row:
    return Row(table, key, json.dumps(row, separators=(",", ":")))


def alarm_line(record: AlertRecord) -> Row:
    return _line("alarms", record.source_id, record.model_dump(mode="json"))


class AlarmLifecycle(KeyedProcessFunction):
    """Keyed by (source_id, alert_type); input: breaching readings ('B') and the first reading
    back in bounds after them ('O') per subject (a tire; '' for single-valued rules), in
    event-time order (jobs.pipelines.alarm_candidates). The alarm opens with the first breaching
    subject and clears when no subject breaches any more."""

    def open(self, runtime_context: RuntimeContext):
        self.open_alarm = runtime_context.get_state(ValueStateDescriptor("open_alarm", Types.STRING()))

    def process_element(self, row, ctx):
        current = self.open_alarm.value()
        state = json.loads(current) if current else None
        alarm = AlertRecord.model_validate(state["alarm"]) if state else None
        breaching = set(state["breaching"]) if state else set()
        at = _utc(row.event_at)
        if row.cond == "B":
            alarm = self._raise(alarm, row, at)
            breaching.add(row.subject)
            self.open_alarm.update(json.dumps({"alarm": alarm.model_dump(mode="json"), "breaching": sorted(breaching)}))
            yield alarm_line(alarm)
            return
        breaching.discard(row.subject)
        if alarm is None:
            return
        if breaching:
            self.open_alarm.update(json.dumps({"alarm": alarm.model_dump(mode="json"), "breaching": sorted(breaching)}))
            return
        self.open_alarm.clear()
        yield alarm_line(alarm.model_copy(update={"status": AlertStatus.CLEARED, "cleared_at": at}))

    @staticmethod
    def _raise(alarm: AlertRecord | None, row, at: datetime) -> AlertRecord:
        where = f" ({row.subject})" if row.subject else ""
        message = f"{row.alert_type}{where}: {row.val:g} beyond {row.threshold:g}"
        if alarm is None:
            return AlertRecord(
                alert_id=alert_id(row.alert_type, row.source_id, at),
                alert_type=AlertType(row.alert_type),
                severity=AlertSeverity(row.severity),
                status=AlertStatus.ACTIVE,
                source_id=row.source_id,
                fleet_id=row.fleet_id,
                first_seen=at,
                last_seen=at,
                count=1,
                value=row.val,
                threshold=row.threshold,
                message=message,
            )
        update = {"last_seen": max(at, alarm.last_seen), "count": alarm.count + 1, "value": row.val, "message": message}
        return alarm.model_copy(update=update)


class InactivityTimers(KeyedProcessFunction):
    """Keyed by device. Devices are checked for silence every `check_interval_s` of processing time
    (thresholds.inactivity.check_interval_s; the checks fall on multiples of the interval since
    1970, the same instants for every device): a device is reported inactive at the first check at
    or after it was last heard from (its newest heartbeat's arrival) + its timeout. Each heartbeat
    moves the device's one timer to that check; on processing time, so silence is noticed even when
    every device (and so every watermark) has stopped."""

    def __init__(self, default_timeout_s: float, check_interval_s: float):
        self.default_timeout_s = default_timeout_s
        self.check_ms = max(1, round(check_interval_s * 1000))

    def open(self, runtime_context: RuntimeContext):
        self.device = runtime_context.get_state(ValueStateDescriptor("device", Types.STRING()))

    def check_at(self, due_ms: int) -> int:
        """The first check at or after `due_ms`."""
        return -(-due_ms // self.check_ms) * self.check_ms

    def process_element(self, row, ctx):
        stored = self.device.value()
        device = json.loads(stored) if stored else None
        seen = _utc(row.event_at)
        timeout_s = row.timeout_s or self.default_timeout_s
        timers = ctx.timer_service()
        timer = self.check_at(timers.current_processing_time() + int(timeout_s * 1000))
        if device is not None:
            if device["timer"] != timer:
                timers.delete_processing_time_timer(device["timer"])
            seen = max(seen, datetime.fromisoformat(device["last_seen"]))
        if device is None or device.get("inactive_since"):
            yield from self._back_online(device, row, seen, timeout_s)
        if device is None or device["timer"] != timer:
            timers.register_processing_time_timer(timer)
        state = {"last_seen": seen.isoformat(), "timeout_s": timeout_s, "timer": timer, "fleet_id": row.fleet_id}
        self.device.update(json.dumps(state))

    def _back_online(self, device: dict | None, row, seen: datetime, timeout_s: float):
        updated = seen
        if device is not None:
            since = datetime.fromisoformat(device["inactive_since"])
            updated = max(seen, since)
            alarm = self._alarm(row.source_id, device["fleet_id"], since, device["timeout_s"])
            yield alarm_line(alarm.model_copy(update={"status": AlertStatus.CLEARED, "cleared_at": updated}))
        yield _line("device_inactivity", row.source_id, _liveness(row.source_id, seen, timeout_s, None, updated))

    def on_timer(self, timestamp: int, ctx):
        device = json.loads(self.device.value())
        since = datetime.fromisoformat(device["last_seen"]) + _seconds(device["timeout_s"])
        device["inactive_since"] = since.isoformat()
        self.device.update(json.dumps(device))
        source_id = ctx.get_current_key()
        yield alarm_line(self._alarm(source_id, device["fleet_id"], since, device["timeout_s"]))
        yield _line(
            "device_inactivity",
            source_id,
            _liveness(source_id, since - _seconds(device["timeout_s"]), device["timeout_s"], since, since),
        )

    @staticmethod
    def _alarm(source_id: str, fleet_id: str, since: datetime, timeout_s: float) -> AlertRecord:
        return AlertRecord(
            alert_id=alert_id(AlertType.DEVICE_INACTIVE, source_id, since),
            alert_type=AlertType.DEVICE_INACTIVE,
            severity=AlertSeverity.WARNING,
            status=AlertStatus.ACTIVE,
            source_id=source_id,
            fleet_id=fleet_id,
            first_seen=since,
            last_seen=since,
            count=1,
            threshold=timeout_s,
            message=f"no heartbeat for more than {timeout_s:g} s",
        )


def _seconds(value: float):
    from datetime import timedelta

    return timedelta(seconds=value)


def _liveness(device_id, last_seen, timeout_s, inactive_since, updated_at) -> dict:
    return {
        "device_id": device_id,
        "last_seen": format_time(last_seen),
        "timeout_s": timeout_s,
        "inactive": inactive_since is not None,
        "inactive_since": format_time(inactive_since) if inactive_since else None,
        "updated_at": format_time(updated_at),
    }
