"""The sandbox's time. Its timed behaviour (the Serverless agent shutting down after a switch,
an agent NOT_RUNNING once its heartbeats stop, runs' timestamps) reads one clock: real time when
serving, or a `ManualClock` that a test moves on, so that no test races a sub-second window."""

from __future__ import annotations

import threading
from collections.abc import Callable

Clock = Callable[[], float]


class ManualClock:
    """Time that moves only when told to: `clock.advance(0.7)` steps past a 0.6 s window."""

    def __init__(self, start: float = 1_800_000_000.0):
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("time does not go back")
        with self._lock:
            self._now += seconds
            return self._now
