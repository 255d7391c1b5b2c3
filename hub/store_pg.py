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

Cursors: every transaction that inserts events takes the transaction-level advisory lock
:data:`CURSOR_LOCK` first, so such transactions run one at a time from their first row id
to their commit: row ids (``n``, the cursor clients resume from) grow in commit order across
all instances, and a reader that sees cursor ``c`` committed sees every cursor below it that
will ever exist (docs/scaling.md, "Cursors on a shared database").

Notifications (hub/cluster.py): the transaction that stores events also sends, with
``pg_notify``, the ids (``n``) of the rows it inserted on :data:`EVENTS_CHANNEL`; a
notification is delivered at commit, in commit order, so a listener that receives it can
read the rows. Messages for other instances' clients (alert acknowledgements, action
relays) are rows of ``notices``, announced the same way on :data:`NOTICES_CHANNEL`.
``synchronous: FULL`` is ``synchronous_commit = on`` (an ack survives a power loss of the
database server); ``NORMAL`` is ``off`` (a crash may lose the last commits, never corrupt).

The queries it shares with SQLite are in hub/store_sql.py (one text, two dialects); the
notification payloads and the reads of notified rows in hub/pg_notify.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg.rows import dict_row

from hub.pg_notify import EVENTS_CHANNEL, NOTICES_CHANNEL, _payloads
from hub.sql_dialect import PG_SAFE_JSON_JOIN
from hub.store_sql import (
    HUB_SOURCE,
    POSTGRESQL,
    Dialect,
    EventWrite,
    Row,
    SqlStore,
    acked_alert_keys,
    data_text,
    schema,
)

log = logging.getLogger("hub.store")

#: Key of the advisory lock that serialises schema creation by instances starting together.
_SCHEMA_LOCK = 0x5107_4B0B
#: Key of the transaction-level advisory lock every event-inserting transaction takes first
#: and holds to its commit: row ids (cursors) are then handed out in commit order
#: (docs/scaling.md, "Cursors on a shared database").
CURSOR_LOCK = 0x5107_C0C5

#: What PostgreSQL keeps besides the shared tables (hub.sql_dialect.schema).
_PG_SCHEMA = """
CREATE INDEX IF NOT EXISTS events_by_received ON events (received_at);
-- data as JSON, or NULL if it is not JSON (PG_SAFE_JSON_JOIN; PostgreSQL 15 has no IS JSON)
CREATE OR REPLACE FUNCTION slot_hub_json(t text) RETURNS json LANGUAGE plpgsql IMMUTABLE
AS $f$ BEGIN RETURN t::json; EXCEPTION WHEN others THEN RETURN NULL; END $f$;
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

#: First in every transaction that inserts events (:data:`CURSOR_LOCK`).
_LOCK_CURSORS = f"SELECT pg_advisory_xact_lock({CURSOR_LOCK})"

#: The slow path (duplicates in the batch): the keys that went in come back.
_INSERT_EXACT = _INSERT_ROWS + " RETURNING n, source, seq"


def _connect(url: str, synchronous: str, name: str) -> psycopg.Connection[dict[str, Any]]:
    conn = psycopg.connect(url, autocommit=True, row_factory=dict_row, application_name=name)
    _set_synchronous(conn, synchronous)
    return conn


def _set_synchronous(conn: psycopg.Connection[Any], synchronous: str) -> None:
    conn.execute("SELECT set_config('synchronous_commit', %s, false)",
                 ("on" if synchronous == "FULL" else "off",))


def _rows(execute: Callable[[str, Sequence[Any]], psycopg.Cursor[dict[str, Any]]],
          sql: str, args: Sequence[Any]) -> list[Row]:
    """The rows of a query (``?`` placeholders); if a row's ``data`` is not JSON, again with
    the join that reads it as NULL (:data:`hub.sql_dialect.PG_SAFE_JSON_JOIN`): such a row
    counts as nothing, the others are answered."""
    try:
        return execute(POSTGRESQL.sql(sql), args).fetchall()
    except psycopg.errors.InvalidTextRepresentation:
        if POSTGRESQL.json_join not in sql:
            raise
        log.warning("store: a stored event is not JSON; reading around it")
        safe = sql.replace(POSTGRESQL.json_join, PG_SAFE_JSON_JOIN)
        return execute(POSTGRESQL.sql(safe), args).fetchall()


class PgDb:
    """A :class:`hub.store_sql.Db` on a store's loop connection (connected again if lost)."""

    dialect: Dialect = POSTGRESQL

    def __init__(self, store: PgStore) -> None:
        self._store = store

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return _rows(self._store.execute, sql, args)

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return int(self._store.execute(POSTGRESQL.sql(sql), args).rowcount)

    def schema(self, ddl: str) -> None:
        self._store.create_schema(ddl)

    def close(self) -> None:
        """The store closes its own connections (:meth:`PgStore.close`)."""


