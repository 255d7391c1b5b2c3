"""The hub's ingest path: group commit across terminals, and bounded memory for what is in flight.

Every terminal connection hands its parsed events to one :class:`GroupCommitter` and waits.
The committer takes *everything* submitted since its last transaction, from every terminal
(and the hub's own ``deviceOnline`` / ``deviceOffline`` events), and stores it in ONE
transaction on the store's writer thread; the transaction's window is the time the previous
one took, so the batches grow with the load and a quiet hub commits at once. A busy hub (the
previous transaction merged :data:`BUSY_GROUP` batches or more) starts the next one at least
:data:`MIN_GROUP_INTERVAL` after the previous one started: fewer, larger transactions and
fan-outs for the same events, as a hub behind its load makes anyway. Only
after the commit are the batches published (floor accounting, fan-out, acks), each batch in
the order it was submitted: storage order and fan-out order are the same for every terminal,
and no event is fanned out or acknowledged before it is stored. The next transaction is
written while the previous one is published; no lock is held across the I/O.

A failed transaction is retried batch by batch, so one batch that cannot be stored fails only
its own connection (``internal``, close 1011) and not the terminals it shared the
transaction with.

:class:`InflightGate` bounds the messages read but not yet answered: per connection, and for
the whole hub with a fair share per connection. A connection over its share is not read from;
websockets then stops reading its socket, TCP's window closes and the terminal's own send
window (``uplink.window``) fills: the protocol's backpressure, nothing is dropped.

The store is used through :class:`EventStore` only (one method), so another engine can
replace SQLite without touching this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hub.buckets import Buckets
from hub.store import EventWrite

log = logging.getLogger("hub.ingest")

#: Most events in one transaction (a backlog burst from many terminals is cut in several).
MAX_GROUP_EVENTS = 5000

#: Published groups waiting behind the one being published: the committer runs at most this
#: far ahead of the fan-out (each holds its events in memory).
_PUBLISH_QUEUE = 2

#: Least a connection may have in flight when the hub-wide limit is shared among many.
MIN_SHARE = 8

#: Seconds from the start of one transaction to the start of the next, at least, when the
#: previous one merged :data:`BUSY_GROUP` batches or more (a busy hub). Each transaction and
#: its fan-out cost the same whatever their size (the commit's fsync and thread hand-off,
#: a write to every client), and at 10,000 events/s a commit every 3 ms cost 15-20 µs of
#: CPU an event more than the larger groups of a hub that fell behind
#: (docs/performance.md, "Hub CPU per event: the group's size"). A quiet hub still commits
#: at once; a busy one waits at most this long for the others' batches.
MIN_GROUP_INTERVAL = 0.010

#: Batches in a transaction from which the hub counts as busy (:data:`MIN_GROUP_INTERVAL`).
BUSY_GROUP = 4

#: Bounds (seconds) of ``slot_hub_ingest_commit_duration_seconds``: a SQLite commit with
#: its fsync takes milliseconds; hundreds of them mean a slow disk or a checkpoint in the way.
COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                  5.0, 10.0)

#: Bounds (seconds) of ``slot_hub_ack_latency_seconds``: a busy hub's window
#: (:data:`MIN_GROUP_INTERVAL`) plus a commit plus the fan-out; seconds mean it is behind.
ACK_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
               30.0)

#: Bounds of ``slot_hub_ingest_transaction_events`` (up to :data:`MAX_GROUP_EVENTS`).
GROUP_EVENTS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class EventStore(Protocol):
    """The write path the ingest needs from a store (SQLite today; see docs/scaling.md)."""

    async def write_events(self, writes: Sequence[EventWrite], received_at: float
                           ) -> list[bool]:
        """Store ``writes`` in one transaction, in order; per write, False if its (source,
        seq) was already stored. Raise if nothing was stored. Transactions submitted one
        after the other commit in that order."""
        ...


#: Publishes one committed group: its batches in order, each with its "inserted" flags.
Publish = Callable[[Sequence[tuple[Sequence[EventWrite], Sequence[bool]]]], Awaitable[None]]


@dataclass(eq=False)
class _Batch:
    writes: list[EventWrite]
    done: asyncio.Future[list[bool]]
    submitted: float  # time.monotonic() at submit: the ack latency's start


@dataclass
class IngestStats:
    """Counters for tests, the load benchmark and ``GET /metrics`` (hub/metrics.py).

    The histograms are observed once per transaction (``commit_seconds``,
    ``group_events``) or once per acknowledged batch (``ack_seconds``), never per event.
    """

    transactions: int = 0
    batches: int = 0
    events: int = 0
    largest_group: int = 0  # most batches merged into one transaction
    failed_batches: int = 0
    #: transactions whose ``write_events`` raised (rolled back: nothing of them stored); a
    #: failed group is then stored batch by batch, each such try counted again if it fails
    failed_transactions: int = 0
    #: a committed transaction's ``write_events``, from the call to its return on the loop
    commit_seconds: Buckets = field(default_factory=lambda: Buckets(COMMIT_BUCKETS))
    #: a batch's submit to its resolution (stored and published: its ack may go out)
    ack_seconds: Buckets = field(default_factory=lambda: Buckets(ACK_BUCKETS))
    #: the writes of each committed transaction (duplicates included)
    group_events: Buckets = field(default_factory=lambda: Buckets(GROUP_EVENTS_BUCKETS))


class GroupCommitter:
    """One transaction per window for what all connections submitted; publish, then resolve.

    ``submit`` returns a future resolved with the batch's per-write "inserted" flags once the
    batch is stored AND ``publish`` has run for it (so the caller may acknowledge), or failed
    with the store's exception (nothing of the batch is stored then).
    """

    def __init__(self, store: EventStore, publish: Publish,
                 clock: Callable[[], float] = time.time,
                 max_group_events: int = MAX_GROUP_EVENTS,
                 min_interval: float = MIN_GROUP_INTERVAL) -> None:
        self._store = store
        self._min_interval = min_interval
        self._busy_until = 0.0  # loop time before which a new transaction waits
        self._publish = publish
        self._clock = clock
        self._max_group = max_group_events
        self._incoming: asyncio.Queue[_Batch] = asyncio.Queue()
        self._committed: asyncio.Queue[tuple[list[_Batch], list[list[bool] | BaseException]]] \
            = asyncio.Queue(maxsize=_PUBLISH_QUEUE)
        self._tasks: list[asyncio.Task[None]] = []
        self._intake_closed = False
        self.stats = IngestStats()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._commit_loop(), name="ingest-commit"),
                       asyncio.create_task(self._publish_loop(), name="ingest-publish")]

    async def stop(self) -> None:
        """Cancel the loops; batches not yet stored fail with CancelledError."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while not self._incoming.empty():
            self._incoming.get_nowait().done.cancel()
        while not self._committed.empty():
            for batch in self._committed.get_nowait()[0]:
                batch.done.cancel()

    def refuse(self) -> None:
        """Store nothing more beyond the transaction being committed (:meth:`close_intake`
        without its cancellations): a flag only, safe from a signal handler."""
        self._intake_closed = True

    def close_intake(self) -> None:
        """The hub stops: the transaction being committed finishes (then is published and
        acknowledged), and nothing else is stored: what is queued, or submitted later, fails
        with CancelledError at once (a terminal sends it again; nothing acknowledged is lost).

        An overloaded hub holds up to twice ``max_inflight_events`` here; committing them all
        first would keep a starved hub from exiting for many seconds (docs/operations.md).
        """
        self.refuse()
        while not self._incoming.empty():
            self._incoming.get_nowait().done.cancel()

    @property
    def queued(self) -> int:
        """Batches submitted and not yet in a transaction."""
        return self._incoming.qsize()

    def submit(self, writes: Sequence[EventWrite]) -> asyncio.Future[list[bool]]:
        done: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        if self._intake_closed:
            done.cancel()
        else:
            self._incoming.put_nowait(_Batch(list(writes), done, time.monotonic()))
        return done

    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        pending: _Batch | None = None
        while True:
            group = [pending if pending is not None else await self._incoming.get()]
            pending = None
            wait = self._busy_until - loop.time()
            if wait > 0 and not self._intake_closed:
                try:
                    await asyncio.sleep(wait)  # busy: other terminals' batches join this one
                except asyncio.CancelledError:
                    group[0].done.cancel()  # stop(): not stored, as the queued ones
                    raise
            if self._intake_closed:
                group[0].done.cancel()
                continue  # close_intake cancelled the rest
            size = len(group[0].writes)
            while not self._incoming.empty():
                batch = self._incoming.get_nowait()
                if size + len(batch.writes) > self._max_group:
                    pending = batch  # first of the next transaction
                    break
                group.append(batch)
                size += len(batch.writes)
            if len(group) >= BUSY_GROUP:
                self._busy_until = loop.time() + self._min_interval
            results = await self._commit(group, size)
            await self._committed.put((group, results))

    async def _commit(self, group: list[_Batch], size: int
                      ) -> list[list[bool] | BaseException]:
        writes = [w for batch in group for w in batch.writes]
        started = time.monotonic()
        try:
            inserted = await self._store.write_events(writes, self._clock())
        except Exception as exc:
            self.stats.failed_transactions += 1
            if len(group) == 1:
                return [exc]
            log.warning("a transaction of %d batches failed (%s); storing them one by one",
                        len(group), exc)
            return [await self._commit_one(batch) for batch in group]
        self._count(group, size, time.monotonic() - started)
        results: list[list[bool] | BaseException] = []
        start = 0
        for batch in group:
            results.append(inserted[start:start + len(batch.writes)])
            start += len(batch.writes)
        return results

    async def _commit_one(self, batch: _Batch) -> list[bool] | BaseException:
        started = time.monotonic()
        try:
            inserted = await self._store.write_events(batch.writes, self._clock())
        except Exception as exc:
            self.stats.failed_transactions += 1
            return exc
        self._count([batch], len(batch.writes), time.monotonic() - started)
        return inserted

    def _count(self, group: list[_Batch], size: int, seconds: float) -> None:
        s = self.stats
        s.transactions += 1
        s.batches += len(group)
        s.events += size
        s.largest_group = max(s.largest_group, len(group))
        s.commit_seconds.observe(seconds)
        s.group_events.observe(size)

    async def _publish_loop(self) -> None:
        while True:
            group, results = await self._committed.get()
            stored: list[tuple[Sequence[EventWrite], Sequence[bool]]] = []
            for batch, result in zip(group, results, strict=True):
                if isinstance(result, BaseException):
                    self.stats.failed_batches += 1
                    if not batch.done.done():
                        batch.done.set_exception(result)
                else:
                    stored.append((batch.writes, result))
            if stored:
                try:
                    # One call for the group: its frames are serialized once for every
                    # client and queued per chunk (hub/fanout.py).
                    await self._publish(stored)
                except Exception:
                    # Stored already: the acks are still due; the fan-out is what failed.
                    log.exception("publishing %d stored batches failed", len(stored))
            resolved = time.monotonic()
            ack_seconds = self.stats.ack_seconds
            for batch, result in zip(group, results, strict=True):
                if not isinstance(result, BaseException) and not batch.done.done():
                    batch.done.set_result(result)
                    ack_seconds.observe(resolved - batch.submitted)


