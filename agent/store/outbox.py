"""The durable outbox: events, the interpreter's state and remote-action ids in one SQLite file.

Why one file and one transaction: the interpreter turns a meter change into events AND a new
meter baseline. Both are written by :meth:`Outbox.commit` in a single ``BEGIN IMMEDIATE …
COMMIT``, so after a crash or power cut the agent restarts from a baseline that matches exactly
the events it already stored: a money delta is never emitted twice and never lost.

Durability: WAL journal with ``synchronous=FULL`` (a terminal PC loses power; ``NORMAL`` may
lose the last commits then). Callers pass a whole batch per ``commit`` (group commit: one
fsync per batch), which is what keeps ``FULL`` fast.

Sequence numbers: ``seq`` is strictly increasing per terminal and never reused, even after
rows are deleted: the last assigned value lives in the ``meta`` table and is updated in the
same transaction as the rows. ``acked_seq`` is a cumulative cursor: an event is acknowledged
when ``seq <= acked_seq``.

Size cap policy (also in docs/outbox.md): when a commit would take the table beyond
``max_events`` rows, room is made in this order, stopping as soon as there is enough:

1. acknowledged events older than the retention period;
2. other acknowledged events, oldest first;
3. the oldest unacknowledged events that are NOT protected (protected = the cash and alerts
   channels plus ``betPlaced``, ``winPaid``, ``actionCompleted``, ``metersReset``; see
   :attr:`api.events.Event.protected`). A ``dataGap`` alert event describing what was dropped
   (count, seq range, names) is stored in the same transaction, before the batch.

Protected events are never dropped: when only protected events remain, the table grows beyond
``max_events`` (the cap is a target, the disk is the limit); the batch being committed is
never cut, room is made from older events. The same policy runs when SQLite
reports ``database or disk is full``; if the batch still does not fit, :class:`OutboxFullError`
is raised and nothing of the batch is written, so the caller keeps it in memory and retries.

Corruption: ``PRAGMA quick_check`` runs at open. A file that is not a database or fails the
check is renamed to ``<path>.corrupt-<UTC timestamp>`` (never deleted) and a fresh outbox is
started; :attr:`Outbox.recovered_from` then names the moved file, so the daemon raises an
``outboxFault`` alert instead of crash-looping. A fresh file starts at seq 0; when the hub
says it already acknowledged more, :meth:`Outbox.resync` moves the counter past that so ids
are never reused.

Module layout: the read side (records, the queries writer and readers share, and
:class:`OutboxReader`) is agent/store/outbox_read.py. This module keeps the writer whole, about 650
lines, on purpose: every method here writes under the same lock and transaction rule (commit,
the cap policy, acks, resync, prune, action ids), and reading it in one place is how that rule
is checked.

Threads: one writer owns an :class:`Outbox` (an internal lock serialises calls, but an fsync
blocks the caller, so keep it off the asyncio loop and off the serial line thread). Readers
(the uplink, the ``slot-agent outbox`` command while the daemon runs) use
:meth:`Outbox.open_reader`, a read-only connection of their own; WAL lets them read while the
writer commits.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.store.outbox_read import (
    ActionRecord,
    EventFrame,
    OutboxError,
    OutboxFullError,
    OutboxQueries,
    OutboxReader,
    OutboxStats,
    row_to_action,
)
from api.events import Event, StoredEvent, utc_timestamp

__all__ = [
    "ActionRecord",
    "EventFrame",
    "Outbox",
    "OutboxError",
    "OutboxFullError",
    "OutboxReader",
    "OutboxStats",
]

SCHEMA_VERSION = 1

#: WAL pages before an automatic checkpoint (SQLite's default, stated so it is deliberate).
WAL_AUTOCHECKPOINT_PAGES = 1000
#: The WAL file is truncated back to this size after a checkpoint.
JOURNAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024
#: SQLite's page cache per connection (the writer, and each reader), in KiB. SQLite's
#: default (2,000 KiB) fills slowly as the table grows, one new page after another: at 30
#: games a minute it grows the daemon's memory for more than an hour before it is full
#: (docs/performance.md, "Footprint: the one-hour run"). The outbox appends at the end and
#: reads the newest rows, so the hot pages (the b-tree's inner pages, the last leaves) fit
#: in far less; older pages come from the OS's page cache when read.
PAGE_CACHE_KIB = 256
#: How long a connection waits for another one's lock before failing.
BUSY_TIMEOUT_S = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    channel    TEXT NOT NULL,
    timestamp  TEXT NOT NULL,
    data       TEXT NOT NULL,
    protected  INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_unprotected ON events(seq) WHERE protected = 0;
CREATE TABLE IF NOT EXISTS state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    data       TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
    action_id   TEXT PRIMARY KEY,
    received_at REAL NOT NULL,
    result      TEXT,
    finished_at REAL
) WITHOUT ROWID;
"""


