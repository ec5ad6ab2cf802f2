"""Replay of a recorded trip file (CSV or JSON lines) as `trip` events, at recorded or
accelerated speed. Every row is validated against the contract before anything is sent: a bad
file is reported row by row and nothing is half-sent."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from contracts.events import Trip
from contracts.parsing import ContractError, parse_event_dict
from contracts.topics import topic_for

REQUIRED = ("source_id", "event_time", "trip_id", "region_id", "fare", "duration_s", "distance_km")
MAX_REPORTED_ERRORS = 20


class ReplayError(ValueError):
    """The file cannot be replayed; the message lists every bad row (up to 20)."""


class TripReplay:
    def __init__(self, path: Path, speedup: float = 1.0, start: datetime | None = None, fleet_id: str = "default"):
        if speedup <= 0:
            raise ValueError(f"speedup must be > 0, got {speedup}")
        self.path = Path(path)
        self.speedup = speedup
        self.topic = topic_for(Trip.schema_name)
        self.per_topic: Counter[str] = Counter()
        self.events = sorted(_load(self.path, fleet_id), key=lambda event: event.event_time)
        shift = (start - self.events[0].event_time) if (start and self.events) else timedelta(0)
        if shift:
            self.events = [event.model_copy(update={"event_time": event.event_time + shift}) for event in self.events]
        self._offsets = [(event.event_time - self.events[0].event_time).total_seconds() for event in self.events]
        self._position = 0

    def next_batch(self, size: int = 1000) -> list[tuple[str, str, str]]:
        chunk = self.events[self._position : self._position + size]
        self._position += len(chunk)
        self.per_topic[self.topic] += len(chunk)
        return [(self.topic, event.source_id, event.to_json()) for event in chunk]

    def due_s(self, index: int) -> float:
        return self._offsets[min(index, len(self._offsets) - 1)] / self.speedup if self._offsets else 0.0


def _load(path: Path, fleet_id: str) -> list[Trip]:
    if not path.is_file():
        raise ReplayError(f"{path}: no such file")
    rows = _rows(path)
    events, errors = [], []
    for line, row in rows:
        try:
            events.append(_trip(row, line, fleet_id))
        except ContractError as exc:
            errors.append(f"{path.name}:{line}: {exc}")
    if errors:
        shown = "\n  ".join(errors[:MAX_REPORTED_ERRORS])
        more = f"\n  ... and {len(errors) - MAX_REPORTED_ERRORS} more" if len(errors) > MAX_REPORTED_ERRORS else ""
        raise ReplayError(f"{len(errors)} bad row(s) in {path}, nothing was sent:\n  {shown}{more}")
    if not events:
        raise ReplayError(f"{path}: no trips to replay")
    return events


def _rows(path: Path) -> list[tuple[int, dict]]:
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [name for name in REQUIRED if name not in (reader.fieldnames or [])]
            if missing:
                raise ReplayError(
                    f"{path}: CSV header lacks column(s) {', '.join(missing)}; needs {', '.join(REQUIRED)}"
                )
            return [(number, row) for number, row in enumerate(reader, start=2)]
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        rows = []
        with path.open(encoding="utf-8") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    rows.append((number, json.loads(text)))
                except ValueError as exc:
                    raise ReplayError(f"{path.name}:{number}: not valid JSON: {exc}") from None
        return rows
    raise ReplayError(f"{path}: unsupported trip file type {path.suffix!r} (use .csv or .jsonl)")


def _trip(row: dict, line: int, fleet_id: str) -> Trip:
    if not isinstance(row, dict):
        raise ContractError("row must be a JSON object")
    document = {key: value for key, value in row.items() if value not in ("", None)}
    document.setdefault("event_id", f"replay-{document.get('trip_id', line)}")
    document.setdefault("fleet_id", fleet_id)
    document["schema"] = Trip.schema_name
    return parse_event_dict(document)
