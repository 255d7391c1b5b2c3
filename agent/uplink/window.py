"""The uplink's sending side: the replies queue, the send window and the hub's acks.

:class:`SendWindow` holds what one terminal has sent and the hub has acknowledged, across
connections: replies (``actionAck``, ``actionResult``, ``pong``) go out first, then events,
never more than ``uplink.window`` sent and unacknowledged; each event comes as its ready frame
text (``OutboxReader.pending_frames``). The cumulative ``ack`` frees the window, and the outbox
cursor is advanced by :meth:`SendWindow.ack_loop`, which coalesces acks (the hub acks every
event; one fsync a second is enough). The connection, its handshake and the reconnects are
:mod:`agent.uplink.client`'s.

:class:`WorkerCalls` runs the blocking outbox calls in worker threads and keeps track of them,
so the reader connection is closed only once none of them still uses it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection

from agent.config import UplinkConfig
from agent.ops.metrics import AgentMetrics
from agent.store.outbox import EventFrame, Outbox, OutboxError, OutboxReader
from api import wire

__all__ = ["SendWindow", "WorkerCalls"]

log = logging.getLogger("agent.uplink.client")
_T = TypeVar("_T")


class WorkerCalls:
    """Blocking outbox calls in worker threads, tracked until they end."""

    def __init__(self) -> None:
        self._calls: set[asyncio.Future[Any]] = set()

    def start(self, fn: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """Start ``fn(*args)`` in a worker thread and keep track of it.

        Cancelling a caller that awaits it does not stop the thread; :meth:`drain` waits for
        every such call (closing an SQLite connection in use by another thread is undefined
        behaviour).
        """
        future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        self._calls.add(future)
        future.add_done_callback(self._calls.discard)
        return future

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(*args)`` in a worker thread (see :meth:`start`)."""
        return await asyncio.shield(self.start(fn, *args))

    async def drain(self) -> None:
        """Wait until no call started here still runs."""
        if self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)


