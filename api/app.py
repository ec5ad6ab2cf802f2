"""Application factory: routers, the connection pool's lifespan, CORS, request ids and metrics."""

from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.auth import require_key
from api.db import create_pool
from api.observability import Metrics, RequestContextMiddleware
from api.routers import alarms, fleet, health, insights, trends
from api.settings import Settings

log = logging.getLogger("api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.pool = create_pool(settings)
        # Do not block start-up on the database: /ready reports it until it answers.
        await app.state.pool.open(wait=False)
        # Everything built so far (modules, the app, its models) lives as long as the process:
        # frozen, full collections stop scanning it. Unfrozen, one took ~100 ms here and stalled
        # every request in flight (the fleet-status p99 in tests/bench/bench_api.py).
        gc.freeze()
        if not settings.api_keys:
            log.warning("no API keys configured: every mutating request will be refused")
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(
        title="fleet-monitor API",
        version="0.1.0",
        description="Fleet status, trends, alarms, heatmaps and KPIs over TimescaleDB.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.include_router(health.router)
    # Open reads carry no security dependencies at all: the OpenAPI document then says they are
    # open, and a fleet page skips resolving them (0.3-0.5 ms of its ~3.5 ms in-process).
    readers = [Depends(require_key)] if settings.read_auth else []
    for module in (fleet, trends, alarms, insights):
        app.include_router(module.router, dependencies=readers)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "X-Request-ID", "Content-Type"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    return app
