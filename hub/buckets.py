"""A histogram the event loop fills without a lock; ``GET /metrics`` reads it (hub/metrics.py).

prometheus-client's ``Histogram.observe`` takes a lock on every call (its values may be
updated from several threads): measured at 0.69 µs of CPU a call on this project's 2-core
machine, against 0.10 µs for :meth:`Buckets.observe` (bench/hub_metrics_cost.py;
docs/operations.md, "The hub's metrics"). The hub's ingest observes on the event loop only,
and the scrape reads on the same loop, so no lock is needed: a count and the sum are updated
together with no ``await`` between them, and a scrape never sees one without the other.

Observed per transaction or per batch, never per event (the hub's CPU per event is its
capacity: docs/performance.md).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence


class Buckets:
    """Counts of values at or below each bound (Prometheus' ``le``), the rest over the last
    bound (``+Inf``), and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("bounds must be increasing and not empty")
        self.bounds = tuple(float(b) for b in bounds)
        #: per bucket (not cumulative); the last one is over the last bound
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound counts in that bound's bucket (le: <=).
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(bound, count at or below it)`` for each bound, then ``(inf, count)``."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((bound, running))
        out.append((math.inf, running + self.counts[-1]))
        return out
