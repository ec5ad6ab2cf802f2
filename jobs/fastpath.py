"""Contract checks in Flink SQL for events in the canonical wire form, so the Python parse
(jobs.parse, the authority) only sees the rest.

Calling Python from Flink costs ~80 us per row here, and JSON_VALUE parses the whole document
again on every call. The canonical form (what `Event.to_json` and the simulator write) is one
compact, flat JSON object without escapes; there `,"` and `":` occur only between members, so
STR_TO_MAP splits it exactly into raw members, and typed checks generated from the family's
JSON Schema (the pydantic model's) decide. They are conservative: a line passes only when
`contracts.parse_event` accepts it with the same values. Anything else (legacy heartbeats,
spaced or escaped JSON, numbers in strings, a wrong field) goes to the Python parse, which
accepts it or names the field at fault. `tests/integration/test_jobs_fastpath.py` holds the
two to that promise.
"""

from __future__ import annotations

import sys
from functools import cache

from contracts import EVENT_MODELS
from contracts.parsing import MAX_EVENT_BYTES
from jobs.parse import ENVELOPE, family_fields

END = "\\z"  # end of input; Java's `$` also matches before a final line break
NUMBER = "^-?(0|[1-9][0-9]*)([.][0-9]+)?([eE][+-]?[0-9]+)?" + END  # JSON's number grammar
INTEGER = "^-?(0|[1-9][0-9]*)" + END
FLOAT_MAX = sys.float_info.max
_SQL_TYPES = {"number": "DOUBLE", "integer": "BIGINT"}
# `{"a":1,"b":"x"}` -> {a: 1, b: "x"}: the members between the outer `{"` and `}`.
MEMBERS = "STR_TO_MAP(SUBSTRING(line, 3, CHAR_LENGTH(line) - 3), ',\"', '\":')"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _column(name: str) -> str:
    """The member's raw text as written: strings with their quotes."""
    return f"`j_{name}`"


def _text(name: str) -> str:
    """A string member's value (the quotes removed)."""
    return f"`t_{name}`"


def _value(name: str) -> str:
    """A number member's value (NULL where the text is no number)."""
    return f"`v_{name}`"


@cache
def _properties(schema_name: str) -> tuple[dict, set[str]]:
    schema = EVENT_MODELS[schema_name].model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    resolved = {}
    for name, declared in schema["properties"].items():
        (prop,) = [option for option in declared.get("anyOf", [declared]) if option.get("type") != "null"]
        if "$ref" in prop:
            prop = defs[prop["$ref"].rsplit("/", 1)[1]]
        resolved[name] = {**prop, "nullable": "anyOf" in declared}
    return resolved, set(schema["required"])


def _string_checks(name: str, prop: dict) -> list[str]:
    raw, text = _column(name), _text(name)
    checks = [
        f"CHAR_LENGTH({raw}) >= 2",
        f"SUBSTRING({raw}, 1, 1) = '\"'",
        f"SUBSTRING({raw}, CHAR_LENGTH({raw})) = '\"'",
    ]
    if "const" in prop:
        checks.append(f"{text} = {_quote(prop['const'])}")
    elif "enum" in prop:
        checks.append(f"{text} IN ({', '.join(_quote(value) for value in prop['enum'])})")
    elif prop.get("format") == "date-time":
        # The wire format exactly, and the instant SQL read as the event time (tables.ROWTIME_SQL).
        checks += [
            f"CHAR_LENGTH({text}) = 24",
            f"SUBSTRING({text}, 11, 1) = 'T'",
            f"SUBSTRING({text}, 24, 1) = 'Z'",
            f"REPLACE(REPLACE({text}, 'T', ' '), 'Z', '') = CAST(rowtime AS STRING)",
        ]
    elif "pattern" in prop:
        checks.append(f"REGEXP({text}, {_quote(prop['pattern'].removesuffix('$') + END)})")
    else:  # free text: no quote and no control character (JSON forbids both unescaped)
        checks.append(f"NOT REGEXP({text}, '[\"\\x00-\\x1F]')")
    if "minLength" in prop:
        checks.append(f"CHAR_LENGTH({text}) >= {prop['minLength']}")
    if "maxLength" in prop:  # Java counts a surrogate pair twice: stricter, never looser
        checks.append(f"CHAR_LENGTH({text}) <= {prop['maxLength']}")
    return checks


