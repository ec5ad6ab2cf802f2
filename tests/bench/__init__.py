"""Component and end-to-end benchmarks (see README.md here)."""

import time


def utc_stamp() -> str:
    """Now, as every result's `measured_at` records it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
