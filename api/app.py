"""Application factory: routers, the connection pool's lifespan, CORS, request ids, metrics and
the key check. Open without a key: /health and /ready always; /metrics unless API_METRICS_AUTH;
/openapi.json, /docs and /redoc unless API_DOCS_AUTH; the data routes only with API_READ_AUTH=false."""

from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from api.auth import AUTH_RESPONSES, KEY_REQUIRED
from api.db import create_pool
from api.observability import ConcurrencyLimit, Metrics, RequestContextMiddleware, install_error_handlers
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
            refused = "every data request" if settings.read_auth else "every mutating request"
            log.warning(f"no API keys configured (API_KEYS): {refused} will be refused with 401")
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(
        title="fleet-monitor API",
        version="0.1.0",
        description="Fleet status, trends, alarms, heatmaps and KPIs over TimescaleDB.",
        lifespan=lifespan,
        **({"openapi_url": None, "docs_url": None, "redoc_url": None} if settings.docs_auth else {}),
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    install_error_handlers(app, settings.pool_timeout_s)
    app.include_router(health.router)
    app.include_router(health.metrics_router, **_protected(settings.metrics_auth))
    # Open reads carry no security dependencies at all: the OpenAPI document then says they are
    # open, and a fleet page skips resolving them (0.3-0.5 ms of its ~3.5 ms in-process).
    for module in (fleet, trends, alarms, insights):
        app.include_router(module.router, **_protected(settings.read_auth))
    if settings.docs_auth:
        _serve_protected_openapi(app)
    # Innermost of the three: a refused request still gets its request id, log line and metrics.
    app.add_middleware(ConcurrencyLimit, limit=settings.max_concurrency)
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


def _protected(needs_key: bool) -> dict:
    """include_router arguments: the key check (resolved before anything else) and its answers."""
    return {"dependencies": KEY_REQUIRED, "responses": AUTH_RESPONSES} if needs_key else {}


def _serve_protected_openapi(app: FastAPI) -> None:
    """The OpenAPI document for key holders only; the browser pages, which cannot send a key
    when they fetch it, are off."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=KEY_REQUIRED)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())
