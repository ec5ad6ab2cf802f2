"""The API key check, one FastAPI dependency (`require_key`) that every protected operation
declares first, so a request without a valid key is refused before any database work. It
answers the caller's ApiKey: what a key may see or do (its fleets, its role) is decided from it.
`require_role` adds the role check (403 naming the role needed); `Scope` is the fleets a read may
see, for every query's fleet filter (api.scope).

Reads need a key unless API_READ_AUTH=false (api.app then leaves it off the read routers);
mutations always do. Both schemes show in the OpenAPI document, on exactly the operations that
need them, with their 401/403 answers (AUTH_RESPONSES).

They are `async def` although they never wait: FastAPI runs plain `def` dependencies in a thread
pool, and those hops were the largest cost of a cheap read (measured in tests/bench/bench_api.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.security import ApiKey, Role, identify

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}

AUTH_RESPONSES: dict[int | str, dict] = {
    401: {"description": "API key missing or invalid"},
    403: {"description": "The API key may not do this"},
}


async def _caller(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> ApiKey | None:
    token = bearer.credentials if bearer else header
    if not token:
        return None
    key = identify(token, request.app.state.settings.api_keys)
    if key is None:
        raise HTTPException(401, "invalid API key", headers=_CHALLENGE)
    return key


async def require_key(request: Request, caller: Annotated[ApiKey | None, Depends(_caller)]) -> ApiKey:
    if caller is None:
        raise HTTPException(401, "an API key is required (Authorization: Bearer or X-API-Key)", headers=_CHALLENGE)
    # For api.scope, which must not declare the security schemes itself: an open read (API_READ_AUTH
    # =false) then carries none in the OpenAPI document and resolves none per request.
    request.state.api_key = caller
    return caller


def require_role(role: Role):
    """A dependency: the caller's key, refused with 403 unless its role includes `role`."""
    allowed = " or ".join(r.value for r in Role if r.includes(role))

    async def check(caller: Annotated[ApiKey, Depends(require_key)]) -> ApiKey:
        if not caller.may(role):
            raise HTTPException(403, f"this needs an API key with role {allowed}; this key's role is {caller.role}")
        return caller

    return check


KEY_REQUIRED = [Depends(require_key)]  # `dependencies=` of a protected router or operation
Caller = Annotated[ApiKey, Depends(require_key)]
_operate = require_role(Role.OPERATE)
OPERATE_REQUIRED = [Depends(_operate)]  # first in `dependencies=`: checked before a connection is borrowed
Operator = Annotated[ApiKey, Depends(_operate)]
