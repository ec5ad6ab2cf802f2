"""`make bench`: run every component benchmark, then write one results table (markdown + JSON)
with a description of the machine they ran on.

    python -m tests.bench.run_all [--quick] [--only generator,jobs]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from tests.bench import RESULTS_DIR, formatted, perf_table, utc_stamp

BENCH_DIR = Path(__file__).parent


def available() -> list[str]:
    return sorted(path.stem.removeprefix("bench_") for path in BENCH_DIR.glob("bench_*.py"))


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        memory_kb = 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "measured_at": utc_stamp(),
    }


def run_one(name: str, quick: bool) -> dict:
    module = importlib.import_module(f"tests.bench.bench_{name}")
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        result = module.run(quick=quick)
    except Exception as exc:
        traceback.print_exc()
        result = {"component": name, "error": f"{type(exc).__name__}: {exc}", "met": False}
    result["seconds"] = round(time.monotonic() - started, 1)
    result["measured_at"] = utc_stamp()
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def markdown(results: list[dict], host: dict) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {host['cpu']}, {host['cores']} cores, {host['memory_gib']} GiB, {host['os']}, "
        f"Python {host['python']}; measured {host['measured_at']} (a dated component is an earlier run's).",
        "",
        "| component | figure | value | baseline | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        name = result["component"]
        if result.get("carried_over"):
            name += f" ({result['measured_at'][:10]})"
        if "error" in result:
            lines.append(f"| {name} | error | {result['error']} | | | | no |")
            continue
        figures, baseline, ratios = result.get("figures", {}), result.get("baseline", {}), result.get("ratios", {})
        targets, met_by = result.get("targets", {}), result.get("met_by", {})
        # Figures first, then the baselines and ratios that are named on their own.
        for figure in [*figures, *(key for key in (*baseline, *ratios) if key not in figures)]:
            cells = [figures.get(figure, ""), baseline.get(figure, ""), ratios.get(figure, "")]
            met = _met(met_by.get(figure, result.get("met"))) if figure in targets else ""
            lines.append(
                f"| {name} | {figure} | {' | '.join(map(formatted, cells))} | {targets.get(figure, '')} | {met} |"
            )
    return "\n".join(lines) + "\n"


def _met(met: bool | None) -> str:
    """A target's verdict: its own (`met_by`) where the benchmark gives one, else the component's."""
    return "yes" if met else "no"


def _previous(name: str) -> dict | None:
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    result.setdefault("measured_at", "earlier")
    return {**result, "carried_over": True}


def _variants(name: str) -> list[dict]:
    """Results of the same benchmark run with other settings (`results/<name>-<setting>.json`, e.g.
    e2e-10000.json from `bench_e2e --rate 10000`), shown under their own names."""
    found = []
    for path in sorted(RESULTS_DIR.glob(f"{name}-*.json"), key=lambda p: p.stem):
        result = json.loads(path.read_text())
        found.append({**result, "component": path.stem, "carried_over": True})
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(available())}")
    parser.add_argument("--render", action="store_true", help="run nothing: rebuild the table from results/*.json")
    args = parser.parse_args(argv)
    names = available()
    if args.render:
        names = []
    elif args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(names)}")
        names = wanted
    RESULTS_DIR.mkdir(exist_ok=True)
    host = machine()
    fresh = {name: run_one(name, args.quick) for name in names}
    # With --only, the table keeps every other component's last committed result, dated.
    results = [fresh[name] if name in fresh else _previous(name) for name in available()]
    results = [result for result in results if result]
    results += [variant for name in available() for variant in _variants(name)]
    (RESULTS_DIR / "results.json").write_text(json.dumps({"machine": host, "results": results}, indent=2) + "\n")
    table = markdown(results, host)
    (RESULTS_DIR / "README.md").write_text(table)
    print(table)
    perf_table.write()  # docs/performance.md's generated table follows the results
    return 0 if all(result.get("met") for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
