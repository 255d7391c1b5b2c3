"""The busy hub's transaction spacing (hub/ingest.py ``MIN_GROUP_INTERVAL``): after a
transaction that merged ``BUSY_GROUP`` batches or more, the batches that arrive in the next
interval go into one transaction; after a quiet one, a batch is committed at once. No time
is asserted: what is asserted is how the batches are grouped, and that every one is stored
and resolved in order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hub.ingest import BUSY_GROUP, GroupCommitter
from hub.store import EventWrite
from tests.support.ingest import HeldStore, one_event_batch


async def _publish(group: Sequence[tuple[Sequence[EventWrite], Sequence[bool]]]) -> None:
    return None


async def test_after_a_busy_transaction_the_next_batches_are_merged() -> None:
    store = HeldStore()
    # An interval far longer than the test's loop turns: the grouping, not the time, is
    # what is asserted (the stop below cancels nothing: every batch is settled first).
    ingest = GroupCommitter(store, _publish, min_interval=0.3)
    ingest.start()
    try:
        first = ingest.submit(one_event_batch(1))
        await asyncio.sleep(0)  # the first transaction starts with one batch (held)
        busy = [ingest.submit(one_event_batch(seq)) for seq in range(2, 2 + BUSY_GROUP)]
        store.release.set()
        await asyncio.wait_for(asyncio.gather(first, *busy), 5)
        assert store.committed == [[1], list(range(2, 2 + BUSY_GROUP))]
        # The last transaction was busy: these two, a few loop turns apart, share one.
        a = ingest.submit(one_event_batch(10))
        for _ in range(5):
            await asyncio.sleep(0)
        b = ingest.submit(one_event_batch(11))
        assert await asyncio.wait_for(asyncio.gather(a, b), 5) == [[True], [True]]
        assert store.committed[2:] == [[10, 11]]
    finally:
        await ingest.stop()


async def test_after_a_quiet_transaction_a_batch_is_committed_at_once() -> None:
    store = HeldStore()
    store.release.set()
    # However long the interval, a quiet hub does not wait for it.
    ingest = GroupCommitter(store, _publish, min_interval=3600.0)
    ingest.start()
    try:
        for seq in range(1, 4):
            assert await asyncio.wait_for(ingest.submit(one_event_batch(seq)), 5) == [True]
        assert store.committed == [[1], [2], [3]]
    finally:
        await ingest.stop()


async def test_stopping_while_waiting_for_the_interval_cancels_the_waiting_batch() -> None:
    store = HeldStore()
    ingest = GroupCommitter(store, _publish, min_interval=3600.0)
    ingest.start()
    try:
        first = ingest.submit(one_event_batch(1))
        await asyncio.sleep(0)
        busy = [ingest.submit(one_event_batch(seq)) for seq in range(2, 2 + BUSY_GROUP)]
        store.release.set()
        await asyncio.wait_for(asyncio.gather(first, *busy), 5)
        waiting = ingest.submit(one_event_batch(20))  # waits for the (hour-long) interval
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiting.done()
    finally:
        await ingest.stop()
    assert waiting.cancelled()
    assert [20] not in store.committed
