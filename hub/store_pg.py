"""The hub's PostgreSQL store (config ``store: postgresql://…``): the same tables and the
same behaviour as the SQLite store (hub/store.py; both are held to
tests/hub/test_store_conformance.py), for a floor served by several hub instances.

Like the SQLite store it has two connections: the *writer* on the store's own thread, for
event batches (group commit, hub/ingest.py) and pruning, and the *loop* connection
(autocommit) for reads and the few small writes of alert acknowledgements and actions.
Every statement that must hold when several instances share the database is one atomic
statement: ``ON CONFLICT DO NOTHING`` de-duplicates events (also two instances storing the
same resent event), ``GREATEST`` advances the acknowledged seqs, an action changes status
only from the status it was read in (:meth:`PgStore.claim_action`).

Notifications (hub/cluster.py): the transaction that stores events also sends, with
``pg_notify``, the ids (``n``) of the rows it inserted on :data:`EVENTS_CHANNEL`; a
notification is delivered at commit, in commit order, so a listener that receives it can
read the rows. Messages for other instances' clients (alert acknowledgements, action
relays) are rows of ``notices``, announced the same way on :data:`NOTICES_CHANNEL`.
``synchronous: FULL`` is ``synchronous_commit = on`` (an ack survives a power loss of the
database server); ``NORMAL`` is ``off`` (a crash may lose the last commits, never corrupt).

Over 500 lines on purpose: it is one class mirroring hub/store.py method for method (the
conformance suite holds them together), plus the SQL it needs; split, the two stores would
no longer read side by side.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg.rows import dict_row

from hub.store import (
    _DATA_ENCODER,
    _NEEDS_ACK,
    HUB_SOURCE,
    EventWrite,
    StoredAction,
    _int64,
    _readable,
    _readable_frames,
)

log = logging.getLogger("hub.store")

#: Channel of the event notifications: ``<origin> <n>[-<m>][,…]`` (inserted row ids).
EVENTS_CHANNEL = "slot_hub_events"
#: Channel of the notice notifications: ``<origin> <n>`` (a row of ``notices``).
NOTICES_CHANNEL = "slot_hub_notices"
#: PostgreSQL's limit on a notification's payload is 8000 bytes; stay well below.
_MAX_PAYLOAD = 7000
#: Key of the advisory lock that serialises schema creation by instances starting together.
_SCHEMA_LOCK = 0x5107_4B0B

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source TEXT NOT NULL,
    seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    data TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    UNIQUE (source, seq)
);
CREATE INDEX IF NOT EXISTS events_by_id ON events (id);
CREATE INDEX IF NOT EXISTS events_by_terminal ON events (terminal_id, event, timestamp);
CREATE INDEX IF NOT EXISTS events_by_name ON events (event, timestamp);
CREATE INDEX IF NOT EXISTS events_by_received ON events (received_at);
CREATE TABLE IF NOT EXISTS terminals (
    terminal_id TEXT PRIMARY KEY,
    acked_seq BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_acks (
    event_id TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    "by" TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
    n BIGINT GENERATED ALWAYS AS IDENTITY,
    id TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    message TEXT NOT NULL,
    sender TEXT NOT NULL,
    status TEXT NOT NULL,
    deadline DOUBLE PRECISION,
    result TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    origin TEXT PRIMARY KEY,
    seen_at DOUBLE PRECISION NOT NULL  -- the database's clock (epoch seconds)
);
CREATE TABLE IF NOT EXISTS presence (
    terminal_id TEXT PRIMARY KEY,
    origin TEXT NOT NULL               -- the instance the terminal is connected to
);
CREATE TABLE IF NOT EXISTS notices (
    n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
"""

#: ``data.amount`` as a number, or NULL (also for a value that is not JSON): the column is
#: text, as in SQLite, so any stored value reads back byte for byte.
_AMOUNT = ("CASE WHEN json_typeof(d.j -> 'amount') = 'number'"
           " THEN (d.j ->> 'amount')::numeric END")
_AS_JSON = "LEFT JOIN LATERAL (SELECT e.data::json AS j) d ON true"

