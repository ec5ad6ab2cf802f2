"""Component and end-to-end benchmarks (see README.md here)."""

import time
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"
"""Each benchmark's last result (`<name>.json`), the table of all (README.md, results.json)."""


def utc_stamp() -> str:
    """Now, as every result's `measured_at` records it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def formatted(value) -> str:
    """A measured figure as the result tables print it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.3g}"
    return f"{value:,}" if isinstance(value, int) else str(value)
