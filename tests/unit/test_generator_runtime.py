"""The run loop around the simulator: child-process pipeline, pacing, Prometheus metrics, stop."""

from __future__ import annotations

import threading
import time
import urllib.request
from datetime import UTC, datetime

import pytest

from devstack.ports import free_port, wait_until
from devstack.run import main as devstack_run
from generator import SimConfig, Simulator
from generator.pipeline import PipelinedSimulator
from generator.runner import Metrics, RunStats, run
from generator.sinks import KafkaSink, NullSink

T0 = datetime(2026, 3, 1, tzinfo=UTC)


class Collect:
    errors = 0

    def __init__(self):
        self.out = []

    def write(self, batch):
        self.out += batch

    def close(self):
        pass


def test_pipelined_simulator_gives_the_same_output_and_promises():
    config = SimConfig(start=T0, seed=9, count=6000, rate=50)
    piped, direct = Collect(), Collect()
    source = PipelinedSimulator(config)
    run(source, piped, threading.Event(), paced=False)
    reference = Simulator(config)
    run(reference, direct, threading.Event(), paced=False)
    assert piped.out == direct.out
    assert source.expectations().to_dict() == reference.expectations().to_dict()
    assert source.per_topic == reference.per_topic


def test_stopping_a_pipelined_run_reaps_the_child_and_keeps_its_promises():
    stop = threading.Event()
    source = PipelinedSimulator(SimConfig(start=T0, rate=100_000))  # continuous
    threading.Timer(0.5, stop.set).start()
    stats = run(source, NullSink(), stop, paced=False)
    assert stats.stopped_early and stats.sent > 0
    assert not source._process.is_alive()
    assert source.expectations().assignments  # collected from the child on the way out


def test_paced_run_follows_the_rate():
    config = SimConfig(start=T0, rate=200, count=100, scenarios=())
    started = time.monotonic()
    stats = run(Simulator(config), NullSink(), threading.Event(), paced=True)
    elapsed = time.monotonic() - started
    assert stats.sent == 100
    # Never ahead of the rate: the 100th event is due at 0.495 s. (Falling behind on a busy machine is
    # allowed; the bound only says the run ends.)
    assert 0.49 < elapsed < 60


def test_prometheus_metrics_are_served_from_the_run_counters():
    stats, source, sink = RunStats(), Simulator(SimConfig(start=T0, count=500, rate=1000)), NullSink()
    run(source, sink, threading.Event(), paced=False, stats=stats)
    port = free_port()
    server, thread = Metrics(stats, source, sink).serve(port)
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
        thread.join(5)
    tires = source.per_topic["fleet.tire-readings"]
    assert f'generator_events_total{{topic="fleet.tire-readings"}} {float(tires)}' in text
    assert "generator_delivery_errors_total 0.0" in text


def test_undeliverable_events_are_counted_as_errors_not_lost_silently():
    # Nothing listens on this port: librdkafka really fails to deliver (no mock involved).
    sink = KafkaSink(f"127.0.0.1:{free_port()}", {"message.timeout.ms": "300"}, flush_timeout_s=10)
    stats = run(Simulator(SimConfig(start=T0, count=25, rate=1000)), sink, threading.Event(), paced=False)
    assert (stats.sent, stats.errors) == (25, 25)
    # The last reason is a delivery report's or the client's own, whichever librdkafka sent last.
    assert any(reason in stats.last_error.lower() for reason in ("message timed out", "connection refused"))


def test_a_shorter_run_is_a_prefix_of_a_longer_one():
    def output(count):
        collected = Collect()
        run(Simulator(SimConfig(start=T0, seed=4, count=count, rate=50)), collected, threading.Event(), paced=False)
        return collected.out

    assert output(5000)[:1234] == output(1234)


def test_devstack_run_help_offers_the_generator_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        devstack_run(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--duration" in text and "--scenarios" in text and "--partitions" in text
    with pytest.raises(SystemExit) as exit_info:
        devstack_run(["--partitions", "0"])
    assert exit_info.value.code == 2
    assert "--partitions must be >= 1" in capsys.readouterr().err


def _scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def test_the_rate_gauge_follows_a_run_while_it_runs():
    """generator_rate_events_per_second is the run's rate so far during the run (it read 0 until the
    run ended, when nobody scrapes any more)."""
    stats, stop = RunStats(), threading.Event()
    source, sink = Simulator(SimConfig(start=T0, rate=200, scenarios=())), NullSink()  # continuous, paced
    runner = threading.Thread(target=run, args=(source, sink, stop), kwargs={"stats": stats})
    port = free_port()
    server, thread = Metrics(stats, source, sink).serve(port)
    runner.start()
    try:
        wait_until(lambda: stats.sent >= 50, 60, "50 events sent", interval_s=0.05)
        (line,) = [line for line in _scrape(port).splitlines() if line.startswith("generator_rate_events_per_second ")]
        assert 0 < float(line.split()[1]) < 250  # paced at 200/s (a slice may leave 10 ms early)
    finally:
        stop.set()
        runner.join(30)
        server.shutdown()
        thread.join(5)
