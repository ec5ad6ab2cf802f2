"""Contract checks in Flink SQL for the events that are certainly valid, so the Python parse
(jobs.parse, the authority) only sees the rest.

Calling Python from Flink costs ~80 us per row here; the same checks in SQL run at about half
the rate of a bare pass-through. The checks are generated from the family's JSON Schema (the
pydantic model's), and they are conservative: an event passes only when `contracts.parse_event`
would accept it with the same values. Whatever fails a check (legacy heartbeats, spaced or
escaped JSON, nulls, a wrong field) goes to the Python parse, which accepts it or names the
field at fault. `tests/integration/test_jobs_fastpath.py` holds the two to that promise.
"""

from __future__ import annotations

import sys
from functools import cache

from contracts import EVENT_MODELS
from contracts.parsing import MAX_EVENT_BYTES
from jobs.parse import ENVELOPE, family_fields

# Whitespace around the colons removed, so `"key":` and `"key":"` locate keys and string values.
# Inside a JSON string a quote is escaped (`\"`), so these patterns never match string contents.
NORMALISED = """REGEXP_REPLACE(line, '"\\s*:\\s*', '":')"""
WIRE_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"  # contracts.events.format_time
FLOAT_MAX = sys.float_info.max
_SQL_TYPES = {"number": "DOUBLE", "integer": "BIGINT", "string": "STRING"}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _column(name: str) -> str:
    return f"`j_{name}`"


@cache
def _properties(schema_name: str) -> tuple[dict, set[str]]:
    schema = EVENT_MODELS[schema_name].model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    resolved = {}
    for name, declared in schema["properties"].items():
        options = [option for option in declared.get("anyOf", [declared]) if option.get("type") != "null"]
        (prop,) = options
        if "$ref" in prop:
            prop = defs[prop["$ref"].rsplit("/", 1)[1]]
        resolved[name] = {**prop, "nullable": "anyOf" in declared}
    return resolved, set(schema["required"])


def _string_checks(raw: str, prop: dict) -> list[str]:
    checks = []
    if "const" in prop:
        checks.append(f"{raw} = {_quote(prop['const'])}")
    if "enum" in prop:
        checks.append(f"{raw} IN ({', '.join(_quote(value) for value in prop['enum'])})")
    if "minLength" in prop:
        checks.append(f"CHAR_LENGTH({raw}) >= {prop['minLength']}")
    if "maxLength" in prop:  # Java counts a surrogate pair twice: stricter, never looser
        checks.append(f"CHAR_LENGTH({raw}) <= {prop['maxLength']}")
    if "pattern" in prop:
        # Java's `$` also matches before a final line break; the contract's does not.
        pattern = prop["pattern"].removesuffix("$") + "\\z"
        checks.append(f"REGEXP({raw}, {_quote(pattern)})")
    if prop.get("format") == "date-time":
        # The wire format exactly (the jobs read event time in SQL, tables.ROWTIME_SQL): the text
        # must survive a round trip, which also refuses dates a lenient parser would roll over.
        parsed = f"TRY_CAST(REPLACE(REPLACE({raw}, 'T', ' '), 'Z', '') AS TIMESTAMP(3))"
        checks.append(f"DATE_FORMAT({parsed}, {_quote(WIRE_TIME_FORMAT)}) = {raw}")
        checks.append(f"{raw} >= '0001-'")  # Python has no year 0
    return checks


def _number_checks(raw: str, prop: dict) -> list[str]:
    kind = prop["type"]
    value = f"TRY_CAST({raw} AS {_SQL_TYPES[kind]})"
    checks = [f"{value} IS NOT NULL"]
    if kind == "integer":  # digits only: SQL would truncate 5.5, the contract refuses it
        checks.append(f"REGEXP({raw}, '^-?[0-9]+\\z')")
    else:  # finite only (NaN fails every comparison)
        checks.append(f"{value} BETWEEN -{FLOAT_MAX!r} AND {FLOAT_MAX!r}")
    if "const" in prop:
        checks.append(f"{raw} = {_quote(str(prop['const']))}")
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    return checks + [f"{value} {op} {prop[key]!r}" for key, op in bounds.items() if key in prop]


