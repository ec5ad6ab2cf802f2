"""422 errors in FastAPI's own shape, for checks that span parameters (ranges, cursors)."""

from __future__ import annotations

from fastapi import HTTPException


def invalid(field: str, message: str, where: str = "query") -> HTTPException:
    return HTTPException(
        status_code=422, detail=[{"type": "value_error", "loc": [where, field], "msg": message, "input": None}]
    )
