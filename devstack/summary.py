"""The live summary of `make run`: what went in, what came out, what is open, how far behind."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from contracts.topics import STORE_TOPICS
from devstack.flink_rest import events_read

# Readings and loaded records from the loader's ledger (one row per topic partition), not
# count(*) over a table that grows by millions of rows an hour.
QUERY = """
SELECT (SELECT COALESCE(sum(records), 0)::bigint FROM loader_offsets WHERE topic = %(readings)s),
       (SELECT count(*) FROM alarms WHERE status <> 'cleared'),
       (SELECT count(*) FROM alarms),
       (SELECT count(*) FROM dead_letters),
       (SELECT COALESCE(sum(records), 0)::bigint FROM loader_offsets),
       (SELECT extract(epoch FROM now() - max(last_seen))::float FROM source_state)
"""


@dataclass
class Snapshot:
    at: float
    generated: int
    readings: int
    open_alarms: int
    alarms: int
    dead_letters: int
    loaded: int
    lag_s: float | None
    events_read: int | None


class Summary:
    """Reads the database and the jobs' REST API once per call; rates are deltas against the
    previous call."""

    def __init__(self, database_url: str, stats, jobs_rest_url: str | None = None):
        self.database_url = database_url
        self.stats = stats
        self.jobs_rest_url = jobs_rest_url
        self.previous: Snapshot | None = None

    def snapshot(self) -> Snapshot:
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            readings, open_alarms, alarms, dead, loaded, lag = conn.execute(
                QUERY, {"readings": STORE_TOPICS["readings"]}
            ).fetchone()
        read = events_read(self.jobs_rest_url) if self.jobs_rest_url else None
        return Snapshot(time.monotonic(), self.stats.sent, readings, open_alarms, alarms, dead, loaded, lag, read)

    def line(self, jobs_state: str) -> tuple[str, dict]:
        now = self.snapshot()
        before, self.previous = self.previous, now
        dt = (now.at - before.at) if before else 0.0
        in_rate = _rate(now.generated, before and before.generated, dt) or 0.0
        out_rate = _rate(now.readings, before and before.readings, dt) or 0.0
        read_rate = _rate(now.events_read, before and before.events_read, dt)
        read = f"{read_rate:,.0f} ev/s ({now.events_read:,})" if read_rate is not None else "-"
        lag = f"{now.lag_s:.1f} s" if now.lag_s is not None else "-"
        text = (
            f"in {in_rate:,.0f} ev/s ({now.generated:,} total) | jobs read {read} | {out_rate:,.0f} readings/s "
            f"({now.readings:,}) | alarms {now.alarms} ({now.open_alarms} open) | dead letters {now.dead_letters} "
            f"| lag {lag} | jobs {jobs_state}"
        )
        fields = {
            "events_in_per_s": round(in_rate, 1),
            "generated": now.generated,
            "jobs_events_read_per_s": round(read_rate, 1) if read_rate is not None else None,
            "jobs_events_read": now.events_read,
            "readings_per_s": round(out_rate, 1),
            "readings": now.readings,
            "open_alarms": now.open_alarms,
            "alarms": now.alarms,
            "dead_letters": now.dead_letters,
            "records_loaded": now.loaded,
            "lag_s": now.lag_s,
            "jobs": jobs_state,
        }
        return text, fields


def _rate(now: int | None, before: int | None, dt: float) -> float | None:
    if now is None or before is None or not dt:
        return None
    return (now - before) / dt
