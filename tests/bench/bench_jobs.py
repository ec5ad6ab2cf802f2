"""Benchmark of the stream jobs on Kafka: events/s and Flink CPU per event of every pipeline
together (`python -m jobs all --bounded` semantics: the Kafka sources, parse, dead letters,
windows, alarms, KPIs and the exactly-once Kafka sinks, committed on checkpoints), beside a bare
Kafka -> Flink SQL pass-through (the same sources with their watermarks, into a blackhole sink)
measured in the same run as the baseline.

The sample set is produced once into a broker of the benchmark's own; each run then reads every
topic from its beginning to its end (a consumer group and transactional ids of its own) and
finishes. Both jobs run once to warm up, then in timed rounds whose medians count: each run
generates and compiles its own operator code, and the JVM's first run of it is cold. CPU is the
JVM's (user + system, from /proc): the mini-cluster runs in the JVM PyFlink starts, and the Python
functions run inside it too (thread mode). It is read when the job has been submitted and when it
has finished, so it includes the job's start (task deployment, operator code generation, the
Python workers) but not the planning.

    python -m tests.bench.bench_jobs [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from contracts.topics import ALL_TOPICS
from devstack import Broker
from jobs import JOB_NAMES, runner
from jobs.config import JobConfig
from jobs.tables import create_source, short
from tests.bench import utc_stamp
from tests.support.jobs_sample import build

RESULTS = Path(__file__).parent / "results" / "jobs.json"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _jvm_pid() -> int:
    """The JVM PyFlink launched as this process's child (its gateway and the mini-cluster; the
    broker's JVM is a child too)."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        parent = text[text.rindex(")") + 2 :].split()[1]
        if parent == me and b"PythonGatewayServer" in command:
            return int(stat.parent.name)
    raise RuntimeError("no PyFlink JVM among this process's children")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat, utime and stime)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Meter:
    """Wall time and JVM CPU from `start()` (the job submitted) to `stop()` (it finished)."""

    def start(self) -> None:
        self.pid = _jvm_pid()
        self.cpu, self.wall = _cpu_s(self.pid), time.monotonic()

    def stop(self) -> tuple[float, float]:
        return time.monotonic() - self.wall, _cpu_s(self.pid) - self.cpu


def bare_pass_through(config: JobConfig) -> tuple[float, float]:
    """(seconds, JVM CPU seconds) to read every topic, rows with their event time and watermark,
    into a blackhole sink: what reading alone costs."""
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import Schema, StreamTableEnvironment, TableDescriptor

    env = StreamExecutionEnvironment.get_execution_environment(runner.flink_configuration(config))
    t_env = StreamTableEnvironment.create(env)
    statements = t_env.create_statement_set()
    for family in config.families:
        create_source(t_env, config, family)
        table = t_env.sql_query(f"SELECT line, rowtime FROM src_{short(family)}")
        schema = Schema.new_builder().from_row_data_type(table.get_schema().to_row_data_type()).build()
        sink = f"out_{short(family)}"
        t_env.create_temporary_table(sink, TableDescriptor.for_connector("blackhole").schema(schema).build())
        statements.add_insert(sink, table)
    statements.attach_as_datastream()
    client = env.execute_async("bare pass-through")
    meter = Meter()
    meter.start()
    client.get_job_execution_result().result()
    return meter.stop()


def full_jobs(config: JobConfig) -> tuple[float, float]:
    """(seconds, JVM CPU seconds) of every pipeline over every topic (jobs.runner.run, as `python -m
    jobs all --bounded --start-from earliest` runs it)."""
    meter = Meter()
    status = runner.run(config, on_submitted=meter.start)
    assert status == "FINISHED", status
    return meter.stop()


def run_bench(quick: bool = False) -> dict:
    # 227k events (3 h of 25 vehicles): the steady state, not the start, dominates the full job.
    steps, vehicles = (720, 10) if quick else (2160, 25)
    rounds_wanted = 1 if quick else 2
    work = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    try:
        return _measure(work, build(steps=steps, vehicles=vehicles), rounds_wanted)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(work: Path, sample, rounds_wanted: int) -> dict:
    with Broker(log_path=work / "broker.log") as broker:
        broker.create_topics(ALL_TOPICS)
        started = time.monotonic()
        events = sample.produce(broker.bootstrap)
        print(f"bench jobs: {events:,} events produced in {time.monotonic() - started:.1f} s", file=sys.stderr)

        def config(run: str) -> JobConfig:
            return JobConfig(
                jobs=JOB_NAMES,
                bootstrap_servers=broker.bootstrap,
                checkpoint_dir=(work / f"ck-{run}").as_uri(),
                group_id=f"bench-{run}",
                start_from="earliest",
                bounded=True,
                checkpoint_interval_s=1,  # as deployed (charts/flink-job, make run)
            )

        rounds = []
        for run in ("warm-up", *(f"round-{n}" for n in range(1, rounds_wanted + 1))):
            measured = {"bare": bare_pass_through(config(f"{run}-bare")), "full": full_jobs(config(f"{run}-full"))}
            (bare_s, bare_cpu), (full_s, full_cpu) = measured["bare"], measured["full"]
            print(
                f"bench jobs: {run}: full {events / full_s:,.0f} events/s, {full_cpu / events * 1e6:.0f} us CPU/event;"
                f" bare {events / bare_s:,.0f} events/s, {bare_cpu / events * 1e6:.1f} us CPU/event",
                file=sys.stderr,
            )
            if run != "warm-up":
                rounds.append(measured)
    # The median round of each: the shared cores drift by up to 2x between minutes.
    seconds = {name: statistics.median(r[name][0] for r in rounds) for name in ("bare", "full")}
    cpu = {name: statistics.median(r[name][1] for r in rounds) for name in ("bare", "full")}
    rate = {name: events / seconds[name] for name in seconds}
    cpu_us = {name: cpu[name] / events * 1e6 for name in cpu}
    ratio = rate["full"] / rate["bare"]
    return {
        "component": "jobs",
        "figures": {
            "events": events,
            "full_events_per_s": round(rate["full"]),
            "full_cpu_us_per_event": round(cpu_us["full"], 1),
            "full_events_per_s_rounds": [round(events / r["full"][0]) for r in rounds],
        },
        "baseline": {
            "bare_kafka_pass_through_events_per_s": round(rate["bare"]),
            "bare_kafka_pass_through_cpu_us_per_event": round(cpu_us["bare"], 2),
        },
        "ratios": {
            "full_vs_bare": round(ratio, 3),
            "full_cpu_per_event_vs_bare": round(cpu_us["full"] / cpu_us["bare"], 1),
        },
        "targets": {"full_vs_bare": ">= 0.5", "full_events_per_s": ">= 20000"},
        "met": ratio >= 0.5 and rate["full"] >= 20000,
    }


def run(quick: bool = False) -> dict:
    """The bench interface (tests/bench/README.md)."""
    return run_bench(quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="about 30k events and one timed round")
    result = run_bench(parser.parse_args().quick)
    for group in ("figures", "baseline", "ratios"):
        for name, value in result[group].items():
            print(f"{group:9} {name:42} {value}")
    print(f"met: {result['met']}")
    RESULTS.parent.mkdir(exist_ok=True)
    result["measured_at"] = utc_stamp()
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
