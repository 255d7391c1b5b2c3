"""Several hub instances serving one floor from one PostgreSQL database (docs/scaling.md).

Each instance stores what its own terminals send and fans it out to its own clients, as a
single hub does. What the other instances' clients must see travels through PostgreSQL
``LISTEN``/``NOTIFY``, with the stored row's id as the payload and the row as the message:

- events: the transaction that stores a batch notifies the ids of the rows it inserted
  (hub/store_pg.py), delivered at its commit, in commit order. Every other instance reads
  those rows and publishes them like its own (floor state, fan-out, ``terminal`` states);
  ``deviceOnline`` / ``deviceOffline`` of another instance also set the terminal's online
  state here, and a ``deviceOnline`` elsewhere replaces this instance's older connection of
  the same terminal (4002), as a second connection to one hub does.
- notices (a row of ``notices``): ``operators``, a frame for every operator (action acks and
  results, so an operator sees the answers of a terminal connected to another instance);
  ``alertAck``, an alert acknowledgement for every client (one per alert, also when acknowledged
  with ``terminalId`` or ``all``); ``alertsRecount``, more alerts acknowledged at once than
  are sent one by one: every client gets a fresh snapshot; ``offer``, an action stored queued
  by an instance whose operator sent it, for the instance the terminal is connected to
  (which claims it atomically, hub/store_api.py ``claim_action``, and sends it).

Fan-out order: every instance fans out every event, its own included, in the order of the
event notifications, which PostgreSQL delivers in commit order, which is cursor order
(hub/store_pg.py, ``CURSOR_LOCK``). The ingest's publish step for this instance's own
batches (:meth:`Cluster.publish_own`) therefore only waits until the notification stream has
reached them; the frames themselves come from memory (``PgStore.on_commit``), not from the
database. A client of any instance thus gets events in cursor order, and the last cursor it
got tells exactly what it has (resuming, hub/replay.py, on this instance or another). After
the listening connection was lost, the rows committed meanwhile are read from the table by
cursor (:meth:`Cluster._catch_up`): nothing is skipped.

An instance skips its own notices (the payload starts with its ``origin``). The listener
keeps its own connection and never awaits between notifications (they are queued and handled
in order by a second task), so none is missed while rows are being read.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from hub.pg_notify import (
    EVENTS_BY_IDS,
    EVENTS_BY_IDS_FAST,
    EVENTS_CHANNEL,
    NOTICE_BY_ID,
    NOTICES_CHANNEL,
    frames_to_writes,
    parse_ranges,
    rows_to_writes,
)
from hub.store import EventWrite
from hub.store_pg import PgStore

log = logging.getLogger("hub.cluster")

#: Longest wait between two attempts to reconnect to the database (seconds).
RECONNECT_MAX_DELAY = 5.0

#: Seconds between two heartbeats of an instance (``instances.seen_at``).
HEARTBEAT_INTERVAL = 5.0

#: An instance silent this long (seconds, by the database's clock) is taken for dead: one of
#: the others reports its terminals that have not connected elsewhere as offline.
DEAD_AFTER = 30.0

#: Cursors read per query when catching up after a reconnection.
CATCH_UP_PAGE = 5000

class ClusterHub(Protocol):
    """The hooks a hub gives the cluster (hub/server.py)."""

    async def cluster_events(self, writes: Sequence[EventWrite]) -> None:
        """Publish events another instance stored."""
        ...

    async def cluster_publish(self, writes: Sequence[EventWrite], inserted: Sequence[bool]
                              ) -> None:
        """Publish this instance's own stored batch (the ingest's publish step)."""
        ...

    def cluster_notice(self, kind: str, body: str) -> None:
        """Handle a notice another instance sent."""
        ...

    def cluster_orphan(self, terminal_id: str) -> None:
        """The terminal's instance is dead and it has not connected elsewhere."""
        ...

    def cluster_revived(self) -> None:
        """This instance had been taken for dead: say again which terminals it holds."""
        ...


