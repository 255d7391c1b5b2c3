"""History queries off the event loop: a few worker threads with their own read connections,
and a bound on how many queries run at once.

A history, summary, meter or audit query may read a whole floor's day of events. On the
event loop it would stall every terminal's acks and every dashboard for as long as it runs
(issue 15), so the HTTP history API (hub.http_api) and the WebSocket ``history`` request
(hub.client_sessions) hand each query here: it runs on one of ``workers`` threads, each with
its own read-only connection to the hub's database, from the store (``open_history_db``:
SQLite in WAL mode reads while the writer thread writes, with ``query_only``; PostgreSQL with
``default_transaction_read_only``), so it can never write. When every worker is busy the
query is refused at once with :class:`HistoryBusyError` (HTTP 503 / ``rate_limited``,
docs/protocol.md §12) rather than queued: a queue would only grow behind a slow query, and
the caller can retry.

The bound counts a query until its thread has finished it, also when its caller went away
(an HTTP client that disconnected). A query still running after ``query_limit_s`` is
interrupted (SQLite's progress handler; PostgreSQL's ``statement_timeout``, and no further
statement once it is over time) and ends in :class:`HistoryTooSlowError`: it frees its
worker, and it would otherwise outlive the HTTP answer, which websockets gives up on after
its 10 s opening-handshake timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol, TypeVar

from hub.store_sql import Db, database_errors

T = TypeVar("T")

#: History queries that may run at once (two cores on the target hub: one is left for the
#: event loop and the store's writer).
HISTORY_WORKERS = 2

#: A history query still running after this many seconds is stopped (HTTP 504 ``timeout``,
#: WebSocket ``too_large``): under websockets' 10 s opening-handshake timeout, which would
#: cut an HTTP answer still being computed.
HISTORY_QUERY_LIMIT_S = 8.0



class HistoryStore(Protocol):
    """What the runner needs from the store (hub/store.py, hub/store_pg.py)."""

    def open_history_db(self, query_limit_s: float, over_time: Callable[[], bool]) -> Db:
        """A new read-only connection for one worker thread; ``over_time()`` says when the
        running query is to be stopped."""
        ...


class HistoryBusyError(Exception):
    """Every history worker is busy: refused, not queued."""


class HistoryTooSlowError(Exception):
    """The query ran past ``query_limit_s`` and was stopped."""


class HistoryRunner:
    """Runs ``query(connection)`` on a worker thread; at most ``workers`` at once."""

    def __init__(self, store: HistoryStore, *, workers: int = HISTORY_WORKERS,
                 query_limit_s: float = HISTORY_QUERY_LIMIT_S) -> None:
        if workers < 1:
            raise ValueError("a history runner needs at least one worker")
        self._store = store
        self.workers = workers
        self.query_limit_s = query_limit_s
        self._running = 0
        self._executor = ThreadPoolExecutor(max_workers=workers,
                                            thread_name_prefix="hub-history")
        self._local = threading.local()
        self._connections: list[Db] = []
        self._lock = threading.Lock()

    @property
    def running(self) -> int:
        """Queries started and not yet finished by their thread (event-loop thread only)."""
        return self._running

    async def run(self, query: Callable[[Db], T]) -> T:
        """The result of ``query`` run on a worker's connection; :class:`HistoryBusyError`
        at once when ``workers`` queries are already running."""
        if self._running >= self.workers:
            raise HistoryBusyError(f"{self.workers} history queries are running; try again")
        loop = asyncio.get_running_loop()
        future: Future[T] = self._executor.submit(self._call, query)
        self._running += 1  # after submit: a closed runner raises and counts nothing
        future.add_done_callback(lambda _f: self._finished(loop))
        return await asyncio.wrap_future(future)

    def _finished(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to count
            loop.call_soon_threadsafe(self._release)

    def _release(self) -> None:
        self._running -= 1

    def _call(self, query: Callable[[Db], T]) -> T:
        db = self._connection()
        limit = self.query_limit_s
        self._local.deadline = time.monotonic() + limit
        try:
            return query(db)
        except database_errors():
            if time.monotonic() >= self._local.deadline:
                # stopped for its time (interrupted, cancelled), not for another reason
                raise HistoryTooSlowError(
                    f"the query ran longer than {limit:g} s and was stopped; ask for less "
                    "(a shorter time range, fewer terminals or a smaller page)") from None
            self._forget(db)  # it may be the connection that failed (a database restart)
            raise
        finally:
            self._local.deadline = float("inf")

    def _forget(self, db: Db) -> None:
        """Close this thread's connection; its next query opens a new one."""
        self._local.db = None
        with self._lock:
            if db in self._connections:
                self._connections.remove(db)
        with contextlib.suppress(*database_errors()):
            db.close()

    def _over_time(self) -> bool:
        """The running query is over its time (this worker's thread)."""
        return time.monotonic() >= getattr(self._local, "deadline", float("inf"))

    def _connection(self) -> Db:
        db: Db | None = getattr(self._local, "db", None)
        if db is None:
            # used by this thread only; closed by close() once the threads have ended
            db = self._store.open_history_db(self.query_limit_s, self._over_time)
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    def close(self) -> None:
        """Wait for the queries running, then close the workers' connections."""
        self._executor.shutdown(wait=True)
        with self._lock:
            for db in self._connections:
                with contextlib.suppress(*database_errors()):
                    db.close()
            self._connections.clear()
