from __future__ import annotations

import socket
import time
from collections.abc import Callable

_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port nobody listens on right now (bind to port 0 and read it back), never one this
    process handed out before: services bind theirs seconds later (a JVM's start on a busy
    machine), and the kernel may offer a released port again meanwhile."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_until(ready: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")
