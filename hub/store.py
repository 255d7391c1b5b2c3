"""The hub's SQLite store: events (de-duplicated), acknowledged seqs, alert acks, actions.

Two connections to one WAL database. Events are written in batches (group commit: one
transaction, one fsync, for everything that arrived from all terminals while the previous
one committed: hub/ingest.py, which uses only :meth:`HubStore.write_events`, the store's
write-path interface :class:`hub.ingest.EventStore`) by the *writer* connection
on the store's own single thread, so a commit's fsync never stalls the event loop. Everything
else (reads for snapshots, alert acknowledgements, actions: a few rows now and then) uses the
*loop* connection on the event loop thread; WAL lets it read while a batch is being written.
``synchronous`` is FULL by default so an ``ack`` means the event survives a power loss of the
hub too.

The queries both stores run are in hub/store_sql.py; this module holds what is SQLite's own:
the schema, the connections, the batch insert, the hub's seq counter and retention.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hub.sql_dialect import obsolete_indexes
from hub.store_sql import (
    HUB_SOURCE,
    SQLITE,
    Dialect,
    EventWrite,
    Row,
    SqlStore,
    StoredAction,
    acked_alert_keys,
    data_text,
    schema,
    stored_frame,
)
from hub.wal_checkpoint import WalCheckpointer

__all__ = ["HUB_SOURCE", "EventWrite", "HubStore", "SqliteDb", "StoredAction", "data_text",
           "stored_frame"]

log = logging.getLogger("hub.store")

#: ``PRAGMA user_version`` of a database with this version's layout: 0 is a file of a hub
#: before versions were recorded (its ``events_by_id`` index is dropped at open and the
#: alert indexes are made), 1 has no index on the events' id and the partial alert indexes
#: (hub.sql_dialect.EVENT_INDEXES).
SCHEMA_VERSION = 1

#: How long a connection waits for the other one's write transaction (milliseconds).
_BUSY_TIMEOUT_MS = 10_000
#: How long a history worker's connection waits for a lock (a checkpoint) before failing.
_HISTORY_BUSY_TIMEOUT_MS = 5000
#: SQLite virtual-machine steps between two looks at the clock of a running history query.
_PROGRESS_STEPS = 10_000

#: Page cache of the writer connection (KiB; SQLite's default is 2 MiB). Each transaction
#: of a busy floor touches a leaf page per terminal in each per-terminal index; with 3,000
#: terminals those pages no longer fit the default cache once the table holds some 100,000
#: events, and every insert reads them back (docs/performance.md, "the store as it grows").
_WRITER_CACHE_KIB = 64 * 1024

#: WAL pages after which a commit of the writer completes the checkpoint itself (SQLite's
#: default is 1,000: 4 MiB). The copying is done by :class:`hub.wal_checkpoint.WalCheckpointer`
#: shortly after each commit, off the commit's path; the writer's own checkpoint then finds
#: nearly everything copied, completes it, and the WAL starts over from its beginning,
#: which keeps its size bounded. Alone (before the checkpoint thread), this limit made one
#: commit a second at 10,000 events/s copy 10,000 pages: 55-135 ms for that commit and the
#: acks behind it (docs/performance.md, "The checkpoint off the commit path").
_WRITER_CHECKPOINT_PAGES = 10_000

#: Most rows in one multi-row INSERT (a power of two; fewer where the library allows fewer
#: bound parameters: :func:`_insert_many`).
_ROWS_PER_STATEMENT = 256

_EVENT_INSERT = ("INSERT{verb} INTO events (source, seq, id, terminal_id, channel, event,"
                 " timestamp, data, received_at) VALUES ")
_EVENT_VALUES = "(?,?,?,?,?,?,?,?,?)"
_ACKED_INSERT = "INSERT INTO terminals (terminal_id, acked_seq) VALUES "
_ACKED_UPSERT = (" ON CONFLICT (terminal_id) DO UPDATE SET"
                 " acked_seq = max(acked_seq, excluded.acked_seq)")


def _insert_many(db: sqlite3.Connection, head: str, values: str, rows: Sequence[Sequence[Any]],
                 tail: str = "", *, last_ids: list[tuple[int, int]] | None = None) -> int:
    """``head`` + ``values`` for each of ``rows`` + ``tail``, as multi-row statements of
    power-of-two sizes; returns the rows changed.

    Not ``executemany``: the sqlite3 module releases the interpreter lock around each row's
    step and must take it back for the next row, so a writer thread inserting 1,000 rows
    waits for the lock 1,000 times while the event loop holds it. With the loop 70-90 % busy
    that made a 1,000-row commit 2.3-3.9 times longer (bench/store_gil.py; docs/performance.md,
    "The writer and the interpreter lock"). One step per 256 rows takes it back 4 times. The
    statement texts (one per power of two) stay in the connection's statement cache.
    ``last_ids``, if given, gets each statement's rows changed and ``lastrowid``
    (:func:`_assign_cursors`)."""
    width = values.count("?")
    most = _ROWS_PER_STATEMENT
    while most > 1 and most * width > db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER):
        most //= 2
    changed = 0
    start = 0
    while start < len(rows):
        size = most
        while size > len(rows) - start:
            size //= 2
        chunk = rows[start:start + size]
        sql = head + ",".join([values] * size) + tail
        cur = db.execute(sql, [v for row in chunk for v in row])
        changed += cur.rowcount
        if last_ids is not None:
            last_ids.append((cur.rowcount, cur.lastrowid or 0))
        start += size
    return changed


def _assign_cursors(db: sqlite3.Connection, new_rows: list[tuple[Any, ...]],
                    frames: list[dict[str, Any]], last_ids: list[tuple[int, int]],
                    before: int | None) -> int | None:
    """Set ``frame["cursor"]`` to the row id each new frame was stored under; return the
    last one (``before`` when there were none).

    Called inside the insert transaction, right after the insert of ``new_rows`` by the
    statements of ``last_ids`` (rows inserted and ``lastrowid`` of each, in order).
    AUTOINCREMENT numbers the rows one after another, each above every id the table ever
    had. ``before`` is the last id this connection stored (None: not known yet): when each
    statement's last id is exactly ``before`` plus the rows inserted so far, the rows hold
    ``before + 1`` onwards, and no statement more is needed (strictly increasing ids, as
    many as rows, ending there). Otherwise (the first insert after opening, or rows another
    connection inserted meanwhile) the sequence's value is read; if a row id was skipped
    somehow the ids are read back.
    """
    if not new_rows:
        return before
    if before is not None:
        expected = before
        for count, last in last_ids:
            expected += count
            if last != expected:
                break
        else:
            if expected == before + len(new_rows):
                for offset, frame in enumerate(frames, start=before + 1):
                    frame["cursor"] = offset
                return expected
    last = int(db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
               .fetchone()[0])
    first = last - len(new_rows) + 1
    row = db.execute("SELECT source, seq FROM events WHERE n = ?", (first,)).fetchone()
    if row is not None and (row[0], row[1]) == (new_rows[0][0], new_rows[0][1]):
        for offset, frame in enumerate(frames):
            frame["cursor"] = first + offset
        return last
    for frame, new in zip(frames, new_rows, strict=True):  # pragma: no cover - defensive
        frame["cursor"] = int(db.execute("SELECT n FROM events WHERE source = ? AND seq = ?",
                                         (new[0], new[1])).fetchone()[0])
    return last


def _migrate(db: sqlite3.Connection) -> None:
    """Create the tables, or bring a database an older hub wrote to this version's indexes
    (hub.sql_dialect.OBSOLETE_INDEXES dropped: the schema does it on every open, a no-op
    once done); ``user_version`` then says which layout the file has."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    existing = [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")]
    old = obsolete_indexes(existing)
    if old:
        log.info("database of schema version %d: dropping the indexes %s (docs/scaling.md,"
                 " \"Indexes\")", version, ", ".join(old))
    db.executescript(schema(SQLITE, existing))
    if version < SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


