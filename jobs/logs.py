"""Structured (JSON) log lines for the job driver and the loader, in the one shared format."""

from __future__ import annotations

from contracts import jsonlog


def setup_logging(level: str = "INFO") -> None:
    jsonlog.configure(level)
