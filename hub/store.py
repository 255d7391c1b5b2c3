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
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.wire import ATTENDANT_EVENTS, INFORMATIONAL_ALERTS, too_deep

log = logging.getLogger("hub.store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,          -- terminalId, or 'hub' for events the hub generates
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    data TEXT NOT NULL,
    received_at REAL NOT NULL,
    UNIQUE (source, seq)
);
CREATE INDEX IF NOT EXISTS events_by_id ON events (id);
CREATE INDEX IF NOT EXISTS events_by_terminal ON events (terminal_id, event, timestamp);
CREATE INDEX IF NOT EXISTS events_by_name ON events (event, timestamp);
CREATE TABLE IF NOT EXISTS terminals (
    terminal_id TEXT PRIMARY KEY,
    acked_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_acks (
    event_id TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    by TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
    id TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    message TEXT NOT NULL,         -- the action as forwarded to the terminal
    sender TEXT NOT NULL,
    status TEXT NOT NULL,          -- queued, sent, accepted, rejected, or a final status
    deadline REAL,                 -- epoch seconds after which a queued action expires
    result TEXT,                   -- the final actionResult
    created_at REAL NOT NULL
);
"""

HUB_SOURCE = "hub"

# Alerts an operator must acknowledge (api.wire.needs_ack, in SQL).
_NEEDS_ACK = ("((e.channel = 'alerts' AND e.event NOT IN ("
              + ",".join(f"'{name}'" for name in sorted(INFORMATIONAL_ALERTS)) + "))"
              + " OR e.event IN (" + ",".join(f"'{name}'" for name in sorted(ATTENDANT_EVENTS))
              + "))")

#: ``data.amount`` in SQL; a stored value SQLite cannot read as JSON counts as nothing
#: instead of failing the whole sum (and every snapshot with it).
_AMOUNT = "CASE WHEN json_valid(data) THEN json_extract(data, '$.amount') END"

#: How long a connection waits for the other one's write transaction (milliseconds).
_BUSY_TIMEOUT_MS = 10_000

#: Page cache of the writer connection (KiB; SQLite's default is 2 MiB). Each transaction
#: of a busy floor touches a leaf page per terminal in each per-terminal index; with 3,000
#: terminals those pages no longer fit the default cache once the table holds some 100,000
#: events, and every insert reads them back (docs/performance.md, "the store as it grows").
_WRITER_CACHE_KIB = 64 * 1024

#: How ``data`` is stored: compact JSON, non-ASCII as itself (one encoder for every row:
#: ``json.dumps`` would build one per call).
_DATA_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _int64(total: float) -> int:
    """SQLite's ``total()`` (a float: it never overflows, unlike ``sum()``) as an integer
    clamped to 64 bits, so a hostile flood of large amounts cannot break a snapshot."""
    return int(max(-(2**63), min(float(total), 2**63 - 1024)))


@dataclass(frozen=True, slots=True)
class EventWrite:
    """One event to store: the frame, whose seq space it is in, and the ack it allows.

    ``acked_seq`` (terminal events received in order) is persisted in the same transaction
    as the event, so the acknowledged position never runs ahead of the stored events.
    ``data_text`` is ``frame["data"]`` as stored (compact JSON, :func:`data_text`), when the
    caller encoded it already: it is encoded once for the store and the fan-out
    (hub/fanout.py).
    """

    frame: dict[str, Any]
    source: str
    acked_seq: int | None = None
    data_text: str | None = None


def data_text(data: Any) -> str:
    """``data`` as it is stored: compact JSON, non-ASCII as itself."""
    return _DATA_ENCODER.encode(data)


@dataclass(frozen=True, slots=True)
class StoredAction:
    id: str
    terminal_id: str
    message: dict[str, Any]
    sender: str
    status: str
    deadline: float | None
    result: dict[str, Any] | None

    @property
    def name(self) -> str:
        """The action's name (``lock``, ...), as forwarded to the terminal."""
        return str(self.message["action"])


#: A row as both stores return it: ``sqlite3.Row`` or psycopg's dict, read by column name.
_Row = Any


def _frame(row: _Row) -> dict[str, Any]:
    """A stored event as the frame clients get: with its ``cursor`` (the row id ``n``)."""
    return {"type": "event", "id": row["id"], "seq": row["seq"], "channel": row["channel"],
            "terminalId": row["terminal_id"], "event": row["event"],
            "timestamp": row["timestamp"], "data": json.loads(row["data"]), "cursor": row["n"]}


def stored_frame(row: sqlite3.Row) -> dict[str, Any] | None:
    """The row's frame for the read-side modules (hub.history, hub.replay, hub.floor), or
    None when it cannot be read back (logged; the caller skips it: :func:`_readable`)."""
    return _readable(row)


def _assign_cursors(db: sqlite3.Connection, new_rows: list[tuple[Any, ...]],
                    frames: list[dict[str, Any]]) -> None:
    """Set ``frame["cursor"]`` to the row id each new frame was stored under.

    Called inside the insert transaction, right after the ``executemany`` of ``new_rows``:
    AUTOINCREMENT numbers them one after another from the sequence's old value, so the last
    one is the sequence's value now. If a row id was skipped somehow the ids are read back.
    """
    if not new_rows:
        return
    last = int(db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
               .fetchone()[0])
    first = last - len(new_rows) + 1
    row = db.execute("SELECT source, seq FROM events WHERE n = ?", (first,)).fetchone()
    if row is not None and (row[0], row[1]) == (new_rows[0][0], new_rows[0][1]):
        for offset, frame in enumerate(frames):
            frame["cursor"] = first + offset
        return
    for frame, new in zip(frames, new_rows, strict=True):  # pragma: no cover - defensive
        frame["cursor"] = int(db.execute("SELECT n FROM events WHERE source = ? AND seq = ?",
                                         (new[0], new[1])).fetchone()[0])


def _readable(row: _Row | None) -> dict[str, Any] | None:
    """The row's frame, or None (logged) if it cannot be read back and sent on.

    No stored value may break a snapshot or a history for every client: a row written by an
    older hub that did not bound nesting (api.wire.MAX_JSON_DEPTH), or damaged on disk, is
    skipped, one row at a time, never the whole answer.
    """
    if row is None:
        return None
    try:
        text = row["data"]
        if not isinstance(text, str) or too_deep(text):
            raise ValueError("data is not JSON text within the nesting limit")
        frame = _frame(row)
        if not isinstance(frame["data"], dict):
            raise ValueError("data is not an object")
        _DATA_ENCODER.encode(frame["data"])  # it can be sent on, too
        return frame
    except Exception as exc:  # any stored value: ValueError, RecursionError, TypeError...
        log.warning("stored event %r (row %s) cannot be read back, skipped: %s",
                    str(row["id"])[:80], row["n"], str(exc)[:120])
        return None


def _readable_frames(rows: Iterable[_Row]) -> list[dict[str, Any]]:
    return [f for f in map(_readable, rows) if f is not None]


def _connect(path: Path | str, synchronous: str, *, any_thread: bool) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=not any_thread)
    db.row_factory = sqlite3.Row
    db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
    return db