_EVENT_COLUMNS = ("n, source, seq, id, terminal_id, channel, event, timestamp, data,"
                  " received_at")


def id_ranges(ids: Iterable[int]) -> str:
    """``1-3,7``: sorted row ids as ranges (a notification's payload)."""
    out: list[str] = []
    run: list[int] = []
    for n in sorted(ids):
        if run and n == run[1] + 1:
            run[1] = n
            continue
        if run:
            out.append(str(run[0]) if run[0] == run[1] else f"{run[0]}-{run[1]}")
        run = [n, n]
    if run:
        out.append(str(run[0]) if run[0] == run[1] else f"{run[0]}-{run[1]}")
    return ",".join(out)


def parse_ranges(text: str) -> list[tuple[int, int]]:
    """The inverse of :func:`id_ranges`: ``[(first, last), …]``."""
    spans = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        spans.append((int(first), int(last or first)))
    return spans


def _payloads(origin: str, ids: list[int]) -> list[str]:
    """``<origin> <ranges>`` notifications, each under PostgreSQL's payload limit."""
    ranges = id_ranges(ids).split(",") if ids else []
    payloads: list[str] = []
    chunk: list[str] = []
    size = len(origin) + 1
    for part in ranges:
        if chunk and size + len(part) + 1 > _MAX_PAYLOAD:
            payloads.append(f"{origin} {','.join(chunk)}")
            chunk, size = [], len(origin) + 1
        chunk.append(part)
        size += len(part) + 1
    if chunk:
        payloads.append(f"{origin} {','.join(chunk)}")
    return payloads


#: The rows of an event notification (:func:`parse_ranges`: arrays of firsts and lasts).
#: One JSON array of row objects (``rows``): decoded by the json module, not row by row.
EVENTS_BY_IDS = (
    "SELECT coalesce(json_agg(json_build_object('n', e.n, 'source', e.source, 'seq', e.seq,"
    " 'id', e.id, 'terminal_id', e.terminal_id, 'channel', e.channel, 'event', e.event,"
    " 'timestamp', e.timestamp, 'data', e.data) ORDER BY e.n), '[]'::json) AS rows"
    " FROM events e JOIN unnest(%s::bigint[], %s::bigint[]) AS r(lo, hi)"
    " ON e.n BETWEEN r.lo AND r.hi")

#: As :data:`EVENTS_BY_IDS`, each row ready: ``[source, frame]``, the frame's ``data``
#: decoded by the same one decoding (:func:`frames_to_writes`). The rows were written by a
#: hub from checked frames; a row this cannot read (damaged, or written by an older hub
#: without the nesting bound) fails the query, and the caller reads them the careful way.
EVENTS_BY_IDS_FAST = (
    "SELECT coalesce(json_agg(json_build_array(e.source, json_build_object('type', 'event',"
    " 'id', e.id, 'seq', e.seq, 'channel', e.channel, 'terminalId', e.terminal_id,"
    " 'event', e.event, 'timestamp', e.timestamp, 'data', e.data::json, 'cursor', e.n))"
    " ORDER BY e.n),"
    " '[]'::json) AS rows FROM events e JOIN unnest(%s::bigint[], %s::bigint[]) AS r(lo, hi)"
    " ON e.n BETWEEN r.lo AND r.hi")


def frames_to_writes(rows: Iterable[list[Any]]) -> list[EventWrite]:
    """Rows read with :data:`EVENTS_BY_IDS_FAST` as writes (a terminal's event carries its
    seq as acknowledged); rows whose ``data`` is not an object are left out."""
    out = []
    for source, frame in rows:
        if isinstance(frame.get("data"), dict):
            acked = frame["seq"] if source == frame["terminalId"] else None
            out.append(EventWrite(frame, source, acked))
    return out


#: The row of a notice notification.
NOTICE_BY_ID = "SELECT kind, body FROM notices WHERE n = %s"


