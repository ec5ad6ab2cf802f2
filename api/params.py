"""Shared query parameters: identifiers, time ranges with limits, page sizes and opaque cursors."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Path, Query
from pydantic import AwareDatetime

from api.errors import invalid

ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"
MAX_PAGE = 500

SourceId = Annotated[str, Path(pattern=ID_PATTERN, description="Vehicle or device id.")]
OptionalId = Annotated[str | None, Query(pattern=ID_PATTERN)]
Since = Annotated[AwareDatetime | None, Query(description="Start (inclusive), RFC 3339 with a time zone.")]
Until = Annotated[AwareDatetime | None, Query(description="End (exclusive), RFC 3339 with a time zone; default now.")]
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
        if any(isinstance(v, datetime) and v.tzinfo is None for v in decoded):
            raise ValueError("naive time")
        return decoded
    except (ValueError, TypeError, UnicodeDecodeError):
        raise invalid("cursor", "cursor is not one this API issued (use next_cursor as returned)") from None
