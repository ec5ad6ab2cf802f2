"""Window sizes by their API names, and the trip windows the jobs write by default.

The jobs (`--trip-windows`, the flink-job chart's `tripWindows`) may write trip metrics only in
these sizes, and the API's `window=` takes exactly these names: a name is answered from the
largest written size that divides it (api.routers.insights), so with the default 1 and 5 minutes
every name has rows.
"""

from __future__ import annotations

WINDOWS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}
"""API name -> seconds."""
TRIP_WINDOWS_S: tuple[int, ...] = (60, 300)
"""The trip windows the jobs write unless told otherwise: 1 minute, and 5 minutes beside it."""


def allowed() -> str:
    return ", ".join(f"{seconds} ({name})" for name, seconds in WINDOWS.items())


def parse_windows(text: str) -> tuple[int, ...]:
    """Comma-separated seconds, each one of WINDOWS; ValueError naming the bad part and what is allowed."""
    parts = [part.strip() for part in str(text).split(",") if part.strip()]
    if not parts:
        raise ValueError(f"no window given in {text!r}; allowed seconds: {allowed()}")
    sizes = []
    for part in parts:
        if not part.isdigit() or int(part) not in WINDOWS.values():
            raise ValueError(f"window {part!r} is not one of the allowed seconds: {allowed()}")
        sizes.append(int(part))
    return tuple(sorted(set(sizes)))


def window_name(seconds: int) -> str:
    return {size: name for name, size in WINDOWS.items()}[seconds]
