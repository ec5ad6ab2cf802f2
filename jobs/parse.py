"""Contract parsing inside Flink: one Python table function per event family.

The function's output columns are derived from the family's pydantic model, so the SQL tables
never restate a field. A payload that breaks the contract yields one row carrying the
ContractError reason and field (and NULL fields) so the SQL routes it to the dead letters.
"""

from __future__ import annotations

import types
import typing
from datetime import UTC, datetime
from enum import Enum

from pyflink.table import DataTypes
from pyflink.table.udf import TableFunction, udtf

from contracts import EVENT_MODELS, ContractError, parse_event
from contracts.events import Event

ENVELOPE = ("event_id", "source_id", "fleet_id")
TIME_FORMS = (
    "event_time must be RFC 3339 with a zone (2026-01-01T00:00:00.000Z, or an offset such as +02:00), "
    "or epoch seconds (a JSON number below 1e11) or milliseconds (from 1e11 on)"
)
"""The event times the jobs read (jobs.tables.ROWTIME_SQL): the reason of a line whose time SQL
read at another instant than the contract (a safety net: tests/integration/test_jobs_event_time.py
finds none among the forms the contract accepts)."""
ERROR_COLUMNS = ("error", "error_field")


def _sql_type(annotation) -> str:
    """Flink SQL type of a model field annotation (optional -> nullable base type)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (annotation,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if annotation is float:
        return "DOUBLE"
    if annotation is int:
        return "BIGINT"
    if annotation is str or (isinstance(annotation, type) and issubclass(annotation, Enum)):
        return "STRING"
    raise TypeError(f"no SQL type for {annotation!r}")


def family_fields(schema_name: str) -> dict[str, str]:
    """The family's own fields (envelope excluded) -> Flink SQL type, in model order."""
    model = EVENT_MODELS[schema_name]
    own = [name for name in model.model_fields if name not in Event.model_fields]
    return {name: _sql_type(model.model_fields[name].annotation) for name in own}


def output_columns(schema_name: str) -> dict[str, str]:
    """Every column the family's parse function yields, with its SQL type."""
    return {
        **dict.fromkeys(ERROR_COLUMNS, "STRING"),
        **dict.fromkeys(ENVELOPE, "STRING"),
        **family_fields(schema_name),
    }


_FLINK_TYPES = {"STRING": DataTypes.STRING(), "DOUBLE": DataTypes.DOUBLE(), "BIGINT": DataTypes.BIGINT()}


class ParseFamily(TableFunction):
    """parse(line, rowtime_text): the contract-checked event, or one row with the error.
    rowtime_text is SQL's reading of the event time ('yyyy-MM-dd HH:mm:ss.SSS', UTC)."""

    def __init__(self, schema_name: str):
        self.schema_name = schema_name
        self.fields = list(family_fields(schema_name))
        self.padding = (None,) * (len(ENVELOPE) + len(self.fields))

    def eval(self, line: str, rowtime_text: str | None):
        try:
            event = parse_event(line)
            if event.schema_name != self.schema_name:
                raise ContractError(f"{event.schema_name} event on the {self.schema_name} topic", field="schema")
            if rowtime_text != sql_time(event.event_time):
                raise ContractError(TIME_FORMS, field="event_time")
        except ContractError as exc:
            yield (exc.reason, exc.field, *self.padding)
            return
        values = [getattr(event, name) for name in self.fields]
        yield (None, None, event.event_id, event.source_id, event.fleet_id, *[_plain(v) for v in values])


def sql_time(value: datetime) -> str:
    """An instant as SQL prints a TIMESTAMP(3) in UTC: 'yyyy-MM-dd HH:mm:ss.SSS'."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d}"


def _plain(value):
    return value.value if isinstance(value, Enum) else value


def parse_function(schema_name: str):
    columns = output_columns(schema_name)
    return udtf(
        ParseFamily(schema_name),
        result_types=[_FLINK_TYPES[sql_type] for sql_type in columns.values()],
    )


def function_name(schema_name: str) -> str:
    return "parse_" + schema_name.replace(".", "_")
