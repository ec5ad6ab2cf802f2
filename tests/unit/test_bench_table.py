"""The `make bench` results table: every figure, baseline and ratio gets a row, and a component
carried over from an earlier run says when it was measured."""

from __future__ import annotations

import json

from tests.bench import run_all

HOST = {
    "cpu": "x",
    "cores": 2,
    "memory_gib": 24,
    "os": "linux",
    "python": "3.11",
    "measured_at": "2026-12-02T10:00:00Z",
}


def test_baselines_and_ratios_named_on_their_own_get_rows():
    result = {
        "component": "jobs",
        "figures": {"full_events_per_s": 18413},
        "baseline": {"bare_events_per_s": 227989},
        "ratios": {"full_vs_bare": 0.081},
        "targets": {"full_vs_bare": ">= 0.5"},
        "met": False,
    }
    rows = run_all.markdown([result], HOST).splitlines()
    assert "| jobs | full_events_per_s | 18,413 |  |  |  |  |" in rows  # no target: no verdict
    assert "| jobs | bare_events_per_s |  | 227,989 |  |  |  |" in rows
    assert "| jobs | full_vs_bare |  |  | 0.081 | >= 0.5 | no |" in rows


def test_each_target_gets_its_own_verdict_where_the_benchmark_gives_one():
    result = {
        "component": "e2e",
        "figures": {"events_per_s": 15000, "p99_s": 2.1},
        "targets": {"events_per_s": ">= 20,000", "p99_s": "< 3 s"},
        "met_by": {"events_per_s": False, "p99_s": True},
        "met": False,
    }
    rows = run_all.markdown([result], HOST).splitlines()
    assert "| e2e | events_per_s | 15,000 |  |  | >= 20,000 | no |" in rows
    assert "| e2e | p99_s | 2.1 |  |  | < 3 s | yes |" in rows


def test_only_keeps_the_other_components_last_results_dated(tmp_path, monkeypatch):
    monkeypatch.setattr(run_all, "RESULTS_DIR", tmp_path)
    (tmp_path / "api.json").write_text(
        json.dumps(
            {"component": "api", "figures": {"p99_ms": 40.5}, "met": True, "measured_at": "2026-12-01T12:00:00Z"}
        )
    )
    previous = run_all._previous("api")
    assert previous["carried_over"] and run_all._previous("operator") is None
    assert "| api (2026-12-01) | p99_ms | 40.5 |" in run_all.markdown([previous], HOST)


def test_numbers_read_as_numbers_and_flags_as_words():
    result = {"component": "e2e", "figures": {"rate": 19996.4, "p99_s": 3.961, "sustained": False}, "met": False}
    rows = run_all.markdown([result], HOST).splitlines()
    assert "| e2e | rate | 19,996 |  |  |  |  |" in rows
    assert "| e2e | p99_s | 3.96 |  |  |  |  |" in rows
    assert "| e2e | sustained | no |  |  |  |  |" in rows


def test_runs_with_other_settings_get_rows_of_their_own(tmp_path, monkeypatch):
    monkeypatch.setattr(run_all, "RESULTS_DIR", tmp_path)
    (tmp_path / "e2e-10000.json").write_text(
        json.dumps({"component": "e2e", "figures": {"p99_s": 2.18}, "met": False, "measured_at": "2026-12-01T17:07Z"})
    )
    (variant,) = run_all._variants("e2e")
    assert "| e2e-10000 (2026-12-01) | p99_s | 2.18 |" in run_all.markdown([variant], HOST)
    assert run_all._variants("jobs") == []
