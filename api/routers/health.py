"""Liveness, readiness (database reachable, migrations current) and Prometheus metrics."""

from __future__ import annotations

import logging

import psycopg
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.models import Health, Readiness
from storage.migrate import expected_versions

router = APIRouter(tags=["operations"])  # always open: probes send no key
metrics_router = APIRouter(tags=["operations"])  # open unless API_METRICS_AUTH (api.app)
log = logging.getLogger("api.health")


@router.get("/health", response_model=Health, summary="Liveness: the process serves requests")
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Database unreachable or migrations pending"}},
    summary="Readiness: database reachable and every migration applied",
)
async def ready(request: Request):
    try:
        async with request.app.state.pool.connection(timeout=2) as conn:
            rows = await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()
    except (psycopg.Error, OSError, TimeoutError) as exc:  # PoolTimeout is a psycopg.Error
        log.warning("not ready", extra={"error": str(exc)})
        body = Readiness(status="not_ready", database=False, pending_migrations=[], detail=type(exc).__name__)
        return JSONResponse(body.model_dump(), status_code=503)
    pending = sorted(set(expected_versions()) - {row["version"] for row in rows})
    body = Readiness(status="not_ready" if pending else "ready", database=True, pending_migrations=pending)
    return JSONResponse(body.model_dump(), status_code=503 if pending else 200)


@metrics_router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
