"""The garbage collector's thresholds for a hub process (``slot-agent hub``).

Measured under floor load (docs/performance.md, "Garbage collection"): with CPython's
default thresholds (700, 10, 10) a hub with 3,000 terminals at 4,000 events/s spent 30 %
of its CPU in the cyclic garbage collector, and each full collection (ten in 20 s, over the
hundreds of thousands of objects of 3,000 connections) stopped the event loop for up to
350 ms. The objects of an event in flight (its frame, its batch, futures) live for a
commit, a few hundred milliseconds: collected every 700 allocations, they survive two
young collections, are promoted to the oldest generation, and the promotions trigger the
full collections. Collecting the young generation every :data:`YOUNG_THRESHOLD`
allocations instead lets nearly all of them die by reference count first: in the same
run no full collection happened and the collector's share fell from 3.3 s to 0.5 s.

Nothing is disabled or frozen: cyclic garbage (a closed connection's objects) is still
collected, only less often. Set once for the process, by the command that owns it.
"""

from __future__ import annotations

import gc

#: Allocations (less deallocations) of tracked objects between two young collections.
YOUNG_THRESHOLD = 50_000


def tune_gc() -> tuple[int, int, int]:
    """Set the hub's thresholds; return the previous ones."""
    previous = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, previous[1], previous[2])
    return previous