def _number_checks(name: str, prop: dict) -> list[str]:
    raw, kind = _column(name), prop["type"]
    value = _value(name)
    checks = [f"REGEXP({raw}, {_quote(INTEGER if kind == 'integer' else NUMBER)})", f"{value} IS NOT NULL"]
    if kind == "number":  # finite only
        checks.append(f"{value} BETWEEN -{FLOAT_MAX!r} AND {FLOAT_MAX!r}")
    if "const" in prop:
        checks.append(f"{raw} = {_quote(str(prop['const']))}")
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    return checks + [f"{value} {op} {prop[key]!r}" for key, op in bounds.items() if key in prop]


def _member_ok(name: str, prop: dict, required: bool) -> str:
    """TRUE when the member is valid, or absent (or null) where the contract allows it."""
    raw = _column(name)
    checks = _string_checks(name, prop) if prop["type"] == "string" else _number_checks(name, prop)
    present_and_valid = " AND ".join(checks)
    if required:
        return f"({raw} IS NOT NULL AND {present_and_valid})"
    absent = f"{raw} IS NULL" + (f" OR {raw} = 'null'" if prop["nullable"] else "")
    return f"({absent} OR ({present_and_valid}))"


def valid_predicate(schema_name: str) -> str:
    """TRUE only for a line of this family in the canonical form that parse_event accepts
    (NULL counts as FALSE). Every member is a known property, once: the map holds as many
    entries as the line has members, and all of them are properties."""
    props, required = _properties(schema_name)
    found = " + ".join(f"CASE WHEN {_column(name)} IS NULL THEN 0 ELSE 1 END" for name in props)
    members = "(CHAR_LENGTH(line) - CHAR_LENGTH(REPLACE(line, ',\"', ''))) / 2 + 1"
    whole = [
        f"CHAR_LENGTH(line) <= {MAX_EVENT_BYTES}",
        "SUBSTRING(line, 1, 2) = '{\"'",
        "SUBSTRING(line, CHAR_LENGTH(line)) = '}'",
        # Without a backslash no string holds a quote, so `,"` and `":` only separate members.
        "POSITION('\\' IN line) = 0",
        f"CARDINALITY(members) = {members}",
        f"CARDINALITY(members) = {found}",
    ]
    checks = whole + [_member_ok(name, prop, name in required) for name, prop in props.items()]
    return "COALESCE(" + " AND ".join(checks) + ", FALSE)"


def once(expression: str) -> str:
    """The planner merges projections and would inline each extracted member into every check
    that reads it (measured on 151k events: 2.2x slower); a non-deterministic guard keeps them computed once."""
    return f"CASE WHEN RAND() >= 0 THEN {expression} END"


def extracted(schema_name: str) -> str:
    """Select list over the source: each property's raw text (`j_<name>`) and its value, the
    text of a string (`t_<name>`) or the number (`v_<name>`), each computed once."""
    props, _ = _properties(schema_name)
    fields = []
    for name, prop in props.items():
        raw = f"members[{_quote(name)}]"
        if prop["type"] == "string":
            value, column = f"SUBSTRING({raw}, 2, CHAR_LENGTH({raw}) - 2)", _text(name)
        else:
            value, column = f"TRY_CAST({raw} AS {_SQL_TYPES[prop['type']]})", _value(name)
        fields += [f"{once(raw)} AS {_column(name)}", f"{once(value)} AS {column}"]
    return "*, " + ", ".join(fields)


def members(source: str) -> str:
    """The source with its lines split into members, computed once per line."""
    return f"(SELECT *, {once(MEMBERS)} AS members FROM {source})"


def typed_columns(schema_name: str) -> str:
    """The parse function's output columns (jobs.parse.output_columns), from the raw members."""
    props, _ = _properties(schema_name)
    columns = ["CAST(NULL AS STRING) AS error", "CAST(NULL AS STRING) AS error_field"]
    for name in ENVELOPE:
        value = _text(name)
        if "default" in props[name]:
            value = f"COALESCE({value}, {_quote(props[name]['default'])})"
        columns.append(f"{value} AS {name}")
    for name, sql_type in family_fields(schema_name).items():
        # Numbers are NULL for 'null' already, typed as the model's field (jobs.parse).
        text = f"CASE WHEN {_column(name)} <> 'null' THEN {_text(name)} END"
        columns.append(f"{text if sql_type == 'STRING' else _value(name)} AS {name}")
    return ", ".join(columns)
