"""The live summary of `make run` on a real database: counts from the loader's ledger, rates as
deltas between two calls. The ledger rows are the loader's own (storage.loader on a real broker
in tests/integration/test_loader.py); here they are written directly to pin the arithmetic."""

from __future__ import annotations

import time
from types import SimpleNamespace

import psycopg
import pytest

from contracts.topics import STORE_TOPICS
from devstack.summary import Summary
from storage.migrate import migrate_up
from tests.support.db_roles import role_url

pytestmark = pytest.mark.integration


def _loaded(url: str, table: str, partition: int, records: int) -> None:
    """What the loader records after a batch: records added to the partition's count."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO loader_offsets (group_id, topic, partition, next_offset, records) VALUES ('g', %s, %s, 0, %s)"
            " ON CONFLICT (group_id, topic, partition) DO UPDATE SET records = loader_offsets.records + excluded.records",
            (STORE_TOPICS[table], partition, records),
        )


def test_summary_counts_what_the_loader_merged_and_rates_the_difference(pg_url):
    migrate_up(pg_url)
    stats = SimpleNamespace(sent=100)
    summary = Summary(role_url(pg_url, "grafana"), stats)  # as `make run` reads: the read-only role
    _loaded(pg_url, "readings", 0, 300)
    _loaded(pg_url, "aggregates", 0, 7)
    _, first = summary.line("running")
    assert (first["generated"], first["readings"], first["records_loaded"]) == (100, 300, 307)
    assert first["jobs_events_read"] is None and first["jobs_events_read_per_s"] is None  # no REST URL given

    stats.sent = 200
    _loaded(pg_url, "readings", 1, 600)
    time.sleep(0.2)
    text, second = summary.line("running")
    counts = ("readings", "records_loaded", "alarms", "open_alarms", "dead_letters")
    assert tuple(second[name] for name in counts) == (900, 907, 0, 0, 0)
    assert second["events_in_per_s"] > 0 and second["readings_per_s"] > second["events_in_per_s"]  # 600 vs 100
    assert "jobs read -" in text and "alarms 0 (0 open)" in text and "jobs running" in text
