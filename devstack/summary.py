"""The live summary of `make run`: what went in, what came out, what is open, how far behind."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

QUERY = """
SELECT (SELECT count(*) FROM readings),
       (SELECT count(*) FROM alarms WHERE status <> 'cleared'),
       (SELECT count(*) FROM dead_letters),
       (SELECT count(*) FROM job_output_files),
       (SELECT extract(epoch FROM now() - max(last_seen))::float FROM source_state)
"""


@dataclass
class Snapshot:
    at: float
    generated: int
    readings: int
    open_alarms: int
    dead_letters: int
    loaded_files: int
    lag_s: float | None


class Summary:
    """Reads the database once per call; rates are deltas against the previous call."""

    def __init__(self, database_url: str, stats):
        self.database_url = database_url
        self.stats = stats
        self.previous: Snapshot | None = None

    def snapshot(self) -> Snapshot:
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            readings, open_alarms, dead, files, lag = conn.execute(QUERY).fetchone()
        return Snapshot(time.monotonic(), self.stats.sent, readings, open_alarms, dead, files, lag)

    def line(self, jobs_state: str) -> tuple[str, dict]:
        now = self.snapshot()
        before, self.previous = self.previous, now
        dt = (now.at - before.at) if before else 0.0
        in_rate = (now.generated - before.generated) / dt if dt else 0.0
        out_rate = (now.readings - before.readings) / dt if dt else 0.0
        lag = f"{now.lag_s:.1f} s" if now.lag_s is not None else "-"
        text = (
            f"in {in_rate:,.0f} ev/s ({now.generated:,} total) | processed {out_rate:,.0f} readings/s "
            f"({now.readings:,}) | open alarms {now.open_alarms} | dead letters {now.dead_letters} "
            f"| lag {lag} | jobs {jobs_state}"
        )
        fields = {
            "events_in_per_s": round(in_rate, 1),
            "generated": now.generated,
            "readings_per_s": round(out_rate, 1),
            "readings": now.readings,
            "open_alarms": now.open_alarms,
            "dead_letters": now.dead_letters,
            "loaded_files": now.loaded_files,
            "lag_s": now.lag_s,
            "jobs": jobs_state,
        }
        return text, fields