class SqliteDb:
    """A :class:`hub.store_sql.Db` on one SQLite connection (the thread that made it)."""

    dialect: Dialect = SQLITE

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(sql, args).fetchall()

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return int(self.conn.execute(sql, args).rowcount)

    def schema(self, ddl: str) -> None:
        self.conn.executescript(ddl)

    def close(self) -> None:
        self.conn.close()


def _connect(path: Path | str, synchronous: str, *, any_thread: bool) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=not any_thread)
    db.row_factory = sqlite3.Row
    db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
    return db


class HubStore(SqlStore):
    """A :class:`hub.store_api.Store` in one SQLite file."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self._path = str(path)
        self._db = _connect(path, synchronous, any_thread=False)
        _migrate(self._db)
        self.db = SqliteDb(self._db)
        # Used only on the writer thread (created here, so it may cross threads once).
        self._writer_db = _connect(path, synchronous, any_thread=True)
        self._writer_db.execute(f"PRAGMA cache_size=-{_WRITER_CACHE_KIB}")
        self._writer_db.execute(f"PRAGMA wal_autocheckpoint={_WRITER_CHECKPOINT_PAGES}")
        self.checkpointer = WalCheckpointer(
            self._path, lambda: _connect(path, synchronous, any_thread=True))
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-store")
        self._hub_reserved = 0  # next hub seq not yet handed out (reserve_hub_seqs)
        #: The last event row id the writer stored (None: not known), so that a commit
        #: numbers its rows without reading the sequence back (:func:`_assign_cursors`).
        self._last_cursor: int | None = None

    def open_history_db(self, query_limit_s: float, over_time: Callable[[], bool]) -> SqliteDb:
        """A read-only connection for a history worker thread (hub.history_runner): WAL lets
        it read while the writer writes; ``query_only`` keeps it from writing; the progress
        handler stops a query once ``over_time()`` (``query_limit_s`` is the runner's)."""
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout={_HISTORY_BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA query_only=ON")
        db.set_progress_handler(lambda: int(over_time()), _PROGRESS_STEPS)
        return SqliteDb(db)

    def _close_connections(self) -> None:
        self.checkpointer.stop()
        self._writer_db.close()
        self._db.close()

    # ---------------------------------------------------------------- events

    def insert_events(self, writes: Sequence[EventWrite], received_at: float) -> list[bool]:
        """Store event frames in ONE transaction; per frame, False if (source, seq) was
        already stored (a duplicate, also within the batch).

        Runs on the writer connection: call it from the writer thread (:meth:`write_events`)
        or while nothing else uses the store. A batch holds the events of many terminals
        (hub/ingest.py), nearly always new ones: they go in with multi-row statements of
        ``INSERT OR IGNORE``, and only if that reports fewer rows than it was given (a
        terminal resending after a lost ack) is the transaction rolled back and done again
        the exact way, finding the duplicates with one range query per source. The writer
        thread holds the interpreter lock for as little Python work per event as possible
        (the event loop needs it for the next burst meanwhile), and takes it back as seldom
        as possible (:func:`_insert_many`).
        """
        db = self._writer_db
        acked: dict[str, int] = {}
        for w in writes:
            if w.acked_seq is not None:
                acked[w.source] = max(acked.get(w.source, 0), w.acked_seq)
        rows = [(w.source, f["seq"], f["id"], f["terminalId"], f["channel"], f["event"],
                 f["timestamp"], w.data_text if w.data_text is not None
                 else data_text(f["data"]), received_at)
                for w in writes for f in (w.frame,)]
        last_ids: list[tuple[int, int]] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            stored = _insert_many(db, _EVENT_INSERT.format(verb=" OR IGNORE"), _EVENT_VALUES,
                                  rows, last_ids=last_ids)
            if stored != len(rows):
                db.execute("ROLLBACK")
                return self._insert_exact(writes, rows, acked)
            last = _assign_cursors(db, rows, [w.frame for w in writes], last_ids,
                                   self._last_cursor)  # as in _insert_exact
            self._advance_acked(acked)
            db.execute("COMMIT")
        except BaseException:
            self._last_cursor = None
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._last_cursor = last
        self.checkpointer.written()
        return [True] * len(rows)

    def _advance_acked(self, acked: dict[str, int]) -> None:
        _insert_many(self._writer_db, _ACKED_INSERT, "(?,?)", list(acked.items()),
                     _ACKED_UPSERT)

    def _insert_exact(self, writes: Sequence[EventWrite], rows: list[tuple[Any, ...]],
                      acked: dict[str, int]) -> list[bool]:
        db = self._writer_db
        spans: dict[str, tuple[int, int]] = {}
        for w in writes:
            seq = w.frame["seq"]
            lo, hi = spans.get(w.source, (seq, seq))
            spans[w.source] = (min(lo, seq), max(hi, seq))
        inserted: list[bool] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            # Only this connection (on the writer thread) inserts events, inside this
            # transaction: what the SELECT finds absent is still absent at the INSERT.
            seen = {(source, int(row[0])) for source, (lo, hi) in spans.items()
                    for row in db.execute("SELECT seq FROM events WHERE source = ?"
                                          " AND seq BETWEEN ? AND ?", (source, lo, hi))}
            new_rows = []
            new_frames = []
            for row, w in zip(rows, writes, strict=True):
                key = (row[0], row[1])
                fresh = key not in seen
                inserted.append(fresh)
                if fresh:
                    seen.add(key)
                    new_rows.append(row)
                    new_frames.append(w.frame)
            last_ids: list[tuple[int, int]] = []
            _insert_many(db, _EVENT_INSERT.format(verb=""), _EVENT_VALUES, new_rows,
                         last_ids=last_ids)
            # Every stored event gets its hub cursor (protocol.md §3), also on the frame
            # that is fanned out: clients resume from it (hub.replay).
            last = _assign_cursors(db, new_rows, new_frames, last_ids, self._last_cursor)
            self._advance_acked(acked)
            db.execute("COMMIT")
        except BaseException:
            self._last_cursor = None
            db.execute("ROLLBACK")
            raise
        self._last_cursor = last
        self.checkpointer.written()
        return inserted

    def next_hub_seq(self) -> int:
        """The seq of the next hub event; also right once old hub events were pruned (the
        hub's counter is kept in ``terminals`` under the reserved id ``hub``)."""
        row = self._db.execute(
            "SELECT max(seq) FROM events WHERE source = ?", (HUB_SOURCE,)
        ).fetchone()
        return max(int(row[0] or 0), self.acked_seq(HUB_SOURCE)) + 1

    def reserve_hub_seqs(self, count: int) -> int:
        """The first of ``count`` hub event seqs for this hub. One process owns a SQLite
        file, so the block is simply the next ``count`` seqs."""
        first = max(self._hub_reserved, self.next_hub_seq())
        self._hub_reserved = first + count
        return first

    # ---------------------------------------------------------------- retention

    def _prune_boundary(self, cutoff: float) -> int:
        # Rows are appended as they are received: the first one received at or after the
        # cutoff bounds the scan (a row received earlier behind it, after the clock was set
        # back, goes at a later prune).
        db = self._writer_db
        row = db.execute("SELECT n FROM events WHERE received_at >= ? ORDER BY n LIMIT 1",
                         (cutoff,)).fetchone()
        if row is not None:
            return int(row[0])
        last = db.execute("SELECT max(n) FROM events").fetchone()
        return int(last[0] or 0) + 1

    def _prune_chunk(self, cutoff: float, boundary: int, chunk: int) -> int:
        db = self._writer_db
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.execute(
                "DELETE FROM events WHERE n IN (SELECT n FROM events WHERE n < ?"
                " AND received_at < ? ORDER BY n LIMIT ?)", (boundary, cutoff, chunk))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.checkpointer.written()
        return int(cur.rowcount)

    def _prune_rest(self, cutoff: float, final_statuses: tuple[str, ...]) -> None:
        db = self._writer_db
        db.execute("BEGIN IMMEDIATE")
        try:
            # The acknowledgements whose alert is gone, found by (source, seq): no index on
            # the events' id (hub.store_sql.SqlStore.get_event).
            ids, sources, seqs = acked_alert_keys(
                [r["event_id"] for r in db.execute("SELECT event_id FROM alert_acks").fetchall()])
            gone = [(i,) for i, source, seq in zip(ids, sources, seqs, strict=True)
                    if source is None or db.execute(
                        "SELECT 1 FROM events WHERE source = ? AND seq = ? AND id = ?",
                        (source, seq, i)).fetchone() is None]
            db.executemany("DELETE FROM alert_acks WHERE event_id = ?", gone)
            db.execute(
                f"DELETE FROM actions WHERE created_at < ? AND status IN"
                f" ({','.join('?' * len(final_statuses))})", (cutoff, *final_statuses))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