class PgReadDb:
    """A :class:`hub.store_sql.Db` on a read-only connection of its own (a history worker
    thread, hub.history_runner): each statement stops at ``statement_timeout``, and none
    starts once ``over_time()``."""

    dialect: Dialect = POSTGRESQL

    def __init__(self, conn: psycopg.Connection[dict[str, Any]],
                 over_time: Callable[[], bool]) -> None:
        self._conn = conn
        self._over_time = over_time

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        if self._over_time():
            raise psycopg.errors.QueryCanceled("the history query ran out of time")
        return _rows(self._conn.execute, sql, args)

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return int(self._conn.execute(POSTGRESQL.sql(sql), args).rowcount)

    def schema(self, ddl: str) -> None:
        raise psycopg.errors.ReadOnlySqlTransaction("a history connection creates nothing")

    def close(self) -> None:
        self._conn.close()


class PgStore(SqlStore):
    """A :class:`hub.store_api.Store` on PostgreSQL (psycopg 3)."""

    def __init__(self, url: str, *, synchronous: str = "FULL", origin: str = "") -> None:
        self.url = url
        self.origin = origin or "-"
        self._synchronous = synchronous
        self._loop_db = _connect(url, synchronous, f"slot-hub {self.origin} loop")
        self.db = PgDb(self)
        with self._db.transaction():
            self._execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            # A database an older hub made is migrated here, one instance at a time
            # (hub.sql_dialect.obsolete_indexes).
            existing = [r["indexname"] for r in self._execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'events'"
                " AND schemaname = current_schema()").fetchall()]
            self._execute(schema(POSTGRESQL, existing) + _PG_SCHEMA)
        self._writer_conn = self._connect_writer()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-store-pg")
        self._hub_reserved = (0, 0)  # (next, end) of the block of hub seqs in hand

    def _connect_writer(self) -> psycopg.Connection[tuple[Any, ...]]:
        # Tuples, not dicts, on the writer: it handles the most rows.
        conn: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(
            self.url, autocommit=True, application_name=f"slot-hub {self.origin} writer")
        _set_synchronous(conn, self._synchronous)
        return conn

    # A connection lost (the server restarted, a network cut) fails the statement that found
    # it so (the caller answers `internal`; a terminal resends); the next use connects again.

    @property
    def _db(self) -> psycopg.Connection[dict[str, Any]]:
        """The loop connection, connected again if it was lost."""
        if self._loop_db.broken or self._loop_db.closed:
            self._loop_db = _connect(self.url, self._synchronous, f"slot-hub {self.origin} loop")
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
        """A statement on the loop connection (:class:`PgDb`, the read-side modules)."""
        return self._execute(query, params)

    def open_history_db(self, query_limit_s: float, over_time: Callable[[], bool]) -> PgReadDb:
        """A read-only connection for a history worker thread (hub.history_runner)."""
        conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                               application_name=f"slot-hub {self.origin} history")
        conn.execute("SELECT set_config('default_transaction_read_only', 'on', false),"
                      " set_config('statement_timeout', %s, false)",
                      (str(max(1, int(query_limit_s * 1000))),))
        return PgReadDb(conn, over_time)

    def _close_connections(self) -> None:
        self._writer_conn.close()
        self._loop_db.close()

    # ---------------------------------------------------------------- events

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
        if not writes:
            return []  # nothing to store: the statement's count of no rows has no ids
        acked: dict[str, int] = {}
        for w in writes:
            if w.acked_seq is not None:
                acked[w.source] = max(acked.get(w.source, 0), w.acked_seq)
        rows = _BATCH_ENCODER.encode([
            (w.source, f["seq"], f["id"], f["terminalId"], f["channel"], f["event"],
             f["timestamp"], w.data_text if w.data_text is not None
             else data_text(f["data"])) for w in writes
            for f in (w.frame,)])
        acked_json = _BATCH_ENCODER.encode(acked)
        db = self._writer_db
        stored = 0
        with db.transaction() as tx:
            db.execute(_LOCK_CURSORS)
            row = db.execute(_INSERT_FAST, {"rows": rows, "at": received_at,
                                            "channel": EVENTS_CHANNEL, "origin": self.origin,
                                            "acked": acked_json}).fetchone()
            assert row is not None
            stored = int(row[0])
            if stored != len(writes):
                raise psycopg.Rollback(tx)  # duplicates: the exact way below
        if stored != len(writes):
            return self._insert_exact(writes, rows, acked_json, received_at)
        # Row ids follow the batch's order (ORDER BY x.o), one run under the cursor lock;
        # should they ever not be one run, they come back one by one.
        ids = (range(int(row[3]), int(row[4]) + 1) if row[5] is None
               else [int(n) for n in str(row[5]).split(",")])
        for w, n in zip(writes, ids, strict=True):
            w.frame["cursor"] = n
        return [True] * len(writes)

    def _insert_exact(self, writes: Sequence[EventWrite], rows: str, acked_json: str,
                      received_at: float) -> list[bool]:
        db = self._writer_db
        with db.transaction():
            db.execute(_LOCK_CURSORS)
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

    # ---------------------------------------------------------------- retention

    # Notices older than the cutoff go too (hub.store_sql.SqlStore.prune).

    def _prune_boundary(self, cutoff: float) -> int:
        # As in hub/store.py: the first row received at or after the cutoff bounds the scan.
        row = self._writer_db.execute(
            "SELECT coalesce((SELECT min(n) FROM events WHERE received_at >= %s),"
            " (SELECT max(n) + 1 FROM events), 1)", (cutoff,)).fetchone()
        return int(row[0]) if row else 1

    def _prune_chunk(self, cutoff: float, boundary: int, chunk: int) -> int:
        cur = self._writer_db.execute(
            "DELETE FROM events WHERE n IN (SELECT n FROM events WHERE n < %s"
            " AND received_at < %s ORDER BY n LIMIT %s)", (boundary, cutoff, chunk))
        return int(cur.rowcount)

    def _prune_rest(self, cutoff: float, final_statuses: tuple[str, ...]) -> None:
        db = self._writer_db
        with db.transaction():
            # The acknowledgements whose alert is gone, found by (source, seq): no index on
            # the events' id (hub.store_sql.SqlStore.get_event). An id of another form has
            # a NULL source and matches no event.
            ids, sources, seqs = acked_alert_keys(
                [r[0] for r in db.execute("SELECT event_id FROM alert_acks").fetchall()])
            if ids:
                db.execute("DELETE FROM alert_acks x USING unnest(%s::text[], %s::text[],"
                           " %s::bigint[]) AS a(id, source, seq) WHERE x.event_id = a.id"
                           " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.source = a.source"
                           " AND e.seq = a.seq AND e.id = a.id)", (ids, sources, seqs))
            db.execute("DELETE FROM actions WHERE created_at < %s AND status = ANY(%s)",
                       (cutoff, list(final_statuses)))
            db.execute("DELETE FROM notices WHERE at < %s", (cutoff,))

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
