"""devstack.run.LocalPlatform: the services of one stage start at once, later stages wait for
earlier ones, and whatever started is stopped in reverse, also when a start fails."""

from __future__ import annotations

import threading

import pytest

from devstack.run import LocalPlatform

BOUND_S = 30.0


class Recorded:
    def __init__(self, name: str, events: list, *, gate: threading.Barrier | None = None, fails: bool = False):
        self.name, self.events, self.gate, self.fails = name, events, gate, fails

    def start(self) -> None:
        if self.gate is not None:
            self.gate.wait(BOUND_S)  # breaks (and fails the test) unless the whole stage starts at once
        if self.fails:
            raise RuntimeError(f"{self.name} cannot start")
        self.events.append(("start", self.name))

    def stop(self) -> None:
        self.events.append(("stop", self.name))


def test_a_stage_starts_at_once_after_the_stages_before_it_and_stops_in_reverse():
    events: list = []
    together = threading.Barrier(2)
    first = Recorded("broker", events)
    jobs, migrations = Recorded("jobs", events, gate=together), Recorded("migrations", events, gate=together)
    last = Recorded("simulator", events)
    with LocalPlatform([first, (jobs, migrations), last]):
        assert events[0] == ("start", "broker") and events[-1] == ("start", "simulator")
        assert {name for _, name in events[1:3]} == {"jobs", "migrations"}
    assert [name for kind, name in events if kind == "stop"] == ["simulator", "migrations", "jobs", "broker"]


def test_a_failed_start_stops_what_started_including_its_own_stage_and_starts_nothing_later():
    events: list = []
    together = threading.Barrier(2)
    stage = (Recorded("jobs", events, gate=together), Recorded("migrations", events, gate=together, fails=True))
    later = Recorded("api", events)
    platform = LocalPlatform([Recorded("broker", events), stage, later])
    with pytest.raises(RuntimeError, match="migrations cannot start"), platform:
        pytest.fail("the platform must not come up")
    assert events == [("start", "broker"), ("start", "jobs"), ("stop", "jobs"), ("stop", "broker")]