def rows_to_writes(rows: Iterable[dict[str, Any]]) -> list[EventWrite]:
    """Rows read with :data:`EVENTS_BY_IDS` as the writes they were, in storage order; a
    terminal's event carries its seq as acknowledged. Unreadable rows are left out."""
    out = []
    for row in rows:
        frame = _readable(row)
        if frame is not None:
            source = row["source"]
            acked = int(row["seq"]) if source == frame["terminalId"] else None
            out.append(EventWrite(frame, source, acked))
    return out


#: Batches as JSON text: one parameter for the whole batch.
_BATCH_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

_INSERT_ROWS = """
INSERT INTO events (source, seq, id, terminal_id, channel, event, timestamp, data, received_at)
SELECT r->>0, (r->>1)::bigint, r->>2, r->>3, r->>4, r->>5, r->>6, r->>7, %(at)s
FROM json_array_elements(%(rows)s::json) WITH ORDINALITY AS x(r, o) ORDER BY x.o
ON CONFLICT (source, seq) DO NOTHING"""

_ACKED = """
INSERT INTO terminals (terminal_id, acked_seq)
SELECT key, value::bigint FROM json_each_text(%(acked)s::json)
ON CONFLICT (terminal_id) DO UPDATE SET acked_seq = GREATEST(terminals.acked_seq,
                                                             excluded.acked_seq)"""

#: Insert, advance the acknowledged seqs, and notify the inserted ids as ranges (runs of
#: consecutive ids), at most 300 ranges per notification (PostgreSQL's payload limit is 8000
#: bytes): one statement, one row back (the count inserted).
_INSERT_FAST = f"""
WITH ins AS ({_INSERT_ROWS} RETURNING n),
acked AS ({_ACKED} RETURNING 1),
runs AS (SELECT min(n) AS lo, max(n) AS hi
         FROM (SELECT n, n - row_number() OVER (ORDER BY n) AS g FROM ins) t GROUP BY g),
parts AS (SELECT (row_number() OVER (ORDER BY lo) - 1) / 300 AS c, lo,
                 CASE WHEN lo = hi THEN lo::text ELSE lo::text || '-' || hi::text END AS r
          FROM runs),
notified AS (SELECT pg_notify(%(channel)s::text,
                              %(origin)s::text || ' ' || string_agg(r, ',' ORDER BY lo))
             FROM parts GROUP BY c)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM notified),
       (SELECT count(*) FROM acked), (SELECT min(n) FROM ins), (SELECT max(n) FROM ins),
       (SELECT CASE WHEN max(n) - min(n) + 1 <> count(*) THEN string_agg(n::text, ','
                     ORDER BY n) END FROM ins)"""

#: The slow path (duplicates in the batch): the keys that went in come back.
_INSERT_EXACT = _INSERT_ROWS + " RETURNING n, source, seq"


def _in(ids: Iterable[str]) -> tuple[str, list[str]]:
    """``= ANY(%s)`` and its array argument (one placeholder for any number of ids)."""
    return "= ANY(%s)", list(ids)


def _connect(url: str, synchronous: str) -> psycopg.Connection[dict[str, Any]]:
    conn = psycopg.connect(url, autocommit=True, row_factory=dict_row)
    _set_synchronous(conn, synchronous)
    return conn


def _set_synchronous(conn: psycopg.Connection[Any], synchronous: str) -> None:
    conn.execute("SELECT set_config('synchronous_commit', %s, false)",
                 ("on" if synchronous == "FULL" else "off",))


