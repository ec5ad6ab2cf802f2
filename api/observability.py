"""Request ids, structured access logs and Prometheus metrics for every request; every error
answer (4xx, 503, 500) carries the request id in its `X-Request-ID` header and its body."""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.prometheus_names import API_REQUEST_SECONDS, API_REQUESTS

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
access_log = logging.getLogger("api.access")
log = logging.getLogger("api")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestIdFilter(logging.Filter):
    """Adds the current request id to every log record emitted while serving a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(API_REQUESTS, "HTTP requests", ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            API_REQUEST_SECONDS,
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )


class RequestContextMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware): takes X-Request-ID when the client
    sends a sane one, else makes one; echoes it; logs and measures the request by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if _CLIENT_ID.match(supplied) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status, started_response = 500, False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here, not by Starlette's outermost handler: that one runs after the request
            # id is gone, so neither its 500 nor the traceback uvicorn logs would carry it.
            log.exception("unhandled error", extra={"method": scope["method"], "path": scope["path"]})
            if started_response:
                raise
            await error_response(500, "internal server error")(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(elapsed)
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)


def error_response(status: int, detail, headers: dict[str, str] | None = None) -> JSONResponse:
    """FastAPI's error shape ({"detail": ...}) plus the request id, as the header also says."""
    return JSONResponse({"detail": detail, "request_id": request_id_var.get()}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, pool_timeout_s: float) -> None:
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, exc.detail, exc.headers)

    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, jsonable_encoder(exc.errors()))

    async def database_unavailable(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        # A pool timeout (database down or every connection busy) or a connection lost mid-query.
        log.warning("database unavailable", extra={"error": type(exc).__name__, "detail": str(exc)[:200]})
        detail = (
            f"no database connection within {pool_timeout_s:g} s (API_POOL_TIMEOUT_S): the database is down or busy"
            if isinstance(exc, PoolTimeout)
            else "the database connection failed"
        )
        return error_response(503, f"{detail}; retry later", {"Retry-After": "5"})

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(psycopg.OperationalError, database_unavailable)


class ConcurrencyLimit:
    """At most `limit` requests in flight; the next ones get a 503 at once (a client retries, the
    process does not queue work and memory without bound). /health and /ready are exempt: a busy
    process is alive, and taking it out of the Service would only load the other replicas more."""

    EXEMPT = frozenset({"/health", "/ready"})

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit, self.in_flight = app, limit, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            detail = f"more than {self.limit} requests in flight (API_MAX_CONCURRENCY); retry shortly"
            await error_response(503, detail, {"Retry-After": "1"})(scope, receive, send)
            return
        self.in_flight += 1  # one event loop: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
