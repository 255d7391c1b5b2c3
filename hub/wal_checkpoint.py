"""The WAL checkpoint of the hub's SQLite store, on a thread and connection of its own.

A checkpoint copies the pages a WAL holds back into the database file and fsyncs it. Left to
SQLite's automatic checkpoint, it runs inside the commit that takes the WAL past its limit
(``wal_autocheckpoint``), and that commit's batches, with every terminal's ``ack`` behind
them, wait for it: at 10,000 events/s from 3,000 terminals each transaction touches a
leaf page per terminal in each per-terminal index, the WAL reaches 10,000 pages about once
a second, and that commit took 55-135 ms against 1-3 ms for the others (30-50 ms of it
CPU copying pages; docs/performance.md, "The checkpoint off the commit path"). One such
commit a second is 5-10 % of the events delayed by it: the ack p99.

:class:`WalCheckpointer` copies the WAL shortly after each commit instead, in small steps
that run beside the writer (``PASSIVE``: it never waits for a writer or a reader, and
SQLite lets a writer append while it copies). The writer keeps its automatic checkpoint at
a high limit: it then finds nearly everything copied already and only completes the copy,
so that the next transaction can start the WAL over from its beginning (SQLite restarts a
WAL only once every frame in it is copied), which keeps the file's size bounded.

The thread sleeps while nothing is written: an idle hub costs no wake-up.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("hub.store")

#: Seconds after a commit before the checkpoint copies it, so that the commits of that
#: span share one copy (a page rewritten by several is copied once) and one fsync of the
#: database file.
CHECKPOINT_DELAY = 0.1


class WalCheckpointer:
    """``PASSIVE`` checkpoints of one WAL database, after :meth:`written` is called.

    Started by the first :meth:`written` (a store only read from never starts it); stopped
    by :meth:`stop`, which waits for a checkpoint in progress. A failed checkpoint is logged
    and counted; the writer's own automatic checkpoint still bounds the WAL.
    """

    def __init__(self, path: str, connect: Callable[[], sqlite3.Connection],
                 delay: float = CHECKPOINT_DELAY) -> None:
        """``connect`` opens the checkpoint's own connection to ``path`` (on its thread), as
        the store opens its others."""
        self._path = path
        self._connect = connect
        self._delay = delay
        self._written = threading.Event()
        self._stopping = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.runs = 0  # checkpoints done
        self.failures = 0

    def written(self) -> None:
        """A transaction committed: copy it to the database file soon (any thread)."""
        if self._thread is None:
            with self._start_lock:
                if self._thread is None and not self._stopping.is_set():
                    self._thread = threading.Thread(target=self._run, name="hub-checkpoint",
                                                    daemon=True)
                    self._thread.start()
        self._written.set()

    def stop(self) -> None:
        """No more checkpoints; returns once the thread (if started) has closed its
        connection."""
        with self._start_lock:
            self._stopping.set()
            thread = self._thread
        self._written.set()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        db = self._connect()
        try:
            while True:
                self._written.wait()
                if self._stopping.wait(self._delay):
                    return
                self._written.clear()  # a commit from now on wakes the next round
                if self._stopping.is_set():
                    # stop() came after the wait above and before that clear, which erased
                    # its wake-up: waiting for the next commit would wait for ever
                    return
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.runs += 1
                except sqlite3.Error as exc:
                    self.failures += 1
                    log.warning("checkpoint of %s failed: %s (the writer's own checkpoint"
                                " still bounds the WAL)", self._path, exc)
        finally:
            db.close()
