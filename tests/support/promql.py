"""What the charts ask Prometheus: every alert/recording rule expression (charts/*/rules) and
every PromQL query of the dashboards (charts/grafana/dashboards), and the series selectors in
each. The selector scanner knows the PromQL the charts use (functions, aggregations with
by/without, binary operators with on/ignoring/group_*, ranges, offsets, strings), no more."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

SCRAPED_JOBS = (
    "fleet-monitor-api",
    "fleet-monitor-loader",
    "fleet-monitor-alert-shipper",
    "fleet-monitor-generator",
    "flink-jobmanager",
    "flink-taskmanager",
)
"""The scrape jobs a local run's Prometheus must have up: every process `make run` starts."""

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "charts").glob("*/rules/*.rules.yaml"))
DASHBOARDS = sorted((ROOT / "charts" / "grafana" / "dashboards").glob("*.json"))
# Grafana's range variable, as it resolves for a 15 s scrape interval (4 x 15 s; devstack.prometheus).
GRAFANA_VARIABLES = {"$__rate_interval": "1m"}

_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_AGGREGATION_CLAUSE = re.compile(r"(by|without)\s*\(")  # sum by (x) (...)
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...] = ()

    def __str__(self) -> str:
        inner = ",".join(f"{label}{op}{json.dumps(value)}" for label, op, value in self.matchers)
        return f"{self.metric}{{{inner}}}" if inner else self.metric


@dataclass(frozen=True)
class Query:
    source: str  # "<rules file>: <alert or record name>" or "<dashboard>: <panel title>"
    name: str  # the alert or record name, or the panel title
    expr: str


def _closing(text: str, start: int, open_: str, close: str) -> int:
    """Index just after the bracket that closes text[start] (strings skipped)."""
    depth, i = 0, start
    while i < len(text):
        char = text[i]
        if char in "\"'`":
            i = text.index(char, i + 1) + 1
            continue
        depth += char == open_
        depth -= char == close
        i += 1
        if depth == 0:
            return i
    raise ValueError(f"unbalanced {open_!r} in {text!r}")


def _matchers(body: str) -> tuple[tuple[str, str, str], ...]:
    found, position = [], 0
    while position < len(body):
        match = _MATCHER.match(body, position)
        if match is None:
            raise ValueError(f"cannot read label matchers {{{body}}}")
        found.append((match.group(1), match.group(2), json.loads(f'"{match.group(3)}"')))
        position = match.end()
    return tuple(found)


def selectors(expr: str) -> list[Selector]:
    """The series selectors of a PromQL expression, in order."""
    text, found, i = expr, [], 0
    while i < len(text):
        char = text[i]
        if char in "\"'`":
            i = text.index(char, i + 1) + 1
        elif char == "[":
            i = _closing(text, i, "[", "]")
        elif char.isdigit() or (char == "." and text[i + 1 : i + 2].isdigit()):
            i = re.compile(r"[0-9a-zA-Z_.]+").match(text, i).end()  # numbers and durations (5m, 1h30m)
        elif match := _IDENT.match(text, i):
            word, i = match.group(), match.end()
            rest = text[i:].lstrip()
            if word in _LABEL_LISTS:
                if rest.startswith("("):
                    i = _closing(text, text.index("(", i), "(", ")")
            elif word.lower() in _KEYWORDS or rest.startswith("(") or _AGGREGATION_CLAUSE.match(rest):
                pass  # an operator keyword, a literal, or a function / aggregation name
            elif rest.startswith("{"):
                start = text.index("{", i)
                end = _closing(text, start, "{", "}")
                found.append(Selector(word, _matchers(text[start + 1 : end - 1])))
                i = end
            else:
                found.append(Selector(word))
        else:
            i += 1
    return found


