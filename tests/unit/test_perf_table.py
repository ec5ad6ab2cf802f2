"""docs/performance.md's current figures are generated from tests/bench/results/*.json
(tests.bench.perf_table): the committed page must be what the committed results generate."""

from __future__ import annotations

import json
import shutil

from tests.bench import perf_table


def test_committed_page_matches_the_committed_results():
    assert perf_table.committed() == perf_table.render(), (
        "docs/performance.md differs from tests/bench/results/*.json: run python -m tests.bench.perf_table --write"
    )


def test_every_result_file_and_every_target_is_in_the_table():
    table = perf_table.render()
    for name, result in perf_table.load():
        assert f"[{name}](../tests/bench/results/{name}.json)" in table or "targets" not in result, name
        for figure in (*result.get("figures", {}), *result.get("targets", {})):
            assert f"| {figure} |" in table, (name, figure)


def test_a_new_result_changes_the_table(tmp_path):
    """The table follows the files: the real results copied, one figure changed, the table differs."""
    for path in perf_table.RESULTS_DIR.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    jobs = json.loads((tmp_path / "jobs.json").read_text())
    jobs["figures"]["full_events_per_s"] = 20001
    jobs["measured_at"] = "2027-01-01T00:00:00Z"
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    table = perf_table.render(tmp_path)
    assert table != perf_table.render()
    assert "| 2027-01-01 | full_events_per_s | 20,001 |" in table


def test_write_replaces_only_the_generated_block(tmp_path):
    page = tmp_path / "performance.md"
    page.write_text(f"# Performance\n\nbefore\n\n{perf_table.BEGIN}\nstale\n{perf_table.END}\n\nafter\n")
    assert perf_table.write(page)
    text = page.read_text()
    assert text.startswith("# Performance\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert perf_table.committed(page) == perf_table.render()
    assert not perf_table.write(page)  # a second write changes nothing