class PgStore:
    """A :class:`hub.store_api.Store` on PostgreSQL (psycopg 3)."""

    def __init__(self, url: str, *, synchronous: str = "FULL", origin: str = "") -> None:
        self.url = url
        self.origin = origin or "-"
        self._synchronous = synchronous
        self._loop_db = _connect(url, synchronous)
        with self._db.transaction():
            self._execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            self._execute(_SCHEMA)
        self._writer_conn = self._connect_writer()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-store-pg")
        self._hub_reserved = (0, 0)  # (next, end) of the block of hub seqs in hand

    def _connect_writer(self) -> psycopg.Connection[tuple[Any, ...]]:
        # Tuples, not dicts, on the writer: it handles the most rows.
        conn: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(self.url, autocommit=True)
        _set_synchronous(conn, self._synchronous)
        return conn

    # A connection lost (the server restarted, a network cut) fails the statement that found
    # it so (the caller answers `internal`; a terminal resends); the next use connects again.

    @property
    def _db(self) -> psycopg.Connection[dict[str, Any]]:
        """The loop connection, connected again if it was lost."""
        if self._loop_db.broken or self._loop_db.closed:
            self._loop_db = _connect(self.url, self._synchronous)
        return self._loop_db

    @property
    def _writer_db(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The writer connection (writer thread only), connected again if it was lost."""
        if self._writer_conn.broken or self._writer_conn.closed:
            self._writer_conn = self._connect_writer()
        return self._writer_conn

    def _execute(self, query: Any, params: Any = None) -> psycopg.Cursor[dict[str, Any]]:
        """A statement on the loop connection; once more on a new connection if the old one
        turns out to be lost (a statement whose answer was lost with its connection may have
        committed: the ``ON CONFLICT`` statements then report the row as already there)."""
        try:
            return self._db.execute(query, params)
        except psycopg.OperationalError:
            if not self._loop_db.broken:
                raise
            log.warning("store: the database connection was lost; connecting again")
            return self._db.execute(query, params)

    def create_schema(self, schema: str) -> None:
        """Create tables if missing, one instance at a time (several may start together)."""
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            self._db.execute(schema)

    def execute(self, query: Any, params: Any = None) -> psycopg.Cursor[dict[str, Any]]:
        """A statement on the loop connection, for the read-side modules (hub.audit_pg)."""
        return self._execute(query, params)

    def close(self) -> None:
        """Finish the writes already submitted, then close both connections."""
        self._writer.shutdown(wait=True)
        self._writer_conn.close()
        self._loop_db.close()

    # ---------------------------------------------------------------- events

    async def write_events(self, writes: Sequence[EventWrite], received_at: float
                           ) -> list[bool]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self.insert_events, writes,
                                          received_at)

    def insert_events(self, writes: Sequence[EventWrite], received_at: float) -> list[bool]:
        """:meth:`_insert_events`, once more on a new connection if the writer's was lost
        (its transaction was then rolled back by the server)."""
        try:
            return self._insert_events(writes, received_at)
        except psycopg.OperationalError:
            if not self._writer_conn.broken:
                raise
            log.warning("store: the writer's database connection was lost; connecting again")
            return self._insert_events(writes, received_at)

    def _insert_events(self, writes: Sequence[EventWrite], received_at: float) -> list[bool]:
        """Store event frames in ONE transaction (and notify their row ids at its commit);
        per frame, False if (source, seq) was already stored, also within the batch.

        The batch goes in as one JSON parameter and one statement that also computes the
        notification payloads, and only a count comes back: psycopg's pure-Python
        adaptation costs far more per value than the server does. Only if fewer rows were
        inserted than given (a terminal resending after a lost ack) is the transaction
        rolled back and done again returning the keys that went in.
        """
        acked: dict[str, int] = {}
        for w in writes:
            if w.acked_seq is not None:
                acked[w.source] = max(acked.get(w.source, 0), w.acked_seq)
        rows = _BATCH_ENCODER.encode([
            (w.source, f["seq"], f["id"], f["terminalId"], f["channel"], f["event"],
             f["timestamp"], w.data_text if w.data_text is not None
             else _DATA_ENCODER.encode(f["data"])) for w in writes
            for f in (w.frame,)])
        acked_json = _BATCH_ENCODER.encode(acked)
        db = self._writer_db
        stored = 0
        with db.transaction() as tx:
            row = db.execute(_INSERT_FAST, {"rows": rows, "at": received_at,
                                            "channel": EVENTS_CHANNEL, "origin": self.origin,
                                            "acked": acked_json}).fetchone()
            assert row is not None
            stored = int(row[0])
            if stored != len(writes):
                raise psycopg.Rollback(tx)  # duplicates: the exact way below
        if stored != len(writes):
            return self._insert_exact(writes, rows, acked_json, received_at)
        # Row ids follow the batch's order (ORDER BY x.o); another instance inserting at
        # the same moment may interleave its own: then they come back one by one.
        ids = (range(int(row[3]), int(row[4]) + 1) if row[5] is None
               else [int(n) for n in str(row[5]).split(",")])
        for w, n in zip(writes, ids, strict=True):
            w.frame["cursor"] = n
        return [True] * len(writes)

    def _insert_exact(self, writes: Sequence[EventWrite], rows: str, acked_json: str,
                      received_at: float) -> list[bool]:
        db = self._writer_db
        with db.transaction():
            inserted = db.execute(_INSERT_EXACT, {"rows": rows, "at": received_at}).fetchall()
            db.execute(_ACKED, {"acked": acked_json})
            for payload in _payloads(self.origin, [int(r[0]) for r in inserted]):
                db.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, payload))
        fresh = {(r[1], int(r[2])): int(r[0]) for r in inserted}
        flags = []
        for w in writes:
            key = (w.source, int(w.frame["seq"]))
            n = fresh.pop(key, None)  # a second copy in the same batch is a duplicate
            flags.append(n is not None)
            if n is not None:
                w.frame["cursor"] = n
        return flags

    def insert_event(self, frame: dict[str, Any], *, source: str, received_at: float,
                     acked_seq: int | None = None) -> bool:
        writes = [EventWrite(frame, source, acked_seq)]
        return self._writer.submit(self.insert_events, writes, received_at).result()[0]

    def acked_seq(self, terminal_id: str) -> int:
        row = self._execute("SELECT acked_seq FROM terminals WHERE terminal_id = %s",
                               (terminal_id,)).fetchone()
        return int(row["acked_seq"]) if row else 0

    def set_acked_seq(self, terminal_id: str, acked_seq: int) -> None:
        self._execute(
            "INSERT INTO terminals (terminal_id, acked_seq) VALUES (%s, %s) ON CONFLICT"
            " (terminal_id) DO UPDATE SET acked_seq = GREATEST(terminals.acked_seq,"
            " excluded.acked_seq)", (terminal_id, acked_seq))

    def next_hub_seq(self) -> int:
        row = self._execute(
            "SELECT GREATEST((SELECT max(seq) FROM events WHERE source = %s),"
            " (SELECT acked_seq FROM terminals WHERE terminal_id = %s),"
            " (SELECT value - 1 FROM counters WHERE name = 'hub_seq'), 0) + 1 AS next",
            (HUB_SOURCE, HUB_SOURCE)).fetchone()
        assert row is not None
        return int(row["next"])

    def reserve_hub_seqs(self, count: int) -> int:
        """A block of hub seqs from the shared counter (``counters.hub_seq``: the next
        seq no instance holds), so two instances never emit the same ``hub-<n>``."""
        row = self._execute(
            "INSERT INTO counters (name, value) VALUES ('hub_seq', %s)"
            " ON CONFLICT (name) DO UPDATE SET value = GREATEST(counters.value,"
            " excluded.value - %s) + %s RETURNING value - %s AS first",
            (self.next_hub_seq() + count, count, count, count)).fetchone()
        assert row is not None
        return int(row["first"])

    def known_terminals(self) -> list[str]:
        rows = self._execute("SELECT DISTINCT terminal_id FROM events").fetchall()
        return [r["terminal_id"] for r in rows]

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        row = self._execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = %s"
                               " ORDER BY n LIMIT 1", (event_id,)).fetchone()
        return _readable(row)

    def events(self, terminal_id: str | None = None) -> list[dict[str, Any]]:
        """As :meth:`hub.store.HubStore.events`: without the hub's ``cursor``."""
        if terminal_id is None:
            rows = self._execute(f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY n")
        else:
            rows = self._execute(f"SELECT {_EVENT_COLUMNS} FROM events"
                                 " WHERE terminal_id = %s ORDER BY n", (terminal_id,))
        frames = _readable_frames(rows.fetchall())
        for frame in frames:
            del frame["cursor"]
        return frames

    def recent(self, limit: int, terminals: Iterable[str] | None) -> list[dict[str, Any]]:
        sql, args = f"SELECT {_EVENT_COLUMNS} FROM events", []
        if terminals is not None:
            cond, ids = _in(terminals)
            sql += f" WHERE terminal_id {cond}"
            args.append(ids)
        rows = self._execute(sql + " ORDER BY n DESC LIMIT %s", (*args, limit)).fetchall()
        return _readable_frames(rows)

    def unacked_alerts(self, limit: int, terminals: Iterable[str] | None
                       ) -> list[dict[str, Any]]:
        sql = (f"SELECT e.{_EVENT_COLUMNS.replace(', ', ', e.')} FROM events e"
               " LEFT JOIN alert_acks a ON a.event_id = e.id"
               f" WHERE {_NEEDS_ACK} AND a.event_id IS NULL")
        args: list[Any] = []
        if terminals is not None:
            cond, ids = _in(terminals)
            sql += f" AND e.terminal_id {cond}"
            args.append(ids)
        rows = self._execute(sql + " ORDER BY e.n DESC LIMIT %s", (*args, limit)).fetchall()
        return _readable_frames(rows)

    def count_unacked_alerts(self, terminal_id: str) -> int:
        row = self._execute(
            "SELECT count(*) AS c FROM events e LEFT JOIN alert_acks a ON a.event_id = e.id"
            f" WHERE {_NEEDS_ACK} AND a.event_id IS NULL AND e.terminal_id = %s",
            (terminal_id,)).fetchone()
        assert row is not None
        return int(row["c"])

    def last_event(self, terminal_id: str, names: Iterable[str] | None = None
                   ) -> dict[str, Any] | None:
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE terminal_id = %s"
        args: list[Any] = [terminal_id]
        if names is not None:
            cond, wanted = _in(names)
            sql += f" AND event {cond}"
            args.append(wanted)
        row = self._execute(sql + " ORDER BY n DESC LIMIT 1", args).fetchone()
        return _readable(row)

    def last_door_events(self, terminal_id: str) -> list[dict[str, Any]]:
        rows = self._execute(
            f"SELECT DISTINCT ON (d.j ->> 'door') e.{_EVENT_COLUMNS.replace(', ', ', e.')}"
            f" FROM events e {_AS_JSON} WHERE e.terminal_id = %s"
            " AND e.event IN ('doorOpened', 'doorClosed')"
            " AND (d.j ->> 'powerOff') IS DISTINCT FROM 'true'"
            " ORDER BY d.j ->> 'door', e.n DESC", (terminal_id,)).fetchall()
        return _readable_frames(rows)

    def day_money(self, terminal_id: str, since: str, until: str) -> tuple[int, int, int]:
        games = ("CASE WHEN json_typeof(d.j -> 'games') = 'number'"
                 " THEN (d.j ->> 'games')::numeric ELSE 1 END")
        row = self._execute(
            f"SELECT coalesce(sum(CASE WHEN e.event = 'betPlaced' THEN {_AMOUNT} END), 0) AS i,"
            f" coalesce(sum(CASE WHEN e.event = 'winPaid' THEN {_AMOUNT} END), 0) AS o,"
            f" coalesce(sum(CASE WHEN e.event = 'betPlaced' THEN {games} END), 0) AS g"
            f" FROM events e {_AS_JSON} WHERE e.terminal_id = %s"
            " AND e.event IN ('betPlaced', 'winPaid') AND e.timestamp >= %s"
            " AND e.timestamp < %s", (terminal_id, since, until)).fetchone()
        assert row is not None
        return _int64(float(row["i"])), _int64(float(row["o"])), _int64(float(row["g"]))

    def amount_sum(self, terminal_id: str, event: str, since: str, until: str) -> int:
        row = self._execute(
            f"SELECT coalesce(sum({_AMOUNT}), 0) AS total FROM events e {_AS_JSON}"
            " WHERE e.terminal_id = %s AND e.event = %s AND e.timestamp >= %s"
            " AND e.timestamp < %s", (terminal_id, event, since, until)).fetchone()
        assert row is not None
        return _int64(float(row["total"]))

    def amounts_by_minute(self, event: str, since: str, terminals: Iterable[str] | None
                          ) -> dict[str, int]:
        sql = (f"SELECT substr(e.timestamp, 1, 16) AS m, coalesce(sum({_AMOUNT}), 0) AS total"
               f" FROM events e {_AS_JSON} WHERE e.event = %s AND e.timestamp >= %s")
        args: list[Any] = [event, since]
        if terminals is not None:
            cond, ids = _in(terminals)
            sql += f" AND e.terminal_id {cond}"
            args.append(ids)
        rows = self._execute(sql + " GROUP BY m", args).fetchall()
        return {r["m"]: _int64(float(r["total"])) for r in rows}

    # ---------------------------------------------------------------- retention

    async def prune(self, cutoff: float, final_statuses: Iterable[str], *,
                    chunk: int = 5000) -> int:
        """As :meth:`hub.store.HubStore.prune`: chunks of their own transactions on the
        writer thread (notices older than the cutoff go too)."""
        loop = asyncio.get_running_loop()
        total = 0
        while True:
            deleted = await loop.run_in_executor(self._writer, self._prune_chunk, cutoff,
                                                 chunk)
            total += deleted
            if deleted < chunk:
                break
        await loop.run_in_executor(self._writer, self._prune_rest, cutoff,
                                   list(final_statuses))
        return total

    def _prune_chunk(self, cutoff: float, chunk: int) -> int:
        cur = self._writer_db.execute(
            "DELETE FROM events WHERE n IN (SELECT n FROM events WHERE received_at < %s"
            " ORDER BY n LIMIT %s)", (cutoff, chunk))
        return int(cur.rowcount)

    def _prune_rest(self, cutoff: float, final_statuses: list[str]) -> None:
        db = self._writer_db
        with db.transaction():
            db.execute("DELETE FROM alert_acks a WHERE NOT EXISTS"
                       " (SELECT 1 FROM events e WHERE e.id = a.event_id)")
            db.execute("DELETE FROM actions WHERE created_at < %s AND status = ANY(%s)",
                       (cutoff, final_statuses))
            db.execute("DELETE FROM notices WHERE at < %s", (cutoff,))

    # ---------------------------------------------------------------- alert acks

    def alert_ack(self, event_id: str) -> tuple[str, str] | None:
        row = self._execute('SELECT "by", at FROM alert_acks WHERE event_id = %s',
                               (event_id,)).fetchone()
        return (row["by"], row["at"]) if row else None

    def add_alert_ack(self, event_id: str, terminal_id: str, by: str, at: str) -> bool:
        cur = self._execute(
            'INSERT INTO alert_acks (event_id, terminal_id, "by", at) VALUES (%s,%s,%s,%s)'
            " ON CONFLICT (event_id) DO NOTHING", (event_id, terminal_id, by, at))
        return cur.rowcount == 1

    # ---------------------------------------------------------------- actions

    def add_action(self, message: dict[str, Any], *, sender: str, status: str,
                   deadline: float | None, created_at: float) -> bool:
        cur = self._execute(
            "INSERT INTO actions (id, terminal_id, message, sender, status, deadline,"
            " created_at) VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (id) DO NOTHING",
            (message["id"], message["terminalId"], json.dumps(message, ensure_ascii=False),
             sender, status, deadline, created_at))
        return cur.rowcount == 1

    def set_action_status(self, action_id: str, status: str,
                          result: dict[str, Any] | None = None) -> None:
        if result is None:
            self._execute("UPDATE actions SET status = %s WHERE id = %s",
                             (status, action_id))
        else:
            self._execute("UPDATE actions SET status = %s, result = %s WHERE id = %s",
                             (status, json.dumps(result, ensure_ascii=False), action_id))

    def claim_action(self, action_id: str, expected: str, status: str,
                     result: dict[str, Any] | None = None) -> bool:
        cur = self._execute(
            "UPDATE actions SET status = %s, result = coalesce(%s, result)"
            " WHERE id = %s AND status = %s",
            (status, None if result is None else json.dumps(result, ensure_ascii=False),
             action_id, expected))
        return cur.rowcount == 1

    def get_action(self, action_id: str) -> StoredAction | None:
        row = self._execute("SELECT * FROM actions WHERE id = %s", (action_id,)).fetchone()
        return _action(row) if row else None

    def queued_actions(self, terminal_id: str | None = None) -> list[StoredAction]:
        sql, args = "SELECT * FROM actions WHERE status = 'queued'", []
        if terminal_id is not None:
            sql += " AND terminal_id = %s"
            args.append(terminal_id)
        rows = self._execute(sql + " ORDER BY created_at, n", args).fetchall()
        return [_action(r) for r in rows]

    # ---------------------------------------------------------------- presence

    def heartbeat(self) -> bool:
        """Say this instance is alive (by the database's clock); True if it had been taken
        for dead meanwhile (or this is its first heartbeat)."""
        row = self._execute(
            "INSERT INTO instances (origin, seen_at) VALUES"
            " (%s, extract(epoch FROM clock_timestamp())) ON CONFLICT (origin) DO UPDATE"
            " SET seen_at = excluded.seen_at RETURNING (xmax = 0) AS inserted",
            (self.origin,)).fetchone()
        return bool(row and row["inserted"])

    def set_present(self, terminal_id: str, present: bool) -> None:
        """The terminal is connected to this instance now, or no longer (a newer connection
        to another instance has already taken the row over: then nothing changes)."""
        if present:
            self._execute("INSERT INTO presence (terminal_id, origin) VALUES (%s, %s)"
                          " ON CONFLICT (terminal_id) DO UPDATE SET origin = excluded.origin",
                          (terminal_id, self.origin))
        else:
            self._execute("DELETE FROM presence WHERE terminal_id = %s AND origin = %s",
                          (terminal_id, self.origin))

    def present_terminals(self) -> list[str]:
        """Terminals connected to some instance (as far as the instances said)."""
        return [r["terminal_id"] for r in self._execute(
            "SELECT terminal_id FROM presence ORDER BY terminal_id").fetchall()]

    def take_orphans(self, dead_after: float) -> list[str]:
        """Declare dead the instances silent for ``dead_after`` seconds and take their
        terminals (one statement: of several instances doing this, each terminal goes to
        exactly one), so that the taker reports them offline."""
        rows = self._execute(
            "WITH dead AS (DELETE FROM instances WHERE origin <> %s AND seen_at <"
            " extract(epoch FROM clock_timestamp()) - %s RETURNING origin),"
            " gone AS (DELETE FROM presence p WHERE p.origin <> %s AND"
            " (p.origin IN (SELECT origin FROM dead)"
            " OR NOT EXISTS (SELECT 1 FROM instances i WHERE i.origin = p.origin))"
            " RETURNING p.terminal_id) SELECT terminal_id FROM gone ORDER BY terminal_id",
            (self.origin, dead_after, self.origin)).fetchall()
        return [r["terminal_id"] for r in rows]

    # ---------------------------------------------------------------- notices

    def add_notice(self, kind: str, body: str, at: float) -> int:
        """Store a message for the other instances and notify its row id (one statement:
        the notification is sent at its commit)."""
        row = self._execute(
            "WITH ins AS (INSERT INTO notices (origin, kind, body, at) VALUES (%s,%s,%s,%s)"
            " RETURNING n) SELECT n, pg_notify(%s, %s::text || ' ' || n::text) FROM ins",
            (self.origin, kind, body, at, NOTICES_CHANNEL, self.origin)).fetchone()
        assert row is not None
        return int(row["n"])


def _action(row: dict[str, Any]) -> StoredAction:
    return StoredAction(
        id=row["id"], terminal_id=row["terminal_id"], message=json.loads(row["message"]),
        sender=row["sender"], status=row["status"], deadline=row["deadline"],
        result=json.loads(row["result"]) if row["result"] else None,
    )
