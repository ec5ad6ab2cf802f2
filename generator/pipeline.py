"""The simulator in a child process, so generating events and producing them to Kafka use two
cores instead of taking turns on one. Output is identical to an in-process Simulator: the child
runs the very same one and ships its batches (bounded by the pipe's buffer) in order.

Use it for high rates (`--pipeline`); at a few thousand events per second one process is plenty.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter

from generator.config import SimConfig
from generator.scenarios import Expectations
from generator.simulator import Simulator

CHUNK_EVENTS = 2000
"""Rounds are grouped into chunks of at least this many events, to amortise the pipe's cost."""


def _generate(config: SimConfig, validate: bool, out, control) -> None:
    simulator = Simulator(config, validate=validate)
    chunk: list = []
    try:
        while not control.poll():
            batch = simulator.next_batch()
            chunk += batch
            if len(chunk) >= CHUNK_EVENTS or not batch:
                out.send((chunk, dict(simulator.per_topic)))
                chunk = []
            if not batch:
                break
        out.send(("end", simulator.expectations()))
    except (BrokenPipeError, EOFError, KeyboardInterrupt):
        pass  # the parent went away or is stopping: nothing left to deliver


class PipelinedSimulator:
    """A BatchSource like Simulator, whose batches come from a child process."""

    def __init__(self, config: SimConfig, validate: bool = False):
        self.config = config
        self.per_topic: Counter[str] = Counter()
        self._expectations: Expectations | None = None
        context = multiprocessing.get_context("spawn")  # no inherited threads or sockets
        self._inbox, outbox = context.Pipe(duplex=False)
        control_in, self._control_out = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_generate, args=(config, validate, outbox, control_in), name="fleet-generator", daemon=True
        )
        self._process.start()
        outbox.close()
        control_in.close()
        self._finished = False

    def due_s(self, index: int) -> float:
        return index / self.config.rate

    def next_batch(self) -> list[tuple[str, str, str]]:
        if self._finished:
            return []
        try:
            first, second = self._inbox.recv()
        except EOFError:
            self._finished = True
            self._process.join(5)
            raise RuntimeError(f"generator child process died (exit code {self._process.exitcode})") from None
        if first == "end":
            self._finished, self._expectations = True, second
            return []
        self.per_topic = Counter(second)
        return first

    def expectations(self) -> Expectations:
        """What the run promised; available once the child has finished (also after close())."""
        if self._expectations is None:
            raise RuntimeError("the pipelined simulator has not finished: no expectations yet")
        return self._expectations

    def close(self, timeout_s: float = 10.0) -> None:
        """Ask the child to stop, drain what it still sends, collect its expectations, reap it."""
        if self._process.pid is None:
            return
        if not self._finished:
            try:
                self._control_out.send("stop")
                while self._inbox.poll(timeout_s):
                    first, second = self._inbox.recv()
                    if first == "end":
                        self._expectations = second
                        break
            except (BrokenPipeError, EOFError):
                pass  # the child is already gone
            self._finished = True
        self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