class SendWindow:
    """What was sent and acknowledged; the send loop and the ack bookkeeping.

    ``outbox`` is the writer: only ``ack``, ``resync`` and ``last_seq`` are called on it, from
    worker threads (``calls``).
    """

    def __init__(self, config: UplinkConfig, outbox: Outbox, calls: WorkerCalls, *,
                 metrics: AgentMetrics | None, fallback_poll_s: float,
                 max_pending_replies: int, ack_persist_delay_s: float = 0.0) -> None:
        self._config = config
        self._outbox = outbox
        self._calls = calls
        self._metrics = metrics
        self._fallback = fallback_poll_s
        self._ack_delay = ack_persist_delay_s
        self.wake = asyncio.Event()
        self._ack_wake = asyncio.Event()
        self.replies: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=max_pending_replies)
        #: (seq, monotonic time sent) of the events sent and not yet acknowledged
        self.in_flight: collections.deque[tuple[int, float]] = collections.deque()
        self.hub_acked = 0  # highest seq the hub acknowledged (this run)
        self.sent = 0  # highest seq sent on the current connection
        self.last_ack_at: float | None = None
        self._persisted_ack = 0

    def reply(self, frame: dict[str, Any]) -> None:
        """Queue an ``actionAck``/``actionResult`` (or ``pong``) frame for the hub."""
        if len(self.replies) == self.replies.maxlen:
            log.warning("uplink: reply queue full; dropping the oldest %s frame (the result is "
                        "also in an actionCompleted event)", self.replies[0].get("type"))
        self.replies.append(frame)
        self.wake.set()

    def apply_welcome(self, acked: int) -> None:
        """Runs in a worker thread: align the outbox with what the hub already holds."""
        if acked > self._outbox.last_seq:
            log.warning("uplink: the hub holds seqs up to %d, beyond this outbox's last seq "
                        "%d (the outbox was replaced); continuing the numbering after it",
                        acked, self._outbox.last_seq)
            self._outbox.resync(acked)
        elif acked > 0:
            self._outbox.ack(acked)
        self.hub_acked = acked
        self._persisted_ack = max(self._persisted_ack, acked)
        self.sent = acked
        self.in_flight.clear()

    async def send_loop(self, ws: ClientConnection, reader: OutboxReader) -> None:
        """Send replies first, then events, never more than ``window`` unacknowledged.

        While one batch goes out, the next one is already being read (``ahead``, in a worker
        thread), so a backlog drains without the sender waiting for SQLite between batches.
        Frames read but not yet allowed out by the window wait in ``ready``.

        The wake-up is cleared just before a read starts, and only there: a commit after that
        moment sets it again. A read that comes back with less than a batch has seen
        everything committed before it started (``settled``): once that is sent, the sender
        waits without reading once more, and no read ahead is started. An event trickling in
        (a game's) costs one read; a backlog is read a full batch ahead.
        """
        window = self._config.window
        batch = self._config.batch
        ready: collections.deque[EventFrame] = collections.deque()
        ahead: asyncio.Future[list[EventFrame]] | None = None
        settled = False  # the last read, started after the last clear, was not a full batch
        while True:
            while self.replies:
                await ws.send(wire.encode(self.replies[0]))
                self.replies.popleft()
            room = window - len(self.in_flight)
            if room > 0:
                if not ready and ahead is not None:
                    got = await asyncio.shield(ahead)
                    ahead = None
                    ready.extend(got)
                    settled = len(got) < batch
                if not ready and not (settled and not self.wake.is_set()):
                    self.wake.clear()  # before the read: a wake-up from now on is not lost
                    got = await self._calls.run(self._read, reader, self.sent)
                    ready.extend(got)
                    settled = len(got) < batch
                if ready:
                    if ahead is None and not settled:
                        self.wake.clear()  # the read ahead starts after it (see above)
                        ahead = self._calls.start(self._read, reader, ready[-1].seq)
                    for _ in range(min(room, len(ready))):
                        frame = ready.popleft()
                        # Counted as sent before the send: ``send`` may wait for the socket
                        # buffer to drain after writing the frame, and the hub's ack of it
                        # can be read meanwhile (on_ack counts acks only up to ``sent``).
                        self.in_flight.append((frame.seq, time.monotonic()))
                        self.sent = frame.seq
                        await ws.send(frame.text)
                    continue
            if self.replies:
                continue  # queued while a read was awaited (its wake-up may have been cleared)
            if room <= 0:
                # Waiting for the window: only an ack that frees it wakes this; what was
                # committed meanwhile is read once there is room (not settled).
                self.wake.clear()
                settled = False
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that races with the event being set.
                async with asyncio.timeout(self._fallback):
                    await self.wake.wait()
            settled = False  # woken (or the fallback timer): read again

    def _read(self, reader: OutboxReader, after: int) -> list[EventFrame]:
        """Runs in a worker thread: the next batch after ``after``. Acknowledged events still
        stored count too: after a ``welcome`` whose ``ackedSeq`` is below the outbox cursor
        (a hub restored from a backup) the hub gets again what it lost; otherwise ``sent``
        is never below the cursor and nothing acknowledged is read."""
        return reader.pending_frames(after, self._config.batch, acked_too=True)

    def on_ack(self, up_to: int) -> None:
        if up_to > self.sent:
            # The hub cannot hold what it was not sent (its welcome said what it held): count
            # the ack only up to what was sent, so that no event is marked acknowledged in the
            # outbox without having been sent (docs/uplink.md, "Sending").
            log.warning("uplink: hub acked up to %d, beyond the %d sent; taken as an ack up "
                        "to %d", up_to, self.sent, self.sent)
            up_to = self.sent
        was_full = len(self.in_flight) >= self._config.window
        now = time.monotonic()
        while self.in_flight and self.in_flight[0][0] <= up_to:
            _, sent_at = self.in_flight.popleft()
            if self._metrics is not None:
                self._metrics.uplink_ack_latency.observe(now - sent_at)
        if up_to > self.hub_acked:
            self.hub_acked = up_to
            self._ack_wake.set()
        self.last_ack_at = time.time()
        if was_full:
            self.wake.set()  # the window has room again (otherwise the sender is not waiting
            # for the window, and a wake-up would only cost it a read that finds nothing)

    async def ack_loop(self) -> None:
        """Persist the hub's acks, at most once per ``ack_persist_delay_s``: the hub acks
        every event, and a game's events come one commit at a time, so persisting each ack
        would be an fsync per event. The cursor on disk may lag the hub by that delay: after
        a crash the next ``welcome`` carries the hub's ``ackedSeq`` (:meth:`apply_welcome`),
        so nothing is sent twice because of it; a stop persists the last ack."""
        while True:
            await self._ack_wake.wait()
            if self._ack_delay > 0:
                await asyncio.sleep(self._ack_delay)
            self._ack_wake.clear()
            await self.persist_ack()

    async def persist_ack(self) -> None:
        """Advance the outbox cursor to the hub's latest ack (one fsync for many acks)."""
        target = self.hub_acked
        if target <= self._persisted_ack:
            return
        try:
            await self._calls.run(self._outbox.ack, target)
        except OutboxError as exc:
            log.error("uplink: cannot record the hub's ack %d: %s", target, exc)
            return
        self._persisted_ack = max(self._persisted_ack, target)
