"""The outbox's read side: the records it returns, the queries the writer and the read-only
readers share, and :class:`OutboxReader`, the view that the uplink and ``slot-agent outbox``
open beside the running writer (WAL lets them read while it commits).

Split from agent/store/outbox.py, which keeps the writer and its one-transaction rule; the module
docstring there says why the outbox is one SQLite file.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from api.events import Event, StoredEvent, wire_text

__all__ = [
    "ActionRecord",
    "EventFrame",
    "OutboxError",
    "OutboxFullError",
    "OutboxQueries",
    "OutboxReader",
    "OutboxStats",
    "row_to_action",
]


class OutboxError(Exception):
    """The outbox cannot do what was asked (wrong terminal, bad ack, unwritable file)."""


class OutboxFullError(OutboxError):
    """The disk is full even after the size-cap policy ran; the batch was NOT written."""


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """A remote action id seen by this terminal; ``result`` is None while it runs."""

    action_id: str
    received_at: float
    result: Mapping[str, Any] | None
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class EventFrame:
    """A stored event as the uplink sends it: its seq and its ``event`` frame as JSON text."""

    seq: int
    text: str


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What ``slot-agent outbox status`` and the metrics report."""

    terminal_id: str
    last_seq: int
    acked_seq: int
    depth: int
    rows: int
    oldest_unacked_created_at: float | None
    db_bytes: int
    wal_bytes: int


def _row_to_stored(terminal_id: str, row: tuple[Any, ...]) -> StoredEvent:
    seq, name, timestamp, data = row
    return StoredEvent(seq, terminal_id, Event(name, timestamp, json.loads(data)))