@dataclass(eq=False)
class Credits:
    """What one connection holds of the hub's in-flight budget."""

    held: int = 0


@dataclass
class InflightGate:
    """Per-connection and hub-wide limits on messages read but not yet answered.

    A connection may read more while it holds less than ``per_connection`` and either the
    hub-wide total is under ``total`` or it holds less than its fair share
    (``total / connections``, at least :data:`MIN_SHARE`); the fair share keeps a quiet
    terminal from waiting behind the draining ones. The hub-wide total therefore stays under
    about twice ``total``.
    """

    total: int
    per_connection: int
    held: int = 0
    peak: int = 0
    waits: int = 0  # times a connection had to wait for room (backpressure applied)
    #: The hub stops: nothing more is read, and nobody waits for room any longer.
    closed: bool = False
    _members: set[Credits] = field(default_factory=set)
    _room: asyncio.Event = field(default_factory=asyncio.Event)

    def join(self) -> Credits:
        credits = Credits()
        self._members.add(credits)
        return credits

    def leave(self, credits: Credits) -> None:
        self.release(credits, credits.held)
        self._members.discard(credits)

    def allowance(self, credits: Credits) -> int:
        """How many more messages this connection may read now (0: wait)."""
        share = max(MIN_SHARE, self.total // max(1, len(self._members)))
        mine = min(self.per_connection, share) - credits.held
        hub_wide = self.total - self.held
        return max(0, min(self.per_connection - credits.held, max(hub_wide, mine)))

    async def wait_for_room(self, credits: Credits) -> None:
        """Until this connection may read more, or the gate is closed."""
        if self.closed or self.allowance(credits) > 0:
            return
        self.waits += 1
        while not self.closed and self.allowance(credits) <= 0:
            self._room.clear()
            await self._room.wait()

    def close(self) -> None:
        """The hub stops: wake every connection waiting for room (it reads no more)."""
        self.closed = True
        self._room.set()

    def take(self, credits: Credits, n: int) -> None:
        credits.held += n
        self.held += n
        self.peak = max(self.peak, self.held)

    def release(self, credits: Credits, n: int) -> None:
        if n <= 0:
            return
        n = min(n, credits.held)
        credits.held -= n
        self.held -= n
        self._room.set()
