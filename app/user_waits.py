"""Time a job's threads spend waiting for the user (a host-key question), so a node's time can
leave it out: the node's time column says how long the node took, not how long the modal was
open.

Kept per thread: each node runs in one pool thread, and the question about its host key is
asked from that thread (inside its SSH connect). ``clock`` is injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Clock = Callable[[], float]


class UserWaits:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._local = threading.local()

    def total(self) -> float:
        """Seconds the calling thread has waited for the user so far (ever: callers subtract
        the value they saw when they started)."""
        return float(getattr(self._local, "seconds", 0.0))

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Count the time inside the block as waiting for the user (on this thread)."""
        started = self.clock()
        try:
            yield
        finally:
            self._local.seconds = self.total() + max(0.0, self.clock() - started)


class Stopwatch:
    """Times one piece of work on the current thread, leaving out its waits for the user."""

    def __init__(self, waits: UserWaits) -> None:
        self.waits = waits
        self.started = waits.clock()
        self.waited_before = waits.total()

    def waited(self) -> float:
        return self.waits.total() - self.waited_before

    def elapsed(self) -> float:
        """Seconds since the start, without the time spent waiting for the user."""
        return max(0.0, self.waits.clock() - self.started - self.waited())
