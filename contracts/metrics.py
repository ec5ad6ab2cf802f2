"""The readings' metric names and the tire dimension, defined once.

Every numeric field of an event becomes a metric of `readings` (one row per event and field) and
of the window `aggregates`. Tire readings keep the field's own name (`pressure_kpa`,
`temperature_c`) and carry the tire position in a `tire` column; every other family's rows have
the empty text there (NO_TIRE), not NULL, so the column can sit in primary and conflict keys and
in GROUP BYs without NULL's special cases. The jobs write these names, the loader stores them,
the API validates `metric=`/`tire=` against them and the dashboards filter on them.
"""

from __future__ import annotations

import types
import typing

from contracts.events import EVENT_MODELS, Event, TirePosition, TireReading

SOURCE_KINDS: dict[str, str] = {"building.reading": "building_device", "device.heartbeat": "device"}
"""source_state.kind of the families not sent by vehicles (every other family is a vehicle's)."""

TIRE_FAMILY = TireReading.schema_name
TIRE_FIELD = "tire_position"
"""The tire reading's field that becomes the `tire` column."""
TIRE_POSITIONS: tuple[str, ...] = tuple(position.value for position in TirePosition)
NO_TIRE = ""
"""The `tire` of every row that is no tire reading's."""


def _is_number(annotation) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (annotation,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation in (float, int)


def metric_fields(schema_name: str) -> list[str]:
    """Numeric fields of a family (envelope excluded), in model order: each one is a metric."""
    model = EVENT_MODELS[schema_name]
    return [
        name
        for name, info in model.model_fields.items()
        if name not in Event.model_fields and _is_number(info.annotation)
    ]


def metric_names(schema_name: str) -> dict[str, str]:
    """field -> metric name. Vehicles send several families; a field an earlier vehicle family
    already names (driving events repeat telemetry's odometer_km) is qualified with the family,
    because aggregates are keyed by (source, metric, tire, window)."""
    earlier: set[str] = set()
    for family in EVENT_MODELS:
        if family == schema_name:
            break
        if family not in SOURCE_KINDS:
            earlier |= set(metric_fields(family))
    if schema_name in SOURCE_KINDS:
        return {field: field for field in metric_fields(schema_name)}
    return {field: f"{schema_name}.{field}" if field in earlier else field for field in metric_fields(schema_name)}


TIRE_METRICS: tuple[str, ...] = tuple(metric_names(TIRE_FAMILY).values())
"""Metrics that have a series per tire: pressure_kpa, temperature_c."""
METRICS: tuple[str, ...] = tuple(sorted({name for family in EVENT_MODELS for name in metric_names(family).values()}))
"""Every metric name `readings` and `aggregates` hold."""
UNTIRED_METRICS: frozenset[str] = frozenset(
    name for family in EVENT_MODELS if family != TIRE_FAMILY for name in metric_names(family).values()
)
"""Metrics other families write without a tire (temperature_c is also a building's)."""
TIRE_PRESSURE = metric_names(TIRE_FAMILY)["pressure_kpa"]
TIRE_TEMPERATURE = metric_names(TIRE_FAMILY)["temperature_c"]
