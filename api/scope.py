"""What a request may see: the fleets of its key, as a filter every data query takes.

Every query of api.routers adds `scope.where(column)` on the table that holds the fleet, or, for
tables without one (device_inactivity, the readings rollups), `scope.sources_where(column)`
through source_state; the fleets travel as the query parameter `scope_fleets`, never as text in
the SQL. A key for every fleet adds no condition at all (`true`): the plans of the unscoped
queries stay as they were measured (tests/bench/bench_api.py).

Open reads (API_READ_AUTH=false) see every fleet: that is the documented opt-out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from psycopg import sql

from api.security import ApiKey

PARAM = "scope_fleets"


@dataclass(frozen=True)
class Scope:
    fleets: list[str] | None  # None: every fleet

    @classmethod
    def of(cls, key: ApiKey | None) -> Scope:
        return cls(None if key is None else key.fleet_list)

    @property
    def params(self) -> dict:
        return {PARAM: self.fleets}

    def where(self, column: str) -> sql.Composable:
        """`column` (e.g. "fleet_id" or "s.fleet_id") is one of the key's fleets."""
        if self.fleets is None:
            return sql.SQL("true")
        return sql.SQL("{} = ANY(%({})s::text[])").format(sql.Identifier(*column.split(".")), sql.SQL(PARAM))

    def sources_where(self, column: str) -> sql.Composable:
        """The source in `column` belongs to one of the key's fleets (for tables without fleet_id)."""
        if self.fleets is None:
            return sql.SQL("true")
        return sql.SQL("{} IN (SELECT source_id FROM source_state WHERE fleet_id = ANY(%({})s::text[]))").format(
            sql.Identifier(*column.split(".")), sql.SQL(PARAM)
        )


async def read_scope(request: Request) -> Scope:
    # api.auth.require_key, a dependency of the protected routers resolved before this one, left
    # the key on the request; with no key, reads must have been opened (API_READ_AUTH=false).
    key = getattr(request.state, "api_key", None)
    if key is None and request.app.state.settings.read_auth:
        raise HTTPException(401, "an API key is required (Authorization: Bearer or X-API-Key)")
    return Scope.of(key)


FleetScope = Annotated[Scope, Depends(read_scope)]
