"""FastAPI security dependencies: a key is always required to change data, and for reads when
API_READ_AUTH is on (api.app then puts `require_key` on every read router). Both schemes show
in the OpenAPI document, on exactly the operations that need them.

They are `async def` although they never wait: FastAPI runs plain `def` dependencies in a thread
pool, and those hops were the largest cost of a cheap read (measured in tests/bench/bench_api.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.security import identify

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


async def _caller(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> str | None:
    token = bearer.credentials if bearer else header
    if not token:
        return None
    name = identify(token, request.app.state.settings.api_keys)
    if name is None:
        raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    return name


async def require_key(caller: Annotated[str | None, Depends(_caller)]) -> str:
    if caller is None:
        raise HTTPException(
            401, "an API key is required (Authorization: Bearer or X-API-Key)", headers={"WWW-Authenticate": "Bearer"}
        )
    return caller


Writer = Annotated[str, Depends(require_key)]
