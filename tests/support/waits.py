"""The two bounded waits every test uses: never a sleep to wait for an outcome.

``wait_until`` blocks (threads, subprocesses); ``wait_for`` yields to the event loop. Both
re-check a cheap predicate until it is truthy and return its value, or raise AssertionError
after ``timeout`` seconds naming what was awaited (``what`` may be a callable, evaluated then,
to show the last state).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["wait_for", "wait_until"]

T = TypeVar("T")

#: Generous on purpose: two busy cores run the whole suite and its subprocesses.
DEFAULT_TIMEOUT_S = 20.0


def _timed_out(timeout: float, what: str | Callable[[], str], pred: object) -> AssertionError:
    text = what() if callable(what) else what
    return AssertionError(f"not within {timeout} s: {text or pred}")


def wait_until(pred: Callable[[], T], timeout: float = DEFAULT_TIMEOUT_S,
               what: str | Callable[[], str] = "", *, interval: float = 0.005) -> T:
    """Block until ``pred()`` is truthy; return that value."""
    deadline = time.monotonic() + timeout
    pacing = threading.Event()  # never set: a bounded pause between two checks
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, what, pred)
        pacing.wait(interval)


async def wait_for(pred: Callable[[], T], timeout: float = DEFAULT_TIMEOUT_S,
                   what: str | Callable[[], str] = "", *, interval: float = 0.005) -> T:
    """The same on an event loop: yields between checks."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, what, pred)
        await asyncio.sleep(interval)