def _checks(name: str, prop: dict, required: bool) -> str:
    """SQL that is TRUE only when the property is absent-and-optional or present and valid."""
    raw = _column(name)
    is_string = f"POSITION({_quote(chr(34) + name + chr(34) + ':' + chr(34))} IN norm) > 0"
    if prop["type"] == "string":
        checks = [is_string, *_string_checks(raw, prop)]
    else:
        checks = [f"NOT {is_string}", *_number_checks(raw, prop)]
    present_and_valid = " AND ".join(checks)
    if required:
        return f"({raw} IS NOT NULL AND {present_and_valid})"
    return f"({raw} IS NULL OR ({present_and_valid}))"


def _found(name: str, prop: dict) -> str:
    """1 when the key is in the line with a value the checks read; an optional field may be null."""
    present = f"{_column(name)} IS NOT NULL"
    if prop["nullable"]:
        present += f" OR POSITION({_quote(chr(34) + name + chr(34) + ':null')} IN norm) > 0"
    return f"CASE WHEN {present} THEN 1 ELSE 0 END"


def valid_predicate(schema_name: str) -> str:
    """TRUE only for an event of this family that parse_event accepts (NULL counts as FALSE).
    Every key must be a known, non-null property: the count of `":` in the normalised line
    equals the number of properties found, so an unknown, duplicate, nested or null key, or a
    `":` inside a string, sends the line to the Python parse."""
    props, required = _properties(schema_name)
    found = " + ".join(_found(name, prop) for name, prop in props.items())
    keys = "(CHAR_LENGTH(norm) - CHAR_LENGTH(REPLACE(norm, '\":', ''))) / 2"
    whole = [
        f"CHAR_LENGTH(line) <= {MAX_EVENT_BYTES}",
        # One flat object: Jackson (behind JSON_VALUE) ignores trailing text, the contract does not.
        "POSITION('{' IN line) = 1",
        "POSITION('}' IN line) = CHAR_LENGTH(line)",
        f"{keys} = {found}",
    ]
    checks = whole + [_checks(name, prop, name in required) for name, prop in props.items()]
    return "COALESCE(" + " AND ".join(checks) + ", FALSE)"


def _json_value(name: str) -> str:
    return f"JSON_VALUE(line, {_quote('$.' + name)})"


def once(expression: str) -> str:
    """The planner merges projections and would inline each extracted field into every check
    that reads it (measured: 2.2x slower); a non-deterministic guard keeps them computed once."""
    return f"CASE WHEN RAND() >= 0 THEN {expression} END"


def extracted(schema_name: str) -> str:
    """Select list over the source: the line's fields as text (`j_<name>`) and the normalised line."""
    props, _ = _properties(schema_name)
    fields = ", ".join(f"{once(_json_value(name))} AS {_column(name)}" for name in props)
    return f"*, {once(NORMALISED)} AS norm, {fields}"


def typed_columns(schema_name: str) -> str:
    """The parse function's output columns (jobs.parse.output_columns), from the extracted text."""
    props, _ = _properties(schema_name)
    columns = ["CAST(NULL AS STRING) AS error", "CAST(NULL AS STRING) AS error_field"]
    for name in ENVELOPE:
        value = _column(name)
        if "default" in props[name]:
            value = f"COALESCE({value}, {_quote(props[name]['default'])})"
        columns.append(f"{value} AS {name}")
    for name, sql_type in family_fields(schema_name).items():
        value = _column(name) if sql_type == "STRING" else f"TRY_CAST({_column(name)} AS {sql_type})"
        columns.append(f"{value} AS {name}")
    return ", ".join(columns)
