"""Data lifecycle settings per environment: retention, compression and rollup refresh.

With TimescaleDB they become background policies (`apply_timescale_policies`); tables that are no
hypertables, and every table on plain PostgreSQL, are pruned by `prune` (`storage.migrate prune`).
The settings are checked so the policies cannot overlap: raw data lives longer than the window
the rollups refresh from, and chunks are compressed only after that window has passed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from psycopg import sql

_UNITS = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=30),
    "year": timedelta(days=365),
}
_ALIASES = {"m": "minute", "min": "minute", "h": "hour", "d": "day", "w": "week", "mon": "month", "y": "year"}
_PERIOD = re.compile(r"^\s*(\d+)\s*([a-z]+?)s?\s*$")

# Tables with a time column that retention may prune, and that column.
RETENTION_TABLES: dict[str, str] = {
    "readings": "time",
    "aggregates": "window_start",
    "alarm_events": "last_seen",
    "dead_letters": "received_at",
    "driving_kpis": "window_start",
    "trip_metrics": "window_start",
    "rollups": "bucket",  # readings_1h and readings_1d
}
HYPERTABLES = ("readings", "aggregates", "alarm_events")
ROLLUPS = ("readings_1h", "readings_1d")
DEFAULT_RETENTION = {
    "readings": "30 days",
    "aggregates": "365 days",
    "alarm_events": "365 days",
    "dead_letters": "30 days",
    "driving_kpis": "365 days",
    "trip_metrics": "365 days",
    "rollups": "730 days",
}
# The daily rollup reads the hourly one; it refreshes its last 3 days (two full buckets at least).
DAILY_REFRESH_WINDOW = "3 days"


class PolicyError(ValueError):
    """Settings that are malformed or would make the policies overlap; `setting` names which."""

    def __init__(self, setting: str, reason: str):
        self.setting = setting
        super().__init__(f"{setting}: {reason}")


@dataclass(frozen=True)
class Period:
    """A duration as PostgreSQL reads it (`7 days`) with its length for comparisons."""

    text: str
    length: timedelta

    @classmethod
    def parse(cls, value: str, setting: str) -> Period:
        match = _PERIOD.match(value.lower())
        unit = match and _ALIASES.get(match.group(2), match.group(2))
        if not match or unit not in _UNITS or int(match.group(1)) == 0:
            raise PolicyError(setting, f"{value!r} is not a period like '7 days', '12 hours' or '1 month'")
        count = int(match.group(1))
        return cls(f"{count} {unit}{'s' if count > 1 else ''}", count * _UNITS[unit])

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class PolicySettings:
    """Build with `PolicySettings.build(...)`, which fills defaults and checks for overlaps."""

    retention: dict[str, Period]
    compress_after: Period
    refresh_window: Period
    refresh_lag: Period
    refresh_every: Period

    @classmethod
    def build(
        cls,
        retention: list[str] | None = None,
        compress_after: str | None = None,
        refresh_window: str | None = None,
        refresh_lag: str | None = None,
        refresh_every: str | None = None,
    ) -> PolicySettings:
        """From `table=period` retention entries and period texts; None falls back to the
        FLEET_* environment variables, then the defaults. Raises PolicyError."""
        env = os.environ.get
        periods = {
            "compress_after": compress_after or env("FLEET_COMPRESS_AFTER") or "2 days",
            "refresh_window": refresh_window or env("FLEET_REFRESH_WINDOW") or "1 day",
            "refresh_lag": refresh_lag or env("FLEET_REFRESH_LAG") or "1 hour",
            "refresh_every": refresh_every or env("FLEET_REFRESH_EVERY") or "30 minutes",
        }
        entries = retention if retention is not None else _split_env(env("FLEET_RETENTION", ""))
        settings = cls(
            retention={**_parse_retention(DEFAULT_RETENTION.items()), **_parse_retention(map(_split_entry, entries))},
            **{name: Period.parse(text, name) for name, text in periods.items()},
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Reject settings whose policies would overlap or never take effect."""
        refresh, compress = self.refresh_window.length, self.compress_after.length
        if refresh - self.refresh_lag.length < 2 * _UNITS["hour"]:
            raise PolicyError("refresh_window", "must exceed refresh_lag by two hourly buckets at least")
        if compress <= refresh:
            raise PolicyError("compress_after", f"must be longer than refresh_window ({self.refresh_window})")
        for table in HYPERTABLES:
            kept = self.retention[table]
            if kept.length <= compress:
                raise PolicyError(
                    f"retention.{table}", f"{kept} must be longer than compress_after ({self.compress_after})"
                )
        if self.retention["rollups"].length <= Period.parse(DAILY_REFRESH_WINDOW, "daily").length:
            raise PolicyError(
                "retention.rollups", f"must be longer than the daily refresh window {DAILY_REFRESH_WINDOW}"
            )


def _split_env(value: str) -> list[str]:
    return [entry for entry in (part.strip() for part in value.split(",")) if entry]


def _split_entry(entry: str) -> tuple[str, str]:
    table, sep, period = entry.partition("=")
    if not sep:
        raise PolicyError("retention", f"{entry!r} is not of the form table=period")
    return table.strip(), period.strip()


def _parse_retention(entries) -> dict[str, Period]:
    parsed = {}
    for table, period in entries:
        if table not in RETENTION_TABLES:
            raise PolicyError("retention", f"unknown table {table!r} (known: {', '.join(RETENTION_TABLES)})")
        parsed[table] = Period.parse(period, f"retention.{table}")
    return parsed


def apply_timescale_policies(conn: psycopg.Connection, settings: PolicySettings) -> list[str]:
    """Replace every TimescaleDB policy with the one the settings ask for (idempotent)."""
    applied = []
    for table in HYPERTABLES:
        conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", (table,))
        conn.execute(
            "SELECT add_retention_policy(%s, drop_after => %s::interval)", (table, settings.retention[table].text)
        )
        conn.execute("SELECT remove_compression_policy(%s, if_exists => true)", (table,))
        conn.execute(
            "SELECT add_compression_policy(%s, compress_after => %s::interval)", (table, settings.compress_after.text)
        )
        applied += [f"retention {table} {settings.retention[table]}", f"compression {table} {settings.compress_after}"]
    windows = {"readings_1h": settings.refresh_window.text, "readings_1d": DAILY_REFRESH_WINDOW}
    for rollup, start in windows.items():
        conn.execute("SELECT remove_continuous_aggregate_policy(%s, if_exists => true)", (rollup,))
        conn.execute(
            "SELECT add_continuous_aggregate_policy(%s, start_offset => %s::interval, end_offset => %s::interval,"
            " schedule_interval => %s::interval)",
            (rollup, start, settings.refresh_lag.text, settings.refresh_every.text),
        )
        conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", (rollup,))
        conn.execute(
            "SELECT add_retention_policy(%s, drop_after => %s::interval)", (rollup, settings.retention["rollups"].text)
        )
        applied += [
            f"refresh {rollup} {start}..{settings.refresh_lag}",
            f"retention {rollup} {settings.retention['rollups']}",
        ]
    return applied


def prune(conn: psycopg.Connection, settings: PolicySettings, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Delete rows past retention from the tables no TimescaleDB policy covers; rows deleted per table."""
    deleted = {}
    for table, column in RETENTION_TABLES.items():
        if table == "rollups" or table in skip:
            continue
        cursor = conn.execute(
            sql.SQL("DELETE FROM {} WHERE {} < now() - %s::interval").format(
                sql.Identifier(table), sql.Identifier(column)
            ),
            (settings.retention[table].text,),
        )
        deleted[table] = cursor.rowcount
    return deleted
