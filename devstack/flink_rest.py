"""Read the running Flink job's progress from its REST API (the local mini-cluster serves it too):
how many events its sources have read, summed over every source operator and subtask."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request

# A Kafka source operator's metric id: "Source__KafkaSource-default_catalog_default_database_src_<family>"
# (punctuation replaced, possibly an operator index) followed by the metric name.
SOURCE_RECORDS = re.compile(r"^Source__.*?(?P<table>src_[a-z_]+?)(?:\[\d+\])?\.numRecordsOut$")


def _get(url: str, timeout_s: float):
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.load(response)


def events_read(rest_url: str, timeout_s: float = 5.0) -> int | None:
    """Events the running job's sources have emitted so far, or None while no job runs (or the
    REST API does not answer). Flink refreshes these figures every metrics.fetcher.update-interval."""
    by_source = events_read_by_source(rest_url, timeout_s)
    return None if by_source is None else sum(by_source.values())


def events_read_by_source(rest_url: str, timeout_s: float = 5.0) -> dict[str, int] | None:
    """Per source table (`src_tire_reading`, ...): events read so far, summed over subtasks."""
    try:
        jobs = [job["jid"] for job in _get(f"{rest_url}/jobs/overview", timeout_s)["jobs"] if job["state"] == "RUNNING"]
        if not jobs:
            return None
        counts: dict[str, int] = {}
        for job in jobs:
            for vertex in _get(f"{rest_url}/jobs/{job}", timeout_s)["vertices"]:
                if vertex["name"].startswith("Source:"):
                    for table, count in _source_records(f"{rest_url}/jobs/{job}/vertices/{vertex['id']}", timeout_s):
                        counts[table] = counts.get(table, 0) + count
        return counts
    except (OSError, ValueError, KeyError):
        return None


def _source_records(vertex_url: str, timeout_s: float) -> list[tuple[str, int]]:
    names = {
        item["id"]: found["table"]
        for item in _get(f"{vertex_url}/subtasks/metrics", timeout_s)
        if (found := SOURCE_RECORDS.match(item["id"]))
    }
    if not names:
        return []
    query = urllib.parse.urlencode({"get": ",".join(names), "agg": "sum"})
    return [
        (names[item["id"]], int(float(item["sum"])))
        for item in _get(f"{vertex_url}/subtasks/metrics?{query}", timeout_s)
    ]


def completed_checkpoints(rest_url: str, timeout_s: float = 5.0) -> int | None:
    """Checkpoints the running job has completed so far (it keeps counting across the job's own
    restarts), or None while no job runs."""
    try:
        jobs = [job["jid"] for job in _get(f"{rest_url}/jobs/overview", timeout_s)["jobs"] if job["state"] == "RUNNING"]
        if not jobs:
            return None
        return sum(int(_get(f"{rest_url}/jobs/{job}/checkpoints", timeout_s)["counts"]["completed"]) for job in jobs)
    except (OSError, ValueError, KeyError):
        return None