class Cluster:
    """The LISTEN side of one instance, and :meth:`publish` for its notices."""

    def __init__(self, hub: ClusterHub, store: PgStore) -> None:
        self._hub = hub
        self._store = store
        self.origin = store.origin
        self._listener: psycopg.AsyncConnection[Any] | None = None
        self._reader: psycopg.AsyncConnection[dict[str, Any]] | None = None
        self._inbox: asyncio.Queue[psycopg.Notify] = asyncio.Queue()
        self._current: psycopg.Notify | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.received = 0  # notifications from other instances handled (tests, logs)
        self.reconnects = 0  # times the database connection was lost and made again
        #: The highest cursor fanned out here: every stored event up to it was, in order.
        self.handled = 0
        self._serving = False
        self._own: dict[int, EventWrite] = {}  # own events stored, not yet fanned out
        self._registered = asyncio.Event()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []  # a heap by cursor
        self._tie = itertools.count()
        self.caught_up = 0  # rows read from the table after a reconnection (tests, logs)
        store.on_commit = self._committed

    async def start(self) -> None:
        """Connect and LISTEN (raises if the database cannot be reached), then serve."""
        await self._connect()
        self.handled = max(self.handled, await self._head())
        self._serving = True
        self._store.heartbeat()
        self._tasks = [asyncio.create_task(self._run(), name="cluster"),
                       asyncio.create_task(self._heartbeats(), name="cluster-heartbeat")]
        log.info("cluster: instance %s listening for the others", self.origin)

    async def stop(self) -> None:
        self._serving = False
        self._release_waiters()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
                await task
        self._tasks = []
        await self._disconnect()

    async def _connect(self) -> None:
        # Named, so an operator sees in pg_stat_activity which instance holds which.
        self._listener = await psycopg.AsyncConnection.connect(
            self._store.url, autocommit=True, application_name=f"slot-hub {self.origin} listen")
        for channel in (EVENTS_CHANNEL, NOTICES_CHANNEL):
            await self._listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        self._reader = await psycopg.AsyncConnection.connect(
            self._store.url, autocommit=True, row_factory=dict_row,
            application_name=f"slot-hub {self.origin} read")

    @property
    def listening(self) -> bool:
        """Connected to the database and LISTENing (False while reconnecting)."""
        return self._listener is not None and not self._listener.broken

    async def _disconnect(self) -> None:
        for conn in (self._listener, self._reader):
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    await conn.close()
        self._listener = self._reader = None

    def present_terminals(self) -> list[str]:
        """Terminals connected to some instance (hub/store_pg.py ``presence``)."""
        return self._store.present_terminals()

    def present(self, terminal_id: str, present: bool) -> None:
        """Record that a terminal is (no longer) connected to this instance."""
        try:
            self._store.set_present(terminal_id, present)
        except psycopg.Error as exc:
            log.error("cluster: cannot record %s as %s: %s", terminal_id,
                      "present" if present else "gone", exc)

    async def _heartbeats(self) -> None:
        """Say this instance is alive; take the terminals of dead instances."""
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            try:
                if self._store.heartbeat():
                    log.warning("cluster: this instance had been taken for dead; "
                                "announcing its terminals again")
                    self._hub.cluster_revived()
                for terminal_id in self._store.take_orphans(DEAD_AFTER):
                    self._hub.cluster_orphan(terminal_id)
            except psycopg.Error as exc:
                log.warning("cluster: heartbeat failed: %s", str(exc).splitlines()[0]
                            if str(exc) else type(exc).__name__)

    async def _run(self) -> None:
        """Serve; when the database connection is lost, reconnect (backoff up to
        :data:`RECONNECT_MAX_DELAY` s) and read what was stored meanwhile from the table."""
        delay = 0.1
        while True:
            try:
                if self._listener is None:
                    await self._connect()
                    await self._catch_up()
                    delay = 0.1
                await self._serve()
            except (psycopg.OperationalError, OSError) as exc:
                self.reconnects += 1
                log.warning("cluster: database connection lost (%s); reconnecting in %.1f s",
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                            delay)
                await self._disconnect()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY)

    async def _serve(self) -> None:
        """Listen and handle until one of them fails; raise what it raised."""
        tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._handle())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def publish(self, kind: str, body: str) -> None:
        """Store a notice for the other instances (they receive it at once)."""
        try:
            self._store.add_notice(kind, body, time.time())
        except psycopg.Error as exc:
            # Our own clients were served; the others miss this one message.
            log.error("cluster: cannot send a %s notice: %s", kind, exc)

    async def _listen(self) -> None:
        assert self._listener is not None
        async for note in self._listener.notifies():
            if note.channel == EVENTS_CHANNEL or not note.payload.startswith(self.origin + " "):
                self._inbox.put_nowait(note)

    # ------------------------------------------------------------ own events, in order

    def _committed(self, writes: Sequence[EventWrite], inserted: Sequence[bool]) -> None:
        """``PgStore.on_commit``: keep this instance's new events until their turn."""
        for write, new in zip(writes, inserted, strict=False):
            if new and write.frame["cursor"] > self.handled:
                self._own[write.frame["cursor"]] = write
        self._registered.set()

    async def publish_own_group(
            self, group: Sequence[tuple[Sequence[EventWrite], Sequence[bool]]]) -> None:
        """The ingest's publish step for a group of batches this instance stored (one
        transaction), batch by batch: :meth:`publish_own`."""
        for writes, inserted in group:
            await self.publish_own(writes, inserted)

    async def publish_own(self, writes: Sequence[EventWrite], inserted: Sequence[bool]
                          ) -> None:
        """The ingest's publish step for a batch this instance stored: returns once the
        batch was fanned out, in cursor order, by the notification handler."""
        fresh = [w for w, new in zip(writes, inserted, strict=True) if new]
        if len(fresh) < len(writes):  # duplicates: only counted
            dup = [w for w, new in zip(writes, inserted, strict=True) if not new]
            await self._hub.cluster_publish(dup, [False] * len(dup))
        if not fresh:
            return
        top = max(w.frame["cursor"] for w in fresh)
        if not self._serving:  # not started, or stopped: nothing else is fanned out
            for w in fresh:
                self._own.pop(w.frame["cursor"], None)
            await self._hub.cluster_publish(fresh, [True] * len(fresh))
            return
        if top <= self.handled:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (top, next(self._tie), done))
        await done

    def _advance(self, cursor: int) -> None:
        self.handled = max(self.handled, cursor)
        while self._waiters and self._waiters[0][0] <= self.handled:
            done = heapq.heappop(self._waiters)[2]
            if not done.done():
                done.set_result(None)

    def _release_waiters(self) -> None:
        for _, _, done in self._waiters:
            if not done.done():
                done.set_result(None)
        self._waiters.clear()

    async def _own_events(self, spans: list[tuple[int, int]]) -> list[EventWrite]:
        """This instance's events in ``spans``: from memory, once the store has handed
        them over (a batch whose write is still returning); from the table if a write
        failed after its commit (the store retried it and found it stored)."""
        wanted = [n for lo, hi in spans for n in range(lo, hi + 1)]
        while any(n not in self._own for n in wanted) and self._store.writes_in_flight:
            self._registered.clear()
            await self._registered.wait()
        found = {n: self._own.pop(n) for n in wanted if n in self._own}
        missing = [n for n in wanted if n not in found]
        if missing:
            for write in await self._read_events([(n, n) for n in missing]):
                found[write.frame["cursor"]] = write
        return [found[n] for n in sorted(found)]

    async def _publish_spans(self, spans: list[tuple[int, int]], own: bool) -> None:
        """Fan out the events of one notification, those at or below :attr:`handled`
        left out (read already when catching up)."""
        spans = [(max(lo, self.handled + 1), hi) for lo, hi in spans if hi > self.handled]
        if not spans:
            return
        if own:
            writes = await self._own_events(spans)
            if writes:
                await self._hub.cluster_publish(writes, [True] * len(writes))
        else:
            writes = await self._read_events(spans)
            if writes:
                await self._hub.cluster_events(writes)
        self._advance(max(hi for _, hi in spans))

    async def _head(self) -> int:
        assert self._reader is not None
        cur = await self._reader.execute("SELECT coalesce(max(n), 0) AS n FROM events")
        row = await cur.fetchone()
        return int(row["n"]) if row is not None else 0

    async def _catch_up(self) -> None:
        """Once listening again: fan out what was stored while the connection was lost,
        read from the table by cursor (cursors are in commit order, so every row up to the
        newest one now is there), this instance's own from memory."""
        head = await self._head()
        while self.handled < head:
            lo, hi = self.handled + 1, min(head, self.handled + CATCH_UP_PAGE)
            remote = await self._read_events([(lo, hi)])
            own = {n: w for n, w in self._own.items() if lo <= n <= hi}
            merged = {w.frame["cursor"]: (w, False) for w in remote}
            merged.update({n: (w, True) for n, w in own.items()})
            run: list[EventWrite] = []
            run_own = False
            for n in sorted(merged):
                write, is_own = merged[n]
                if run and is_own != run_own:
                    await self._publish_run(run, run_own)
                    run = []
                run.append(write)
                run_own = is_own
                self._own.pop(n, None)
            if run:
                await self._publish_run(run, run_own)
            self.caught_up += len(remote)
            self._advance(hi)
        log.warning("cluster: reconnected to the database; events stored meanwhile were read "
                    "from the table (up to cursor %d)", head)

    async def _publish_run(self, writes: list[EventWrite], own: bool) -> None:
        if own:
            await self._hub.cluster_publish(writes, [True] * len(writes))
        else:
            await self._hub.cluster_events(writes)

    async def _read_events(self, spans: list[tuple[int, int]]) -> list[EventWrite]:
        """The rows of an event notification: in one JSON document decoded at once, or,
        if a row cannot be read that way, row by row (hub/store.py skips what it cannot
        read back)."""
        assert self._reader is not None
        ranges = ([a for a, _ in spans], [b for _, b in spans])
        try:
            cur = await self._reader.execute(EVENTS_BY_IDS_FAST, ranges)
            found = await cur.fetchone()
            return frames_to_writes(found["rows"] if found is not None else [])
        except (psycopg.DataError, RecursionError, ValueError, TypeError,
                AttributeError, KeyError) as exc:
            log.warning("cluster: rows %s need reading one by one: %s", spans[:3],
                        str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__)
        cur = await self._reader.execute(EVENTS_BY_IDS, ranges)
        found = await cur.fetchone()
        return rows_to_writes(found["rows"] if found is not None else [])

    async def _handle(self) -> None:
        assert self._reader is not None
        while True:
            # A notification whose rows could not be read for a lost connection is taken
            # again first, once reconnected (the order stays the commit order).
            note = self._current if self._current is not None else await self._inbox.get()
            self._current = note
            origin, _, rest = note.payload.partition(" ")
            try:
                if note.channel == EVENTS_CHANNEL:
                    await self._publish_spans(parse_ranges(rest), own=origin == self.origin)
                else:
                    cur = await self._reader.execute(NOTICE_BY_ID, (int(rest),))
                    row = await cur.fetchone()
                    if row is not None:
                        self._hub.cluster_notice(row["kind"], row["body"])
                if origin != self.origin:
                    self.received += 1
            except (psycopg.OperationalError, OSError):
                raise  # _run reconnects; self._current is handled again then
            except Exception:
                log.exception("cluster: notification %r on %s failed", note.payload[:80],
                              note.channel)
            self._current = None