class HubStore:
    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self._db = _connect(path, synchronous, any_thread=False)
        self._db.executescript(_SCHEMA)
        # Used only on the writer thread (created here, so it may cross threads once).
        self._writer_db = _connect(path, synchronous, any_thread=True)
        self._writer_db.execute(f"PRAGMA cache_size=-{_WRITER_CACHE_KIB}")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-store")
        self._hub_reserved = 0  # next hub seq not yet handed out (reserve_hub_seqs)

    @property
    def reader(self) -> sqlite3.Connection:
        """The event-loop thread's connection, for the read-only queries of hub.history,
        hub.replay and hub.audit (WAL: they read while a batch is written)."""
        return self._db

    def close(self) -> None:
        """Finish the writes already submitted, then close both connections."""
        self._writer.shutdown(wait=True)
        self._writer_db.close()
        self._db.close()

    # ---------------------------------------------------------------- events

    async def write_events(self, writes: Sequence[EventWrite], received_at: float
                           ) -> list[bool]:
        """:meth:`insert_events` on the writer thread; batches commit in submission order."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self.insert_events, writes,
                                          received_at)

    def insert_events(self, writes: Sequence[EventWrite], received_at: float) -> list[bool]:
        """Store event frames in ONE transaction; per frame, False if (source, seq) was
        already stored (a duplicate, also within the batch).

        Runs on the writer connection: call it from the writer thread (:meth:`write_events`)
        or while nothing else uses the store. A batch holds the events of many terminals
        (hub/ingest.py), nearly always new ones: they go in with one ``executemany`` of
        ``INSERT OR IGNORE``, and only if that reports fewer rows than it was given (a
        terminal resending after a lost ack) is the transaction rolled back and done again
        the exact way, finding the duplicates with one range query per source. The writer
        thread holds the interpreter lock for as little Python work per event as possible
        (the event loop needs it for the next burst meanwhile).
        """
        db = self._writer_db
        acked: dict[str, int] = {}
        for w in writes:
            if w.acked_seq is not None:
                acked[w.source] = max(acked.get(w.source, 0), w.acked_seq)
        rows = [(w.source, f["seq"], f["id"], f["terminalId"], f["channel"], f["event"],
                 f["timestamp"], w.data_text if w.data_text is not None
                 else _DATA_ENCODER.encode(f["data"]), received_at)
                for w in writes for f in (w.frame,)]
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.executemany(
                "INSERT OR IGNORE INTO events (source, seq, id, terminal_id, channel, event,"
                " timestamp, data, received_at) VALUES (?,?,?,?,?,?,?,?,?)", rows)
            if cur.rowcount != len(rows):
                db.execute("ROLLBACK")
                return self._insert_exact(writes, rows, acked)
            _assign_cursors(db, rows, [w.frame for w in writes])  # as in _insert_exact
            self._advance_acked(acked)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return [True] * len(rows)

    def _advance_acked(self, acked: dict[str, int]) -> None:
        self._writer_db.executemany(
            "INSERT INTO terminals (terminal_id, acked_seq) VALUES (?, ?) ON CONFLICT"
            " (terminal_id) DO UPDATE SET acked_seq = max(acked_seq, excluded.acked_seq)",
            list(acked.items()))

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
            db.executemany(
                "INSERT INTO events (source, seq, id, terminal_id, channel, event, timestamp,"
                " data, received_at) VALUES (?,?,?,?,?,?,?,?,?)", new_rows)
            # Every stored event gets its hub cursor (protocol.md §3), also on the frame
            # that is fanned out: clients resume from it (hub.replay).
            _assign_cursors(db, new_rows, new_frames)
            self._advance_acked(acked)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return inserted

    def insert_event(self, frame: dict[str, Any], *, source: str, received_at: float,
                     acked_seq: int | None = None) -> bool:
        """Store one event frame now (blocking, on the writer thread); False if (source, seq)
        was already stored. For tools and tests; the hub uses :meth:`write_events`."""
        writes = [EventWrite(frame, source, acked_seq)]
        return self._writer.submit(self.insert_events, writes, received_at).result()[0]

    def acked_seq(self, terminal_id: str) -> int:
        row = self._db.execute(
            "SELECT acked_seq FROM terminals WHERE terminal_id = ?", (terminal_id,)
        ).fetchone()
        return int(row[0]) if row else 0

    def set_acked_seq(self, terminal_id: str, acked_seq: int) -> None:
        self._db.execute(
            "INSERT INTO terminals (terminal_id, acked_seq) VALUES (?, ?) ON CONFLICT"
            " (terminal_id) DO UPDATE SET acked_seq = max(acked_seq, excluded.acked_seq)",
            (terminal_id, acked_seq),
        )

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

    def known_terminals(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT terminal_id FROM events").fetchall()
        return [r[0] for r in rows]

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
        return _readable(row)

    def events(self, terminal_id: str | None = None) -> list[dict[str, Any]]:
        """All stored events in storage order, as the terminal sent them (without the hub's
        ``cursor``; tests, exports)."""
        if terminal_id is None:
            rows = self._db.execute("SELECT * FROM events ORDER BY n").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM events WHERE terminal_id = ? ORDER BY n", (terminal_id,)
            ).fetchall()
        frames = _readable_frames(rows)
        for frame in frames:
            del frame["cursor"]
        return frames

    def recent(self, limit: int, terminals: Iterable[str] | None) -> list[dict[str, Any]]:
        """The last ``limit`` events, newest first, optionally for some terminals only."""
        sql, args = "SELECT * FROM events", []
        if terminals is not None:
            ids = list(terminals)
            sql += f" WHERE terminal_id IN ({','.join('?' * len(ids))})"
            args.extend(ids)
        rows = self._db.execute(sql + " ORDER BY n DESC LIMIT ?", (*args, limit)).fetchall()
        return _readable_frames(rows)

    def unacked_alerts(self, limit: int, terminals: Iterable[str] | None
                       ) -> list[dict[str, Any]]:
        """Alerts needing an acknowledgement that have none, newest first."""
        sql = ("SELECT e.* FROM events e LEFT JOIN alert_acks a ON a.event_id = e.id"
               f" WHERE {_NEEDS_ACK} AND a.event_id IS NULL")
        args: list[Any] = []
        if terminals is not None:
            ids = list(terminals)
            sql += f" AND e.terminal_id IN ({','.join('?' * len(ids))})"
            args.extend(ids)
        rows = self._db.execute(sql + " ORDER BY e.n DESC LIMIT ?", (*args, limit)).fetchall()
        return _readable_frames(rows)

    def count_unacked_alerts(self, terminal_id: str) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM events e LEFT JOIN alert_acks a ON a.event_id = e.id"
            f" WHERE {_NEEDS_ACK} AND a.event_id IS NULL AND e.terminal_id = ?",
            (terminal_id,),
        ).fetchone()
        return int(row[0])

    def last_event(self, terminal_id: str, names: Iterable[str] | None = None
                   ) -> dict[str, Any] | None:
        sql, args = "SELECT * FROM events WHERE terminal_id = ?", [terminal_id]
        if names is not None:
            wanted = list(names)
            sql += f" AND event IN ({','.join('?' * len(wanted))})"
            args.extend(wanted)
        row = self._db.execute(sql + " ORDER BY n DESC LIMIT 1", args).fetchone()
        return _readable(row)

    def last_door_events(self, terminal_id: str) -> list[dict[str, Any]]:
        """The last ``doorOpened`` / ``doorClosed`` of each door of the terminal (those with
        ``powerOff`` true left out: a door opened while the machine was off)."""
        rows = self._db.execute(
            "SELECT e.* FROM events e JOIN (SELECT max(n) AS n FROM events"
            " WHERE terminal_id = ? AND event IN ('doorOpened', 'doorClosed')"
            # A damaged row is skipped, not the whole query (and the hub's start).
            " AND json_valid(data) AND"
            " (CASE WHEN json_valid(data) THEN json_extract(data, '$.powerOff') END) IS NOT 1"
            " GROUP BY json_extract(data, '$.door')) d ON d.n = e.n", (terminal_id,))
        return _readable_frames(rows)

    def day_money(self, terminal_id: str, since: str, until: str) -> tuple[int, int, int]:
        """Coin in, coin out and games (``data.games``, else 1 per ``betPlaced``) of the
        terminal with since <= timestamp < until."""
        row = self._db.execute(
            "SELECT total(CASE WHEN event = 'betPlaced' THEN json_extract(data, '$.amount')"
            " END), total(CASE WHEN event = 'winPaid' THEN json_extract(data, '$.amount') END),"
            " total(CASE WHEN event = 'betPlaced' THEN"
            " coalesce(json_extract(data, '$.games'), 1) END)"
            " FROM events WHERE terminal_id = ? AND event IN ('betPlaced', 'winPaid')"
            " AND timestamp >= ? AND timestamp < ? AND json_valid(data)",
            (terminal_id, since, until),
        ).fetchone()
        return _int64(row[0]), _int64(row[1]), _int64(row[2])

    def amount_sum(self, terminal_id: str, event: str, since: str, until: str) -> int:
        """Sum of ``data.amount`` of ``event`` with since <= timestamp < until."""
        row = self._db.execute(
            f"SELECT total({_AMOUNT}) FROM events WHERE terminal_id = ? AND event = ?"
            " AND timestamp >= ? AND timestamp < ?",
            (terminal_id, event, since, until),
        ).fetchone()
        return _int64(row[0])

    def amounts_by_minute(self, event: str, since: str, terminals: Iterable[str] | None
                          ) -> dict[str, int]:
        """``{"YYYY-MM-DDTHH:MM": total}`` of ``data.amount`` since ``since``."""
        sql = ("SELECT substr(timestamp, 1, 16) AS m,"
               f" total({_AMOUNT}) FROM events WHERE event = ? AND timestamp >= ?")
        args: list[Any] = [event, since]
        if terminals is not None:
            ids = list(terminals)
            sql += f" AND terminal_id IN ({','.join('?' * len(ids))})"
            args.extend(ids)
        rows = self._db.execute(sql + " GROUP BY m", args).fetchall()
        return {r[0]: _int64(r[1] or 0) for r in rows}

    # ---------------------------------------------------------------- retention

    async def prune(self, cutoff: float, final_statuses: Iterable[str], *,
                    chunk: int = 5000) -> int:
        """Delete what was received before ``cutoff`` (epoch seconds): events, the
        acknowledgements of deleted alerts, settled actions. Returns the events deleted.

        Each chunk is its own transaction on the writer thread, so event batches are
        stored between chunks and a first prune of a large database does not hold them up.
        """
        loop = asyncio.get_running_loop()
        boundary = await loop.run_in_executor(self._writer, self._prune_boundary, cutoff)
        total = 0
        while True:
            deleted = await loop.run_in_executor(self._writer, self._prune_chunk, cutoff,
                                                 boundary, chunk)
            total += deleted
            if deleted < chunk:
                break
        await loop.run_in_executor(self._writer, self._prune_rest, cutoff,
                                   tuple(final_statuses))
        return total

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
        return int(cur.rowcount)

    def _prune_rest(self, cutoff: float, final_statuses: tuple[str, ...]) -> None:
        db = self._writer_db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM alert_acks WHERE event_id NOT IN (SELECT id FROM events)")
            db.execute(
                f"DELETE FROM actions WHERE created_at < ? AND status IN"
                f" ({','.join('?' * len(final_statuses))})", (cutoff, *final_statuses))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # ---------------------------------------------------------------- alert acks

    def alert_ack(self, event_id: str) -> tuple[str, str] | None:
        row = self._db.execute(
            "SELECT by, at FROM alert_acks WHERE event_id = ?", (event_id,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def add_alert_ack(self, event_id: str, terminal_id: str, by: str, at: str) -> bool:
        cur = self._db.execute(
            "INSERT OR IGNORE INTO alert_acks (event_id, terminal_id, by, at) VALUES (?,?,?,?)",
            (event_id, terminal_id, by, at),
        )
        return cur.rowcount == 1

    # ---------------------------------------------------------------- actions

    def add_action(self, message: dict[str, Any], *, sender: str, status: str,
                   deadline: float | None, created_at: float) -> bool:
        cur = self._db.execute(
            "INSERT OR IGNORE INTO actions (id, terminal_id, message, sender, status, deadline,"
            " created_at) VALUES (?,?,?,?,?,?,?)",
            (message["id"], message["terminalId"], json.dumps(message, ensure_ascii=False),
             sender, status, deadline, created_at),
        )
        return cur.rowcount == 1

    def set_action_status(self, action_id: str, status: str,
                          result: dict[str, Any] | None = None) -> None:
        if result is None:
            self._db.execute("UPDATE actions SET status = ? WHERE id = ?", (status, action_id))
        else:
            self._db.execute(
                "UPDATE actions SET status = ?, result = ? WHERE id = ?",
                (status, json.dumps(result, ensure_ascii=False), action_id),
            )

    def claim_action(self, action_id: str, expected: str, status: str,
                     result: dict[str, Any] | None = None) -> bool:
        """Move an action from ``expected`` to ``status`` (and its result) in one statement;
        False if it was not in ``expected``."""
        cur = self._db.execute(
            "UPDATE actions SET status = ?, result = coalesce(?, result)"
            " WHERE id = ? AND status = ?",
            (status, None if result is None else json.dumps(result, ensure_ascii=False),
             action_id, expected))
        return cur.rowcount == 1

    def get_action(self, action_id: str) -> StoredAction | None:
        row = self._db.execute("SELECT * FROM actions WHERE id = ?", (action_id,)).fetchone()
        return self._action(row) if row else None

    def queued_actions(self, terminal_id: str | None = None) -> list[StoredAction]:
        sql, args = "SELECT * FROM actions WHERE status = 'queued'", []
        if terminal_id is not None:
            sql += " AND terminal_id = ?"
            args.append(terminal_id)
        rows = self._db.execute(sql + " ORDER BY created_at, rowid", args).fetchall()
        return [self._action(r) for r in rows]

    @staticmethod
    def _action(row: sqlite3.Row) -> StoredAction:
        return StoredAction(
            id=row["id"], terminal_id=row["terminal_id"], message=json.loads(row["message"]),
            sender=row["sender"], status=row["status"], deadline=row["deadline"],
            result=json.loads(row["result"]) if row["result"] else None,
        )
