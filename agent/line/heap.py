"""The line process's heap: start-up's objects frozen, the free lists emptied every minute.

Why (docs/performance.md, "Footprint: what the agent grew"): the line process's Python objects
do not accumulate (tracemalloc snapshots and ``gc.get_objects()`` are flat over hours of
polls), yet pymalloc's allocated blocks grew by 50-70 KB a minute under an accelerated load,
all of it in the 48-96 byte size classes: tuples of 1 to 7 items on CPython's tuple free lists
(up to 2,000 kept per size, for reuse). A free list only grows: it holds the difference
between the most tuples of a size ever alive at once and the number alive now, so every new
peak (a burst of observations queued behind a busy CPU) leaves more of them, and their pools
stay in memory. Only a full collection empties the free lists, and the interpreter's own full
collections almost never run in this process (it allocates few containers that survive).

So, once the line is open, everything start-up created is moved out of the collector's sight
(``gc.freeze()``: the imported modules, the configuration, the line owner), and a full
collection runs every :data:`SWEEP_S` seconds from the receive loop. With start-up frozen it
walks only the few hundred objects created since, in 0.1-0.2 ms, so the line thread waits for
the interpreter lock no longer than for any message; and it empties the free lists, whose
blocks go back to their pools for any size to reuse.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

__all__ = ["SWEEP_S", "HeapSweeper"]

#: How often the line process's receive loop runs a full collection.
SWEEP_S = 60.0


class HeapSweeper:
    """Freeze start-up's objects once, then :meth:`maybe_sweep` collects every ``every`` s."""

    def __init__(self, every: float = SWEEP_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._next = clock() + every
        self.sweeps = 0

    def freeze(self) -> None:
        """Collect what start-up left, then keep the survivors out of every later collection
        (call before the line thread starts: this one walks every object)."""
        gc.collect()
        gc.freeze()

    def maybe_sweep(self) -> bool:
        """A full collection (which empties the free lists) when one is due."""
        now = self._clock()
        if now < self._next:
            return False
        gc.collect()
        self.sweeps += 1
        self._next = now + self._every
        return True
