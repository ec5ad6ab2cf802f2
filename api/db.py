"""The async psycopg connection pool and the FastAPI dependency that lends a connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from api.settings import Settings


def create_pool(settings: Settings) -> AsyncConnectionPool:
    # Opened by the app's lifespan; rows come back as dicts so they map onto response models.
    return AsyncConnectionPool(
        settings.database_url,
        min_size=settings.pool_min,
        max_size=settings.pool_max,
        # UTC sessions: times PostgreSQL renders itself (api.routers.fleet) read like pydantic's.
        kwargs={"row_factory": dict_row, "autocommit": True, "options": "-c TimeZone=UTC"},
        # A connection is checked (a cheap round trip) before it is lent: after the database
        # restarts, pooled connections are dead and would each fail one request with a 500.
        check=AsyncConnectionPool.check_connection,
        # Short: with the database down a request answers 503 in seconds (api.observability)
        # instead of holding its client and a task for psycopg's default 30 s.
        timeout=settings.pool_timeout_s,
        open=False,
        name="api",
    )


async def connection(request: Request) -> AsyncIterator[AsyncConnection]:
    async with request.app.state.pool.connection() as conn:
        yield conn


Db = Annotated[AsyncConnection, Depends(connection)]
