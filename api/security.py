"""API keys / bearer tokens: stored only as SHA-256 hashes, compared in constant time.

Keys are long random tokens (`python -m api.keys` makes one), so one SHA-256 is a sound hash at
rest: there is nothing to brute-force as with passwords. Configuration: API_KEYS is a
comma-separated list of `name:sha256hex` (or API_KEYS_FILE, one per line). Clients send
`Authorization: Bearer <token>` or `X-API-Key: <token>`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

_HASH = re.compile(r"^[0-9a-f]{64}$")
NAME_PATTERN = r"[A-Za-z0-9._-]{1,64}"
_NAME = re.compile(rf"^{NAME_PATTERN}$")


@dataclass(frozen=True)
class ApiKey:
    """A configured key; what a request authenticated with it may do derives from it (the place
    for a key's fleets and role)."""

    name: str
    sha256: bytes = field(repr=False)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "fm_" + secrets.token_urlsafe(32)


def parse_api_keys(text: str, source: str = "API_KEYS") -> tuple[ApiKey, ...]:
    """Entries separated by commas or newlines. A bad entry is named by its position in `source`
    only: an entry is often a pasted token by mistake, so none of its text goes into the error."""
    keys = []
    for position, entry in enumerate((part.strip() for part in re.split(r"[,\n]", text)), start=1):
        if not entry or entry.startswith("#"):
            continue
        name, sep, digest = entry.rpartition(":")
        digest = digest.lower()
        if not sep or not _NAME.match(name) or not _HASH.match(digest):
            raise ValueError(
                f"{source} entry {position} is not name:sha256hex (a name of letters, digits, '.', '_' or '-',"
                " a colon, then the token's SHA-256 as 64 hex digits; `python -m api.keys --name NAME` makes one)"
            )
        keys.append(ApiKey(name, bytes.fromhex(digest)))
    return tuple(keys)


def identify(token: str, keys: tuple[ApiKey, ...]) -> ApiKey | None:
    """The key matching `token`, or None. Every key is compared (constant time)."""
    digest = hashlib.sha256(token.encode()).digest()
    found = None
    for key in keys:
        if hmac.compare_digest(digest, key.sha256):
            found = key
    return found