class OutboxQueries:
    """Queries shared by the writer (:class:`Outbox`) and read-only (:class:`OutboxReader`)."""

    _conn: sqlite3.Connection
    _lock: threading.RLock
    path: Path

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One consistent snapshot for several SELECTs (a deferred read transaction)."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    @property
    def terminal_id(self) -> str:
        with self._lock:
            return self._meta("terminal_id") or ""

    @property
    def last_seq(self) -> int:
        """The highest seq ever assigned (0 before the first event)."""
        with self._lock:
            return int(self._meta("last_seq") or 0)

    @property
    def acked_seq(self) -> int:
        """Every event with ``seq <= acked_seq`` is acknowledged by the hub."""
        with self._lock:
            return int(self._meta("acked_seq") or 0)

    @property
    def depth(self) -> int:
        """Number of unacknowledged events stored."""
        with self._read() as conn:
            acked = int(self._meta("acked_seq") or 0)
            return int(conn.execute("SELECT COUNT(*) FROM events WHERE seq > ?", (acked,))
                       .fetchone()[0])

    def oldest_unacked_timestamp(self) -> float | None:
        """When the oldest unacknowledged event entered the outbox (epoch seconds), or None."""
        with self._read() as conn:
            acked = int(self._meta("acked_seq") or 0)
            row = conn.execute(
                "SELECT created_at FROM events WHERE seq > ? ORDER BY seq LIMIT 1", (acked,)
            ).fetchone()
            return None if row is None else float(row[0])

    def pending(self, after_seq: int, limit: int) -> list[StoredEvent]:
        """Unacknowledged events with ``seq > after_seq``, in seq order, at most ``limit``.

        Seqs may have holes where the size cap dropped events (a ``dataGap`` event says so).
        """
        with self._read() as conn:
            terminal = self._meta("terminal_id") or ""
            start = max(after_seq, int(self._meta("acked_seq") or 0))
            rows = conn.execute(
                "SELECT seq, name, timestamp, data FROM events WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (start, limit),
            ).fetchall()
        return [_row_to_stored(terminal, r) for r in rows]

    def pending_frames(self, after_seq: int, limit: int, *, acked_too: bool = False
                       ) -> list[EventFrame]:
        """:meth:`pending` as ``event`` frames ready to send (what the uplink reads).

        The stored data text is spliced into the frame as it is (:func:`api.events.wire_text`):
        no row is decoded and encoded again on its way out, which is most of the uplink's
        work per event while it drains a backlog.

        ``acked_too``: every stored event with ``seq > after_seq``, acknowledged or not. The
        uplink reads so: what the hub holds is what its ``welcome`` says, and a hub restored
        from a backup gets again what it lost while the file still holds it (docs/outbox.md).
        """
        with self._read() as conn:
            terminal = self._meta("terminal_id") or ""
            start = after_seq if acked_too else max(after_seq, int(self._meta("acked_seq") or 0))
            rows = conn.execute(
                "SELECT seq, name, channel, timestamp, data FROM events WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (start, limit),
            ).fetchall()
        return [EventFrame(seq, wire_text(seq, terminal, name, channel, timestamp, data))
                for seq, name, channel, timestamp, data in rows]

    def tail(self, n: int) -> list[StoredEvent]:
        """The last ``n`` stored events (acknowledged or not), oldest first."""
        with self._read() as conn:
            terminal = self._meta("terminal_id") or ""
            rows = conn.execute(
                "SELECT seq, name, timestamp, data FROM events ORDER BY seq DESC LIMIT ?", (n,)
            ).fetchall()
        return [_row_to_stored(terminal, r) for r in reversed(rows)]

    def export(self, fileobj: IO[str], *, after_seq: int = 0) -> int:
        """Write every stored event with ``seq > after_seq`` as JSON lines of the wire form.

        Returns the number of lines written. Reads in pages so memory stays flat.
        """
        written = 0
        cursor = after_seq
        while True:
            with self._read() as conn:
                terminal = self._meta("terminal_id") or ""
                rows = conn.execute(
                    "SELECT seq, name, timestamp, data FROM events WHERE seq > ? "
                    "ORDER BY seq LIMIT 1000",
                    (cursor,),
                ).fetchall()
            if not rows:
                return written
            for row in rows:
                fileobj.write(json.dumps(_row_to_stored(terminal, row).to_wire()) + "\n")
                written += 1
            cursor = int(rows[-1][0])

    def load_state(self) -> dict[str, Any] | None:
        """The state committed with the last batch that carried one, or None."""
        with self._lock:
            row = self._conn.execute("SELECT data FROM state WHERE id = 1").fetchone()
        if row is None:
            return None
        state: dict[str, Any] = json.loads(row[0])
        return state

    def action_get(self, action_id: str) -> ActionRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT action_id, received_at, result, finished_at FROM actions "
                "WHERE action_id = ?",
                (action_id,),
            ).fetchone()
        return None if row is None else row_to_action(row)

    def _unacked(self, conn: sqlite3.Connection) -> tuple[int, int, float | None]:
        """(``acked_seq``, depth, ``created_at`` of the oldest unacknowledged event), read in
        the caller's transaction."""
        acked = int(self._meta("acked_seq") or 0)
        depth = int(conn.execute("SELECT COUNT(*) FROM events WHERE seq > ?", (acked,))
                    .fetchone()[0])
        oldest = conn.execute(
            "SELECT created_at FROM events WHERE seq > ? ORDER BY seq LIMIT 1", (acked,)
        ).fetchone()
        return acked, depth, None if oldest is None else float(oldest[0])

    def stats(self) -> OutboxStats:
        with self._read() as conn:
            acked, depth, oldest = self._unacked(conn)
            rows = int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
            terminal = self._meta("terminal_id") or ""
            last = int(self._meta("last_seq") or 0)
        return OutboxStats(
            terminal_id=terminal,
            last_seq=last,
            acked_seq=acked,
            depth=depth,
            rows=rows,
            oldest_unacked_created_at=oldest,
            db_bytes=_file_size(self.path),
            # A str, not a new Path: pathlib interns every part of a path it parses, and a
            # part that dies with its Path still used a slot of the interpreter's table of
            # interned strings. The daemon's status loop called this every 2 s: those slots
            # filled the table in about half an hour and it doubled, +0.5 MB at once
            # (docs/performance.md, "The step at half an hour").
            wal_bytes=_file_size(f"{self.path}-wal"),
        )

    def quick_check(self) -> str:
        """``PRAGMA quick_check``: "ok" or the first problem found."""
        with self._lock:
            rows = self._conn.execute("PRAGMA quick_check").fetchall()
        return "; ".join(str(r[0]) for r in rows[:5])


def _file_size(path: str | os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def row_to_action(row: tuple[Any, ...]) -> ActionRecord:
    action_id, received_at, result, finished_at = row
    return ActionRecord(
        action_id=str(action_id),
        received_at=float(received_at),
        result=None if result is None else json.loads(result),
        finished_at=None if finished_at is None else float(finished_at),
    )


class OutboxReader(OutboxQueries):
    """A read-only view of an outbox file, safe to use while the daemon writes to it.

    Note: opening a WAL database may create its ``-wal``/``-shm`` files; run readers as the
    service user so those files keep the daemon's ownership.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.RLock()

    def close(self) -> None:
        # Under the lock: closing a connection while another thread is inside a query on it
        # crashes sqlite3, not just the query.
        with self._lock:
            self._conn.close()

    def __enter__(self) -> OutboxReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
