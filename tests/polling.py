"""Readiness polling with a deadline in seconds, never a count of tries: a loaded CI machine
gets the same patience as a quiet laptop, and a hung wait still fails instead of hanging CI.
These are waits for something to become true, not timing assertions."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

PATIENCE_S = 60.0


def poll_until(ready: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Whether ``ready()`` became true within ``timeout`` seconds (checked once more at the end)."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_until(ready: Callable[[], bool], what: str, timeout: float = PATIENCE_S,
               interval: float = 0.05) -> None:
    """Like ``poll_until``, but a wait that runs out fails the test naming ``what``."""
    if not poll_until(ready, timeout, interval):
        raise AssertionError(f"{what}: not within {timeout:g} s")


async def wait_until_async(ready: Callable[[], bool], pause: Callable[[], Awaitable[object]],
                           what: str, timeout: float = PATIENCE_S) -> None:
    """``pause`` lets the app run between checks (e.g. ``lambda: pilot.pause(0.02)``), and once
    more at the end so that a screen that just appeared has composed its widgets."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        await pause()
    await pause()