def resolve(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced; a variable left over is an error."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    if "$" in expr:
        raise ValueError(f"unknown Grafana variable in {expr!r} (known: {sorted(GRAFANA_VARIABLES)})")
    return expr


def rule_queries(files: list[Path] = RULE_FILES) -> list[Query]:
    return [
        Query(f"{path.name}: {name}", name, rule["expr"].strip())
        for path in files
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        for name in [rule.get("alert") or rule["record"]]
    ]


def dashboard_queries(files: list[Path] = DASHBOARDS) -> list[Query]:
    return [
        Query(f"{path.name}: {panel['title']}", panel["title"], resolve(target["expr"]))
        for path in files
        for panel in json.loads(path.read_text())["panels"]
        for target in panel.get("targets", [])
        if target.get("datasource", {}).get("type") == "prometheus"
    ]


# ------------------------------------------------------------------ checks on a real Prometheus

# The alert rules about a condition a healthy local run does not have: they may return nothing, and
# then each metric they select must still be scraped, with the labels they match on.
ABSENT_CONDITIONS = {
    "ApiHighErrorRate": "API 5xx answers",
    "ApiDown": "the API down",
    "FlinkJobDown": "a Flink job down",
    "FlinkJobRestarting": "more than 3 job restarts in 10 minutes",
    "FlinkCheckpointFailures": "failed checkpoints",
    "FlinkCheckpointsStalled": "15 minutes without a checkpoint",
    "FlinkKafkaConsumerLag": "a lag over 10,000 records for 10 minutes",
    "LoaderDown": "the loader down",
    "LoaderStalled": "15 minutes without a loaded batch",
    "LoaderSlowBatches": "batches slower than 30 s",
    "LoaderRejectingRecords": "records the loader rejects",
}
# Selectors of such a condition inside a query that still returns a series (the 5xx share of all
# requests is 0, not nothing): their metric and labels must be scraped, the series need not exist.
ABSENT_SERIES = {'fleet_api_requests_total{status=~"5.."}': "API 5xx answers"}
# Producers the local platform does not run: their metrics cannot be scraped there.
NOT_RUN = {"vector": "Vector (devstack.alert_shipper does its work locally, with the same insert)"}


def check(prometheus, query: Query) -> tuple[str, list[str]]:
    """How `query` holds on a running Prometheus (devstack.prometheus.PrometheusService): the verdict
    and what is wrong. A query must return a series, unless ABSENT_CONDITIONS names it (then each
    selector's metric must be scraped, with the labels its matchers use) or it selects only metrics
    of a producer in NOT_RUN. Each selector must match a series, unless it is part of an absent
    condition (ABSENT_CONDITIONS, ABSENT_SERIES)."""
    from contracts.prometheus_names import producer_of

    chosen = [s for s in selectors(query.expr) if producer_of(s.metric) not in NOT_RUN]
    if not chosen:
        producers = sorted({producer_of(s.metric) for s in selectors(query.expr)})
        return "not run: " + "; ".join(NOT_RUN[p] for p in producers), []
    absent = query.name in ABSENT_CONDITIONS
    problems = [
        problem
        for selector in chosen
        for problem in _selector_problems(prometheus, selector, absent or str(selector) in ABSENT_SERIES)
    ]
    if prometheus.query(query.expr):
        return "returns a series", problems
    if absent:
        return f"no series, as expected without {ABSENT_CONDITIONS[query.name]}; its metrics are scraped", problems
    return "no series", [*problems, f"{query.source}: `{query.expr}` returns no series"]


def _selector_problems(prometheus, selector: Selector, absent: bool) -> list[str]:
    """The selector's metric is scraped, carries the labels it matches on, and (unless it is part of
    an absent condition, whose matchers may select exactly that) matches a series."""
    series = prometheus.api("series", **{"match[]": selector.metric})
    if not series:
        return [f"metric {selector.metric} is not among the scraped series"]
    labels = set().union(*series)
    missing = [label for label, _, _ in selector.matchers if label not in labels]
    if missing:
        return [f"{selector}: no {selector.metric} series has the label(s) {missing} (it has {sorted(labels)})"]
    if not absent and selector.matchers and not prometheus.api("series", **{"match[]": str(selector)}):
        return [f"{selector} matches no series"]
    return []
