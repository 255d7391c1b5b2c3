"""History queries off the event loop: a few worker threads with their own read connections,
and a bound on how many queries run at once.

A history, summary, meter or audit query may read a whole floor's day of events. On the
event loop it would stall every terminal's acks and every dashboard for as long as it runs
(issue 15), so the HTTP history API (hub.http_api) and the WebSocket ``history`` request
(hub.client_sessions) hand each query here: it runs on one of ``workers`` threads, each with
its own SQLite connection to the hub's database (WAL: it reads while the writer thread
writes; ``query_only``: it can never write). When every worker is busy the query is refused
at once with :class:`HistoryBusyError` (HTTP 503 / ``rate_limited``, docs/protocol.md §12)
rather than queued: a queue would only grow behind a slow query, and the caller can retry.

The bound counts a query until its thread has finished it, also when its caller went away
(an HTTP client that disconnected). A query still running after ``query_limit_s`` is
interrupted (SQLite's progress handler) and ends in :class:`HistoryTooSlowError`: it frees its
worker, and it would otherwise outlive the HTTP answer, which websockets gives up on after
its 10 s opening-handshake timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: History queries that may run at once (two cores on the target hub: one is left for the
#: event loop and the store's writer).
HISTORY_WORKERS = 2

#: A history query still running after this many seconds is stopped (HTTP 504 ``timeout``,
#: WebSocket ``too_large``): under websockets' 10 s opening-handshake timeout, which would
#: cut an HTTP answer still being computed.
HISTORY_QUERY_LIMIT_S = 8.0

#: How long a worker's connection waits for a lock (a checkpoint) before failing.
_BUSY_TIMEOUT_MS = 5000
#: SQLite virtual-machine steps between two looks at the clock of a running query.
_PROGRESS_STEPS = 10_000


class HistoryBusyError(Exception):
    """Every history worker is busy: refused, not queued."""


class HistoryTooSlowError(Exception):
    """The query ran past ``query_limit_s`` and was stopped."""


class HistoryRunner:
    """Runs ``query(connection)`` on a worker thread; at most ``workers`` at once."""

    def __init__(self, database: Path | str, *, workers: int = HISTORY_WORKERS,
                 query_limit_s: float = HISTORY_QUERY_LIMIT_S) -> None:
        if workers < 1:
            raise ValueError("a history runner needs at least one worker")
        self._database = str(database)
        self.workers = workers
        self.query_limit_s = query_limit_s
        self._running = 0
        self._executor = ThreadPoolExecutor(max_workers=workers,
                                            thread_name_prefix="hub-history")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @property
    def running(self) -> int:
        """Queries started and not yet finished by their thread (event-loop thread only)."""
        return self._running

    async def run(self, query: Callable[[sqlite3.Connection], T]) -> T:
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

    def _call(self, query: Callable[[sqlite3.Connection], T]) -> T:
        db = self._connection()
        limit = self.query_limit_s
        self._local.deadline = time.monotonic() + limit
        try:
            return query(db)
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc) and time.monotonic() >= self._local.deadline:
                # stopped by _over_time, not by another reason to interrupt
                raise HistoryTooSlowError(
                    f"the query ran longer than {limit:g} s and was stopped; ask for less "
                    "(a shorter time range, fewer terminals or a smaller page)") from None
            raise
        finally:
            self._local.deadline = float("inf")

    def _over_time(self) -> int:
        """SQLite's progress handler (this worker's thread): non-zero stops the query."""
        return 1 if time.monotonic() >= getattr(self._local, "deadline", float("inf")) else 0

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            # used by this thread only; closed by close() once the threads have ended
            db = sqlite3.connect(self._database, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA query_only=ON")
            db.set_progress_handler(self._over_time, _PROGRESS_STEPS)
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    def close(self) -> None:
        """Wait for the queries running, then close the workers' connections."""
        self._executor.shutdown(wait=True)
        with self._lock:
            for db in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            self._connections.clear()
