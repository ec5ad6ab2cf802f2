"""API keys / bearer tokens: stored only as SHA-256 hashes, compared in constant time; each key
names the fleets it may see and its role.

Keys are long random tokens (`python -m api.keys` makes one), so one SHA-256 is a sound hash at
rest: there is nothing to brute-force as with passwords. Configuration: API_KEYS is a
comma-separated list of entries (or API_KEYS_FILE, one per line). Clients send
`Authorization: Bearer <token>` or `X-API-Key: <token>`.

An entry is `name:sha256hex:role:fleets`:
- role: `read` (every data route), `operate` (read + acknowledge/clear alarms and their audit),
  `admin` (everything, operate included);
- fleets: `*` for every fleet, or fleet ids joined by `+` (`fleet-a+fleet-b`); `+` is not a
  character of a fleet id (contracts.events.Identifier), and a fleet id may hold a colon, so the
  fleets come last and take the rest of the entry.

The older `name:sha256hex` form still parses, as every fleet with role `operate`: that is exactly
what such a key could do before keys had a scope (read everything, acknowledge and clear any
alarm), so an upgrade changes no one's access; `admin` is new power no old key was ever given.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from enum import StrEnum

_HASH = re.compile(r"^[0-9a-f]{64}$")
NAME_PATTERN = r"[A-Za-z0-9._-]{1,64}"
FLEET_PATTERN = r"[A-Za-z0-9._:\-]{1,128}"  # contracts.events.Identifier
_NAME = re.compile(rf"^{NAME_PATTERN}$")
_FLEET = re.compile(rf"^{FLEET_PATTERN}$")
ALL_FLEETS = "*"
FLEET_SEPARATOR = "+"
ENTRY_FORMAT = "name:sha256hex:role:fleets"


class Role(StrEnum):
    """Ordered: each role may do what the ones before it may."""

    READ = "read"
    OPERATE = "operate"
    ADMIN = "admin"

    def includes(self, other: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(other)


LEGACY_ROLE = Role.OPERATE  # of a `name:sha256hex` entry (see the module docstring)
_ROLES = ", ".join(role.value for role in Role)


@dataclass(frozen=True)
class ApiKey:
    """A configured key: who it is (name), what it may do (role) and see (fleets; None = all)."""

    name: str
    sha256: bytes = field(repr=False)
    role: Role = LEGACY_ROLE
    fleets: frozenset[str] | None = None

    def may(self, role: Role) -> bool:
        return self.role.includes(role)

    @property
    def fleet_list(self) -> list[str] | None:
        """The fleets as a query parameter: None when the key sees every fleet."""
        return None if self.fleets is None else sorted(self.fleets)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "fm_" + secrets.token_urlsafe(32)


def key_entry(name: str, token: str, role: Role | str, fleets: list[str] | None) -> str:
    """The API_KEYS entry of `token` (fleets None: every fleet); parse_api_keys reads it back."""
    scope = ALL_FLEETS if fleets is None else FLEET_SEPARATOR.join(fleets)
    return f"{name}:{hash_token(token)}:{Role(role).value}:{scope}"


def parse_api_keys(text: str, source: str = "API_KEYS") -> tuple[ApiKey, ...]:
    """Entries separated by commas or newlines. A bad entry is named by its position in `source`
    and the field that is wrong only: an entry is often a pasted token by mistake, so none of its
    text goes into the error."""
    keys = []
    for position, entry in enumerate((part.strip() for part in re.split(r"[,\n]", text)), start=1):
        if not entry or entry.startswith("#"):
            continue
        problem, key = _parse_entry(entry)
        if problem:
            raise ValueError(
                f"{source} entry {position}: {problem}. An entry is {ENTRY_FORMAT} (or the older name:sha256hex);"
                " `python -m api.keys --name NAME --role ROLE --fleet FLEET` makes one"
            )
        keys.append(key)
    return tuple(keys)


def _parse_entry(entry: str) -> tuple[str | None, ApiKey | None]:
    """(what is wrong, None) or (None, the key)."""
    fields = entry.split(":", 3)
    if len(fields) not in (2, 4):
        return f"has {len(fields)} colon-separated field(s), expected 4 ({ENTRY_FORMAT}) or 2 (name:sha256hex)", None
    name, digest = fields[0], fields[1].lower()
    if not _NAME.match(name):
        return "the name must be 1-64 letters, digits, '.', '_' or '-'", None
    if not _HASH.match(digest):
        return "the hash must be the token's SHA-256 as 64 hex digits", None
    if len(fields) == 2:
        return None, ApiKey(name, bytes.fromhex(digest))
    role, scope = fields[2], fields[3]
    if role not in Role.__members__.values():
        return f"the role must be one of {_ROLES}", None
    if scope == ALL_FLEETS:
        return None, ApiKey(name, bytes.fromhex(digest), Role(role), None)
    fleets = scope.split(FLEET_SEPARATOR)
    if not all(_FLEET.match(fleet) for fleet in fleets):
        return (
            f"the fleets must be {ALL_FLEETS} (every fleet) or fleet ids (letters, digits, '.', '_', ':' or '-')"
            f" joined by '{FLEET_SEPARATOR}'"
        ), None
    return None, ApiKey(name, bytes.fromhex(digest), Role(role), frozenset(fleets))


def identify(token: str, keys: tuple[ApiKey, ...]) -> ApiKey | None:
    """The key matching `token`, or None. Every key is compared (constant time)."""
    digest = hashlib.sha256(token.encode()).digest()
    found = None
    for key in keys:
        if hmac.compare_digest(digest, key.sha256):
            found = key
    return found
