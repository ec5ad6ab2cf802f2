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
from dataclasses import dataclass

_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: bytes


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "fm_" + secrets.token_urlsafe(32)


def parse_api_keys(text: str) -> tuple[ApiKey, ...]:
    keys = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry or entry.startswith("#"):
            continue
        name, sep, digest = entry.rpartition(":")
        digest = digest.lower()
        if not sep or not name or not _HASH.match(digest):
            raise ValueError(f"API key entry must be name:sha256hex (64 hex digits), got {entry[:20]!r}...")
        keys.append(ApiKey(name, bytes.fromhex(digest)))
    return tuple(keys)


def identify(token: str, keys: tuple[ApiKey, ...]) -> str | None:
    """The name of the key matching `token`, or None. Every key is compared (constant time)."""
    digest = hashlib.sha256(token.encode()).digest()
    found = None
    for key in keys:
        if hmac.compare_digest(digest, key.sha256):
            found = key.name
    return found
