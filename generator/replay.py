"""Replay of a recorded trip file (CSV, JSON lines or a JSON array) as `trip` events, at recorded
or accelerated speed. Every row is validated against the contract before anything is sent: a bad
file is reported row by row and nothing is half-sent.

Columns are the trip's contract fields, under their own names or an alias (ALIASES: seed 004's
records say `duration` and `distance`); `--map COLUMN=FIELD` adds or overrides one. A row without
`source_id` (seed 004 names no vehicle) gets the replay's default source id."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from contracts.events import Trip
from contracts.parsing import ContractError, parse_event_dict
from contracts.topics import topic_for

FIELDS = (
    "event_id",
    "source_id",
    "event_time",
    "fleet_id",
    "trip_id",
    "region_id",
    "fare",
    "duration_s",
    "distance_km",
)
"""The trip fields a file may give (contracts.events.Trip without `schema` and `version`)."""
REQUIRED = ("event_time", "trip_id", "region_id", "fare", "duration_s", "distance_km")
"""What every row must give; event_id defaults to replay-<trip_id>, source_id and fleet_id to the replay's."""
ALIASES = {"duration": "duration_s", "distance": "distance_km"}
"""Column -> field, for files that name a field otherwise (seed 004: duration in seconds, distance in km)."""
DEFAULT_SOURCE_ID = "trip-replay"
"""source_id of rows that name none (the `--source-id` default)."""
MAX_REPORTED_ERRORS = 20
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")

assert set(FIELDS) == set(Trip.model_fields) - {"schema_", "version"}, "replay.FIELDS drifted from the Trip contract"


class ReplayError(ValueError):
    """The file cannot be replayed; the message lists every bad row (up to 20)."""


class ColumnMap:
    """Which trip field each column of a file gives: the field's own name, an alias (ALIASES) or
    a `--map COLUMN=FIELD` override (which wins)."""

    def __init__(self, overrides: dict[str, str] | None = None):
        bad = {column: field for column, field in (overrides or {}).items() if field not in FIELDS}
        if bad:
            column, field = next(iter(bad.items()))
            raise ReplayError(f"--map {column}={field}: {field!r} is no trip field; fields: {', '.join(FIELDS)}")
        self.mapping = {**ALIASES, **(overrides or {})}

    def allowed(self) -> str:
        aliases = ", ".join(f"{column} (= {field})" for column, field in sorted(self.mapping.items()))
        return f"{', '.join(FIELDS)}; aliases {aliases}; more with --map COLUMN=FIELD"

    def fields(self, columns) -> dict[str, str]:
        """column -> field for a row's (or header's) columns; ContractError naming an unknown or
        doubled column, or a required field no column gives."""
        found: dict[str, str] = {}
        for column in columns:
            field = self.mapping.get(column, column if column in FIELDS else None)
            if field is None:
                raise ContractError(f"unknown column {column!r}; allowed: {self.allowed()}", field=column)
            if field in found.values():
                other = next(name for name, given in found.items() if given == field)
                raise ContractError(f"columns {other!r} and {column!r} both give {field}", field=column)
            found[column] = field
        missing = [field for field in REQUIRED if field not in found.values()]
        if missing:
            aliases = [column for column, field in self.mapping.items() if field == missing[0]]
            also = f" (or {', '.join(repr(a) for a in aliases)})" if aliases else ""
            raise ContractError(f"missing column {missing[0]!r}{also}; needs {', '.join(REQUIRED)}", field=missing[0])
        return found


class TripReplay:
    def __init__(
        self,
        path: Path,
        speedup: float = 1.0,
        start: datetime | None = None,
        fleet_id: str = "default",
        *,
        source_id: str = DEFAULT_SOURCE_ID,
        columns: ColumnMap | None = None,
    ):
        if speedup <= 0:
            raise ValueError(f"speedup must be > 0, got {speedup}")
        self.path = Path(path)
        self.speedup = speedup
        self.topic = topic_for(Trip.schema_name)
        self.per_topic: Counter[str] = Counter()
        defaults = {"fleet_id": fleet_id, "source_id": source_id}
        events = _load(self.path, columns or ColumnMap(), defaults)
        self.events = sorted(events, key=lambda event: event.event_time)
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


def _load(path: Path, columns: ColumnMap, defaults: dict[str, str]) -> list[Trip]:
    if not path.is_file():
        raise ReplayError(f"{path}: no such file")
    events, errors = [], []
    for where, row in _rows(path, columns):
        try:
            events.append(_trip(row, where, columns, defaults))
        except ContractError as exc:
            errors.append(f"{path.name}:{where}: {exc}")
    if errors:
        shown = "\n  ".join(errors[:MAX_REPORTED_ERRORS])
        more = f"\n  ... and {len(errors) - MAX_REPORTED_ERRORS} more" if len(errors) > MAX_REPORTED_ERRORS else ""
        raise ReplayError(f"{len(errors)} bad row(s) in {path}, nothing was sent:\n  {shown}{more}")
    if not events:
        raise ReplayError(f"{path}: no trips to replay")
    return events


def _rows(path: Path, columns: ColumnMap) -> list[tuple[str, dict]]:
    """(where, row): CSV rows (their line), JSON lines (their line) or a JSON array's items."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            try:
                header = columns.fields(reader.fieldnames or [])  # the header once, before any row
            except ContractError as exc:
                raise ReplayError(f"{path}: CSV header: {exc.reason}") from None
            times = [column for column, field in header.items() if field == "event_time"]
            return [(str(number), _epoch_numbers(row, times)) for number, row in enumerate(reader, start=2)]
    if suffix in (".jsonl", ".ndjson", ".json"):
        text = path.read_text(encoding="utf-8")
        if suffix == ".json" and text.lstrip().startswith("["):
            try:
                items = json.loads(text)
            except ValueError as exc:
                raise ReplayError(f"{path.name}: not valid JSON: {exc}") from None
            return [(f"item {number}", item) for number, item in enumerate(items, start=1)]
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((str(number), json.loads(line)))
            except ValueError as exc:
                raise ReplayError(f"{path.name}:{number}: not valid JSON: {exc}") from None
        return rows
    raise ReplayError(f"{path}: unsupported trip file type {path.suffix!r} (use .csv, .jsonl or .json)")


def _epoch_numbers(row: dict, columns: list[str]) -> dict:
    """CSV has no types: a number in the event time column is an epoch number (seconds or
    milliseconds, contracts.events.EPOCH_MILLIS_FROM), not text; the contract converts the rest."""
    for column in columns:
        text = (row.get(column) or "").strip()
        if _NUMBER.fullmatch(text):
            row[column] = int(text) if text.lstrip("-").isdigit() else float(text)
    return row


def _trip(row: object, where: str, columns: ColumnMap, defaults: dict[str, str]) -> Trip:
    if not isinstance(row, dict):
        raise ContractError("row must be a JSON object")
    present = {column: value for column, value in row.items() if value not in ("", None)}
    fields = columns.fields(present)
    document = {fields[column]: value for column, value in present.items()}
    for field, value in defaults.items():
        document.setdefault(field, value)
    document.setdefault("event_id", f"replay-{document['trip_id']}")
    document["schema"] = Trip.schema_name
    return parse_event_dict(document)