def _is_disk_full(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower()


#: How every JSON column is written (one encoder: ``json.dumps`` would build one per call).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)


def _dumps(value: Any, what: str) -> str:
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise OutboxError(f"{what} is not JSON-serialisable: {exc}") from exc


def _encode_event(event: Event) -> tuple[Event, str]:
    """An event and the JSON text of its data, as stored in the ``data`` column."""
    data = event.data
    try:
        # The encoder takes a dict only; copy any other mapping.
        return event, _ENCODER.encode(data if type(data) is dict else dict(data))
    except (TypeError, ValueError) as exc:
        raise OutboxError(f"data of {event.name} is not JSON-serialisable: {exc}") from exc


class Outbox(OutboxQueries):
    """The writer side of the outbox. Create with :meth:`open`."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        *,
        terminal_id: str,
        max_events: int,
        retention_seconds: float,
        clock: Callable[[], float],
        recovered_from: str | None,
    ) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.RLock()
        self._terminal_id = terminal_id
        self.max_events = max_events
        self.retention_seconds = retention_seconds
        self._clock = clock
        #: Path of the damaged file moved aside at open, or None (raise ``outboxFault``).
        self.recovered_from = recovered_from
        #: Events dropped by the size cap since open (for metrics).
        self.dropped_events = 0
        self._pending_dropped = 0
        self._rows = int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        self._last_seq = int(self._meta("last_seq") or 0)
        self._acked_seq = int(self._meta("acked_seq") or 0)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        terminal_id: str,
        max_events: int = 1_000_000,
        retention_seconds: float = 30 * 86400,
        clock: Callable[[], float] = time.time,
    ) -> Outbox:
        """Create or open the outbox at ``path`` for ``terminal_id``.

        A damaged file is moved aside and replaced (see :attr:`recovered_from`). A file that
        belongs to another terminal raises :class:`OutboxError`: its events must not be sent
        under this terminal's id.
        """
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        db_path = Path(path)
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, a read-only file system (ProtectSystem=)
            raise OutboxError(f"cannot open outbox {db_path}: cannot create its directory "
                              f"{db_path.parent}: {exc.strerror or exc}") from exc
        recovered_from: str | None = None
        try:
            conn = _open_writer(db_path)
        except sqlite3.DatabaseError as exc:
            if _is_disk_full(exc) or (
                isinstance(exc, sqlite3.OperationalError)
                and ("unable to open" in str(exc) or "locked" in str(exc))
            ):
                raise OutboxError(f"cannot open outbox {db_path}: {exc}") from exc
            recovered_from = _move_aside(db_path, clock())
            conn = _open_writer(db_path)
        try:
            stored = conn.execute("SELECT value FROM meta WHERE key = 'terminal_id'").fetchone()
            if stored is None:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [
                        ("terminal_id", terminal_id),
                        ("schema_version", str(SCHEMA_VERSION)),
                        ("last_seq", "0"),
                        ("acked_seq", "0"),
                        ("created_at", repr(clock())),
                    ],
                )
                conn.execute("COMMIT")
            elif stored[0] != terminal_id:
                raise OutboxError(
                    f"outbox {db_path} belongs to terminal {stored[0]!r}, not {terminal_id!r}: "
                    "use the right terminal_id or another outbox.path"
                )
            version = conn.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()
            if version is not None and int(version[0]) > SCHEMA_VERSION:
                raise OutboxError(
                    f"outbox {db_path} has schema version {version[0]}, newer than this "
                    f"agent's {SCHEMA_VERSION}: it was written by a newer slot-agent"
                )
        except BaseException:
            conn.close()
            raise
        return cls(
            db_path,
            conn,
            terminal_id=terminal_id,
            max_events=max_events,
            retention_seconds=retention_seconds,
            clock=clock,
            recovered_from=recovered_from,
        )

    @staticmethod
    def open_reader(path: str | os.PathLike[str]) -> OutboxReader:
        """A read-only connection (``mode=ro``) for readers beside the writer."""
        db_path = Path(path)
        if not db_path.exists():
            raise OutboxError(f"no outbox at {db_path}")
        try:
            conn = sqlite3.connect(
                f"{db_path.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_S,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
            conn.execute("SELECT value FROM meta WHERE key = 'terminal_id'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"cannot read outbox {db_path}: {exc}") from exc
        return OutboxReader(db_path, conn)

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def rows(self) -> int:
        """Stored events, acknowledged or not (what ``max_events`` caps)."""
        return self._rows

    def seqs(self) -> tuple[int, int]:
        """(``last_seq``, ``acked_seq``) as this writer keeps them: no query and no lock, for
        the daemon's ``STATUS=`` line and outbox gauges, read every 2 s on its event loop
        (where :attr:`last_seq` would wait for the writer's lock behind a commit's fsync)."""
        return self._last_seq, self._acked_seq

    def backlog(self) -> tuple[int, float | None]:
        """(depth, ``created_at`` of the oldest unacknowledged event): what the outbox gauges
        show. Nothing is read when every event is acknowledged, and never :meth:`stats`'s count
        of every row (``retention_days`` of events, counted every 2 s)."""
        last, acked = self.seqs()
        if last <= acked:
            return 0, None
        with self._read() as conn:
            _, depth, oldest = self._unacked(conn)
        return depth, oldest

    # ------------------------------------------------------------------ writing

    def commit(
        self,
        events: Sequence[Event],
        state: Mapping[str, Any] | None,
        *,
        finished_actions: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> list[StoredEvent]:
        """Store a batch of events and (unless None) the new state in ONE transaction.

        ``finished_actions`` (action id -> result) are recorded in the same transaction, so an
        ``actionCompleted`` event and the result that makes its action idempotent land together.

        Returns the stored events in seq order, built from ``events`` themselves (their
        :class:`Event` objects, not a decoding of what was written). If the size cap dropped
        events, a ``dataGap`` event is stored just before the batch and is the first element
        returned.
        Raises :class:`OutboxFullError` (nothing written) if the disk is full even after the
        cap policy ran; :class:`OutboxError` if the data is not JSON-serialisable.
        """
        state_json = None if state is None else _dumps(dict(state), "state")
        rows = [_encode_event(e) for e in events]
        actions = [
            (_dumps(dict(result), f"result of action {action_id}"), action_id)
            for action_id, result in (finished_actions or {}).items()
        ]
        with self._lock:
            gaps: list[StoredEvent] = []
            while True:
                try:
                    return gaps + self._commit_once(rows, state_json, actions)
                except sqlite3.Error as exc:
                    self._rollback()
                    if not _is_disk_full(exc):
                        raise OutboxError(f"outbox commit failed: {exc}") from exc
                    # Disk full: free space by the cap policy, then retry once more each
                    # time it freed something.
                    freed = self._free_for_disk_full(len(rows) + 1, gaps)
                    if freed == 0:
                        raise OutboxFullError(
                            f"outbox {self.path} is full ({exc}) and nothing more may be "
                            f"dropped; {len(rows)} events not written"
                        ) from exc

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        # The counters below are cached; reload them from the database after a rollback.
        self._pending_dropped = 0
        with contextlib.suppress(sqlite3.Error):  # a failing disk: keep the last known values
            self._rows = int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
            self._last_seq = int(self._meta("last_seq") or 0)
            self._acked_seq = int(self._meta("acked_seq") or 0)

    def _commit_once(
        self,
        rows: list[tuple[Event, str]],
        state_json: str | None,
        actions: list[tuple[str, str]],
    ) -> list[StoredEvent]:
        now = self._clock()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        overflow = self._rows + len(rows) - self.max_events
        if overflow > 0:
            gap = self._make_room(overflow, now)
            if gap is not None:
                rows = [gap, *rows]
        first = self._last_seq + 1
        terminal = self._terminal_id
        stored = [StoredEvent(seq, terminal, event)
                  for seq, (event, _) in enumerate(rows, start=first)]
        inserts = [(seq, event.name, event.channel.value, event.timestamp, data,
                    int(event.protected), now)
                   for seq, (event, data) in enumerate(rows, start=first)]
        seq = first + len(rows) - 1
        conn.executemany(
            "INSERT INTO events(seq, name, channel, timestamp, data, protected, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            inserts,
        )
        conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (str(seq),))
        if state_json is not None:
            conn.execute(
                "INSERT INTO state(id, data, updated_at) VALUES (1, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET data = excluded.data, "
                "updated_at = excluded.updated_at",
                (state_json, now),
            )
        if actions:
            conn.executemany(
                "UPDATE actions SET result = ?, finished_at = ? WHERE action_id = ?",
                [(result, now, action_id) for result, action_id in actions],
            )
        conn.execute("COMMIT")
        self.dropped_events += self._pending_dropped
        self._pending_dropped = 0
        self._rows += len(inserts)
        self._last_seq = seq
        return stored

    def _make_room(self, needed: int, now: float) -> tuple[Event, str] | None:
        """Delete up to ``needed`` rows by the cap policy, inside the open transaction.

        Returns the ``dataGap`` row to store if unacknowledged events were dropped.
        """
        conn = self._conn
        acked = self._acked_seq
        cutoff = now - self.retention_seconds
        # 1. acknowledged and past retention; 2. acknowledged, oldest first.
        for sql, args in (
            ("DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= ? "
             "AND created_at < ? ORDER BY seq LIMIT ?)", (acked, cutoff)),
            ("DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= ? "
             "ORDER BY seq LIMIT ?)", (acked,)),
        ):
            if needed <= 0:
                return None
            deleted = conn.execute(sql, (*args, needed)).rowcount
            self._rows -= deleted
            needed -= deleted
        if needed <= 0:
            return None
        # 3. oldest unacknowledged, never a protected one (+1: room for the dataGap itself).
        victims = conn.execute(
            "SELECT seq, name FROM events WHERE protected = 0 AND seq > ? ORDER BY seq LIMIT ?",
            (acked, needed + 1),
        ).fetchall()
        if not victims:
            return None
        conn.execute(
            "DELETE FROM events WHERE protected = 0 AND seq >= ? AND seq <= ?",
            (victims[0][0], victims[-1][0]),
        )
        self._rows -= len(victims)
        self._pending_dropped += len(victims)
        names = Counter(str(name) for _, name in victims)
        data = {
            "reason": "outboxOverflow",
            "dropped": len(victims),
            "fromSeq": int(victims[0][0]),
            "toSeq": int(victims[-1][0]),
            "events": dict(sorted(names.items())),
        }
        return _encode_event(Event("dataGap", utc_timestamp(now), data))

    def _free_for_disk_full(self, batch_rows: int, gaps: list[StoredEvent]) -> int:
        """Disk full: make room for about twice the batch in its own transaction.

        Returns the number of rows removed (0: nothing may be dropped); a ``dataGap`` event
        stored on the way is appended to ``gaps``.
        """
        now = self._clock()
        needed = max(2 * batch_rows, 64)
        before = self._rows
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            gap = self._make_room(needed, now)
            freed = before - self._rows
            if gap is not None:
                seq = self._last_seq + 1
                event, data_json = gap
                self._conn.execute(
                    "INSERT INTO events(seq, name, channel, timestamp, data, protected, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (seq, event.name, event.channel.value, event.timestamp, data_json,
                     int(event.protected), now),
                )
                self._conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'last_seq'", (str(seq),)
                )
                self._conn.execute("COMMIT")
                self._rows += 1
                self._last_seq = seq
                gaps.append(StoredEvent(seq, self._terminal_id, event))
            else:
                self._conn.execute("COMMIT")
        except sqlite3.Error:
            self._rollback()
            return 0
        self.dropped_events += self._pending_dropped
        self._pending_dropped = 0
        return freed

    def ack(self, up_to_seq: int) -> int:
        """Acknowledge every event with ``seq <= up_to_seq`` (cumulative, idempotent).

        An ack below the current cursor changes nothing. An ack beyond :attr:`last_seq` means
        the hub saw seqs this file never assigned (the file was replaced): it raises
        :class:`OutboxError` and changes nothing; call :meth:`resync` for that case.
        Returns the new ``acked_seq``.
        """
        with self._lock:
            if up_to_seq > self._last_seq:
                raise OutboxError(
                    f"ack up to seq {up_to_seq} is beyond the last assigned seq "
                    f"{self._last_seq}; the hub knows a different outbox (use resync)"
                )
            if up_to_seq <= self._acked_seq:
                return self._acked_seq
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'acked_seq'", (str(up_to_seq),)
                )
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"outbox ack failed: {exc}") from exc
            self._acked_seq = up_to_seq
            return up_to_seq

    def resync(self, hub_acked_seq: int) -> bool:
        """Align with the hub's acknowledged seq when it is beyond :attr:`last_seq`.

        That happens only when this file was replaced (corruption recovery, a wiped disk):
        new events must continue after what the hub already holds, or they would reuse ids the
        hub de-duplicates away. Unacknowledged events stored since the reset are renumbered
        to follow ``hub_acked_seq`` (in their order) so they are still delivered. Returns True
        if the counters moved. The uplink learns the hub's value from ``welcome``; the writer
        applies it.
        """
        with self._lock:
            if hub_acked_seq <= self._last_seq:
                return False
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                old = [int(r[0]) for r in self._conn.execute(
                    "SELECT seq FROM events WHERE seq > ? ORDER BY seq", (self._acked_seq,)
                ).fetchall()]
                # Every old seq is <= last_seq < hub_acked_seq, so the new ones cannot collide.
                self._conn.executemany(
                    "UPDATE events SET seq = ? WHERE seq = ?",
                    [(hub_acked_seq + i, seq) for i, seq in enumerate(old, start=1)],
                )
                new_last = hub_acked_seq + len(old)
                self._conn.executemany(
                    "UPDATE meta SET value = ? WHERE key = ?",
                    [(str(new_last), "last_seq"), (str(hub_acked_seq), "acked_seq")],
                )
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"outbox resync failed: {exc}") from exc
            self._last_seq = new_last
            self._acked_seq = hub_acked_seq
            return True

    def prune(self, now: float | None = None) -> int:
        """Delete acknowledged events and action ids older than the retention.

        Call it periodically (the daemon does so hourly). Returns the events deleted.
        """
        cutoff = (self._clock() if now is None else now) - self.retention_seconds
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                deleted = self._conn.execute(
                    "DELETE FROM events WHERE seq <= ? AND created_at < ?",
                    (self._acked_seq, cutoff),
                ).rowcount
                self._conn.execute("DELETE FROM actions WHERE received_at < ?", (cutoff,))
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"outbox prune failed: {exc}") from exc
            self._rows -= deleted
            return deleted

    # ------------------------------------------------------------------ actions

    def action_begin(self, action_id: str, received_at: float) -> ActionRecord | None:
        """Record that ``action_id`` starts now; None if it is new.

        If the id was already seen, nothing changes and its record is returned (running when
        ``result`` is None, else its result): the caller must not execute it again.
        """
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                row = self._conn.execute(
                    "SELECT action_id, received_at, result, finished_at FROM actions "
                    "WHERE action_id = ?",
                    (action_id,),
                ).fetchone()
                if row is None:
                    self._conn.execute(
                        "INSERT INTO actions(action_id, received_at) VALUES (?, ?)",
                        (action_id, received_at),
                    )
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"outbox action_begin failed: {exc}") from exc
        return None if row is None else row_to_action(row)

    def unfinished_actions(self) -> list[ActionRecord]:
        """Actions begun and never finished: the agent stopped while running them.

        At start the daemon finishes each with an error result (and its ``actionCompleted``
        event), so a hub retrying the id gets an answer instead of "running" forever.
        """
        with self._lock:
            rows = self._conn.execute(
                "SELECT action_id, received_at, result, finished_at FROM actions "
                "WHERE result IS NULL ORDER BY received_at"
            ).fetchall()
        return [row_to_action(r) for r in rows]

    def action_finish(self, action_id: str, result: Mapping[str, Any]) -> None:
        """Store the result of an action begun with :meth:`action_begin`."""
        text = _dumps(dict(result), f"result of action {action_id}")
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                changed = self._conn.execute(
                    "UPDATE actions SET result = ?, finished_at = ? WHERE action_id = ?",
                    (text, self._clock(), action_id),
                ).rowcount
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"outbox action_finish failed: {exc}") from exc
        if changed == 0:
            raise OutboxError(f"action {action_id!r} was never begun")


def _open_writer(path: Path) -> sqlite3.Connection:
    """Open, configure and check the database; raise sqlite3.DatabaseError if it is damaged."""
    conn = sqlite3.connect(
        path, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False
    )
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"unable to set WAL journal mode (got {mode})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT_BYTES}")
        conn.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
        result = [str(r[0]) for r in conn.execute("PRAGMA quick_check").fetchall()]
        if result != ["ok"]:
            raise sqlite3.DatabaseError("quick_check failed: " + "; ".join(result[:5]))
        conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def _move_aside(path: Path, now: float) -> str:
    """Rename a damaged database (and its WAL files) out of the way; never delete it."""
    stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    target = Path(f"{path}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = Path(f"{path}.corrupt-{stamp}-{n}")
        n += 1
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = Path(f"{path}{suffix}")
        if side.exists():
            os.replace(side, Path(f"{target}{suffix}"))
    return str(target)
