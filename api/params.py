"""Shared query parameters: identifiers, time ranges with limits, page sizes and opaque cursors."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from api.errors import invalid

ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"
MAX_PAGE = 500

SourceId = Annotated[str, Path(pattern=ID_PATTERN, description="Vehicle or device id.")]
OptionalId = Annotated[str | None, Query(pattern=ID_PATTERN)]
# Times outside this span are refused with a 422 naming the parameter: near datetime's limits the
# defaults (until - span) overflowed into a 500, and no telemetry lies outside it anyway.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_RFC3339_START = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
_SPAN = f"from {EARLIEST:%Y-%m-%dT%H:%M:%SZ} up to (not including) {LATEST:%Y-%m-%dT%H:%M:%SZ}"


def _rfc3339(value):
    # Pydantic also reads a number as Unix time (until=0.5 meant 1970-01-01T00:00:00.5Z): the
    # parameters are documented as RFC 3339 date-times, so only that text is accepted.
    if not isinstance(value, str) or not _RFC3339_START.match(value):
        raise ValueError("time must be RFC 3339 with a time zone, e.g. 2025-03-03T00:00:00Z")
    return value


def _in_span(value: datetime | None) -> datetime | None:
    if value is not None and not EARLIEST <= value < LATEST:
        raise ValueError(f"time must be {_SPAN}")
    return value


Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_in_span)]
Since = Annotated[Time | None, Query(description=f"Start (inclusive), RFC 3339 with a time zone, {_SPAN}.")]
Until = Annotated[Time | None, Query(description=f"End (exclusive), RFC 3339 with a time zone, {_SPAN}; default now.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, at most {MAX_PAGE}.")]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page.")]


def time_range(since: datetime | None, until: datetime | None, default: timedelta, limit: timedelta):
    """(since, until) with defaults; 422 naming the parameter when reversed or too long."""
    until = until or datetime.now(UTC)
    since = since or until - default
    if since >= until:
        raise invalid("since", "since must be before until")
    if until - since > limit:
        raise invalid("since", f"time range is longer than the {_days(limit)} allowed here")
    return since, until


def check_order(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise invalid("since", "since must be before until")


def _days(span: timedelta) -> str:
    return f"{span.days} days" if span.days else f"{span.total_seconds() / 3600:g} hours"


def encode_cursor(*values) -> str:
    text = json.dumps([value.isoformat() if isinstance(value, datetime) else value for value in values])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, shape: tuple[type, ...]) -> list:
    """The values encode_cursor packed, typed as `shape`; 422 on anything else."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(shape):
            raise ValueError("wrong shape")
        decoded = [
            datetime.fromisoformat(v) if kind is datetime else kind(v) for v, kind in zip(values, shape, strict=True)
        ]
        for value in decoded:
            if isinstance(value, datetime) and value.tzinfo is None:
                raise ValueError("naive time")
            if isinstance(value, datetime):
                _in_span(value)
            if isinstance(value, str) and "\x00" in value:
                raise ValueError("NUL character")  # PostgreSQL text cannot hold one: a DataError (500)
        return decoded
    except (ValueError, TypeError, UnicodeDecodeError):
        raise invalid("cursor", "cursor is not one this API issued (use next_cursor as returned)") from None
