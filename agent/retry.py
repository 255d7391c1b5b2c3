"""Backoff schedules from tenacity, for every place the agent retries.

Where a plain call is retried (connecting to the control socket) ``tenacity.Retrying`` runs
the loop itself. Where the loop must keep doing other work between attempts (the pipeline
takes new observations while the disk is full; the uplink waits on its stop event between
connections), :func:`delays` turns a tenacity wait strategy into the successive delays, so the
schedule is still tenacity's and the loop stays where it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from tenacity import RetryCallState, wait_exponential

__all__ = ["delays", "doubling", "jittered_doubling"]


def delays(wait: Callable[[RetryCallState], float]) -> Iterator[float]:
    """The delay before each retry that ``wait`` gives: attempt 1, 2, 3, ..."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    while True:
        yield wait(state)
        state.attempt_number += 1


def doubling(first: float, cap: float) -> Iterator[float]:
    """``first``, doubling up to ``cap`` and staying there."""
    return delays(wait_exponential(multiplier=first, max=cap))


def jittered_doubling(first: float, cap: float, rng: Callable[[], float]) -> Iterator[float]:
    """:func:`doubling` with each delay ``d`` drawn from [d/2, d] by ``rng`` (0..1), so that a
    floor of agents restarted together does not reconnect in step."""
    for delay in doubling(min(first, cap), cap):
        yield delay * (0.5 + 0.5 * rng())
