"""Strict, fast parsing of wire events into contract models.

`parse_event` never raises anything but `ContractError`, whose `field` names what is wrong, so
callers can route the raw bytes to the dead-letter topic with a precise reason and go on.
"""

from __future__ import annotations

import json
from typing import Annotated, Union

from pydantic import Field, TypeAdapter, ValidationError

from contracts.events import EVENT_MODELS, DeviceHeartbeat, Event

_ANY_EVENT = TypeAdapter(Annotated[Union[tuple(EVENT_MODELS.values())], Field(discriminator="schema_")])  # noqa: UP007
_LEGACY_HEARTBEAT_KEYS = {"event-id", "device-id", "time"}
MAX_EVENT_BYTES = 64 * 1024


class ContractError(ValueError):
    """An event that breaks its contract. `field` is the dotted path of the offending field,
    or None when the payload as a whole is unusable (not JSON, not an object, too large)."""

    def __init__(self, reason: str, field: str | None = None):
        self.reason = reason
        self.field = field
        super().__init__(f"field '{field}': {reason}" if field else reason)


def parse_event(raw: bytes | str) -> Event:
    """Parse one wire event (JSON text). Raises ContractError naming the field at fault."""
    if len(raw) > MAX_EVENT_BYTES:
        raise ContractError(f"event is {len(raw)} bytes, over the {MAX_EVENT_BYTES} byte limit")
    try:
        return _ANY_EVENT.validate_json(raw)
    except ValidationError as fast_path_error:
        try:
            document = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ContractError(f"not valid JSON: {exc}") from None
        if isinstance(document, dict) and _is_legacy_heartbeat(document):
            return parse_event_dict(document)
        raise _contract_error(fast_path_error, document) from None


def parse_event_dict(document: object) -> Event:
    """Parse an already-decoded JSON object (also accepts the legacy heartbeat form)."""
    if isinstance(document, dict) and _is_legacy_heartbeat(document):
        document = _from_legacy_heartbeat(document)
    try:
        return _ANY_EVENT.validate_python(document)
    except ValidationError as exc:
        raise _contract_error(exc, document) from None


def _is_legacy_heartbeat(document: dict) -> bool:
    return "schema" not in document and document.keys() >= _LEGACY_HEARTBEAT_KEYS


def _from_legacy_heartbeat(document: dict) -> dict:
    unknown = document.keys() - _LEGACY_HEARTBEAT_KEYS
    if unknown:
        raise ContractError("unexpected field in legacy heartbeat", field=sorted(unknown)[0])
    return {
        "schema": DeviceHeartbeat.schema_name,
        "event_id": document["event-id"],
        "source_id": document["device-id"],
        "event_time": document["time"],
    }


def _contract_error(exc: ValidationError, document: object) -> ContractError:
    if not isinstance(document, dict):
        return ContractError(f"event must be a JSON object, got {type(document).__name__}")
    schema = document.get("schema")
    if schema is None:
        return ContractError("missing event schema name", field="schema")
    if schema not in EVENT_MODELS:
        known = ", ".join(sorted(EVENT_MODELS))
        return ContractError(f"unknown event schema {schema!r} (known: {known})", field="schema")
    first = exc.errors(include_url=False)[0]
    # Discriminated unions prefix the location with the tag; drop it so the path is the field.
    location = [str(part) for part in first["loc"] if part != schema]
    field = ".".join(location) or None
    return ContractError(first["msg"], field="schema" if field == "schema_" else field)
