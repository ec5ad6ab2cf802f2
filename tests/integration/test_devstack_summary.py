"""The live summary of `make run` on a real database: counts from the tables the jobs write, rates
as deltas between two calls."""

from __future__ import annotations

import time
from types import SimpleNamespace

import psycopg
import pytest

from devstack.summary import Summary
from storage.migrate import migrate_up

pytestmark = pytest.mark.integration


def _loaded(url: str, path: str, target: str, rows: int) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO job_output_files (path, target, rows) VALUES (%s, %s, %s)", (path, target, rows))


def test_summary_counts_what_the_loader_merged_and_rates_the_difference(pg_url):
    migrate_up(pg_url)
    stats = SimpleNamespace(sent=100)
    summary = Summary(pg_url, stats)
    _loaded(pg_url, "out/readings/a", "readings", 300)
    _loaded(pg_url, "out/aggregates/a", "aggregates", 7)
    _, first = summary.line("running")
    assert (first["generated"], first["readings"], first["loaded_files"]) == (100, 300, 2)
    assert first["jobs_events_read"] is None and first["jobs_events_read_per_s"] is None  # no REST URL given

    stats.sent = 200
    _loaded(pg_url, "out/readings/b", "readings", 600)
    time.sleep(0.2)
    text, second = summary.line("running")
    assert (second["readings"], second["loaded_files"], second["open_alarms"], second["dead_letters"]) == (900, 3, 0, 0)
    assert second["events_in_per_s"] > 0 and second["readings_per_s"] > second["events_in_per_s"]  # 600 vs 100
    assert "jobs read -" in text and "jobs running" in text
