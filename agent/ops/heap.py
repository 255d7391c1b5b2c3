"""The agent's heap: start-up's objects frozen, CPython's free lists emptied every minute.

Why (docs/performance.md, "Footprint: what the agent grew"): neither process's Python objects
accumulate (tracemalloc snapshots and ``gc.get_objects()`` are flat over hours of polls), yet
pymalloc's allocated blocks grew by 60-130 KB a minute under an accelerated load, all of it
in the 48-96 byte size classes: tuples of 1 to 7 items on CPython's tuple free lists (up to
2,000 kept per size, for reuse). A free list only grows: it holds the difference between the
most tuples of a size ever alive at once and the number alive now, so every new peak (a burst
of observations queued behind a busy CPU) leaves more of them, and their pools stay in memory.
Only a full collection empties the free lists, and the interpreter's own full collections are
rare in the line process (it allocates few containers that survive) and cost the daemon a
walk of its 42,000 start-up objects each time.

So, once a process has started, everything start-up created is moved out of the collector's
sight (``gc.freeze()``: the imported modules, the configuration, the wired parts), and a full
collection runs every :data:`SWEEP_S` seconds: in the line process from its receive loop
(agent/line/child.py), in the daemon from a task of its event loop (agent/daemon.py, for
``slot-agent run`` only: a freeze is for the whole interpreter, not for a test's). With
start-up frozen it walks only the objects created since, in 0.1-0.3 ms, so nothing waits for
the interpreter lock longer than for any message; and it empties the free lists, whose blocks
go back to their pools for any size to reuse.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

__all__ = ["SWEEP_S", "HeapSweeper"]

#: How often each process runs a full collection.
SWEEP_S = 60.0


class HeapSweeper:
    """Freeze start-up's objects once, then collect every ``every`` seconds: :meth:`sweep`
    from a timer, or :meth:`maybe_sweep` from a loop that wakes often."""

    def __init__(self, every: float = SWEEP_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._next = clock() + every
        self.sweeps = 0
        self.frozen = False

    def freeze(self) -> None:
        """Collect what start-up left, then keep the survivors out of every later collection
        (call before time-critical threads start: this one collection walks every object)."""
        gc.collect()
        gc.freeze()
        self.frozen = True

    def sweep(self) -> None:
        """A full collection, which empties the free lists."""
        gc.collect()
        self.sweeps += 1
        self._next = self._clock() + self.every

    def maybe_sweep(self) -> bool:
        """:meth:`sweep` when one is due."""
        if self._clock() < self._next:
            return False
        self.sweep()
        return True
