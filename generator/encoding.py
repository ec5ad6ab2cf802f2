"""Wire encoding of events, in two equivalent ways.

`reference_json` builds the contracts model (validating every field) and calls `.to_json()`: the
agreed way, used by `--validate` runs and by replay. `Template` renders the very same bytes from
a format string derived from the model's own field list, about ten times faster; the simulator's
hot path uses it and the tests prove both give identical bytes. If a contract gains or renames a
field, building the template fails loudly instead of emitting stale events.
"""

from __future__ import annotations

import json

from contracts.events import EVENT_MODELS, SCHEMA_VERSION, Event

ENVELOPE_CONSTANTS = ("schema_", "version")
"""Fields the template bakes in; every other field is a value the caller supplies, in model order."""
ONE_DECIMAL = "%.1f"
"""For float fields of one decimal: '%.1f' of x is exactly pydantic's text for float('%.1f' % x),
and formatting is cheaper than round() followed by repr()."""


def field_names(schema_name: str) -> tuple[str, ...]:
    """The fields a caller supplies for one family, in the model's (= wire) order."""
    return tuple(name for name in EVENT_MODELS[schema_name].model_fields if name not in ENVELOPE_CONSTANTS)


class Template:
    """Renders one family's JSON from a tuple of values in `field_names(schema)` order.

    Values must be what pydantic would serialize unchanged: str for identifiers and enums (our
    own ids are JSON-safe by construction), float for float fields (`%r` is pydantic's shortest
    round-trip form; fields named in `one_decimal` are rounded by the template), int for int
    fields, and already-encoded text (`null` or a number) for optional fields, except those named in
    `present`: the caller always has a value for them, passed as for a required field."""

    def __init__(
        self,
        schema_name: str,
        expected_fields: tuple[str, ...],
        one_decimal: frozenset[str] = frozenset(),
        present: frozenset[str] = frozenset(),
    ):
        model = EVENT_MODELS[schema_name]
        actual = field_names(schema_name)
        if actual != expected_fields:
            raise RuntimeError(f"contract {schema_name} fields changed: {actual} (generator knows {expected_fields})")
        self._head = f'{{"schema":"{schema_name}","version":{SCHEMA_VERSION}'
        self._slots = []
        for name in actual:
            info = model.model_fields[name]
            placeholder = ONE_DECIMAL if name in one_decimal else _placeholder(info.annotation, name in present)
            self._slots.append((name, info.alias or name, placeholder))
        self.schema_name = schema_name
        self.fields = actual
        self.one_decimal = one_decimal
        self.format = self._head + "".join(f',"{key}":{placeholder}' for _, key, placeholder in self._slots) + "}"

    def bind(self, id_prefix: str, constants: dict) -> str:
        """A format string for one source: `constants` (field -> value, encoded as for `render`)
        are baked in, event_id becomes `<id_prefix><index>` and event_time the given text.
        It takes (index, event time text as clock.SimClock.text gives it, *remaining fields in order)."""
        parts = [self._head]
        for name, key, placeholder in self._slots:
            if name == "event_id":
                value = '"' + id_prefix.replace("%", "%%") + '%d"'
            elif name == "event_time":
                value = '"%s"'
            elif name in constants:
                value = (placeholder % constants[name]).replace("%", "%%")
            else:
                value = placeholder
            parts.append(f',"{key}":{value}')
        return "".join(parts) + "}"

    def wire_values(self, values: tuple) -> tuple:
        """The values as a consumer reads them back: one-decimal fields rounded the template's way.
        `values` may omit leading fields (e.g. the envelope): they align with the last fields."""
        names = self.fields[len(self.fields) - len(values) :]
        return tuple(
            float(ONE_DECIMAL % value) if name in self.one_decimal else value
            for name, value in zip(names, values, strict=True)
        )


def _placeholder(annotation, present: bool = False) -> str:
    if annotation is float or (present and annotation == float | None):
        return "%r"
    if annotation is int or (present and annotation == int | None):
        return "%d"
    if present:
        raise RuntimeError(f"a field of type {annotation} cannot be formatted as always present")
    text = str(annotation)
    if "None" in text:  # optional: the caller passes encoded text (null or a number)
        return "%s"
    return '"%s"'  # identifiers, enums, datetimes (pre-formatted)


def reference_json(schema_name: str, fields: dict) -> str:
    """The contracts way: build (and so validate) the model, then `.to_json()`."""
    model: type[Event] = EVENT_MODELS[schema_name]
    return model.build(**fields).to_json()


def legacy_heartbeat(event_id: str, device_id: str, epoch_s: int) -> str:
    """The legacy wire form seed 003's devices send (`time` in integer epoch seconds);
    contracts.parsing normalises it."""
    return json.dumps({"event-id": event_id, "device-id": device_id, "time": epoch_s}, separators=(",", ":"))
