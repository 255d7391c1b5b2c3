"""The SQL that differs between SQLite and PostgreSQL, and the one-connection interface the
read-side modules use: what lets each store query be one text for both engines
(hub/store_sql.py). Also the tables both stores keep.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from api.wire import ATTENDANT_EVENTS, INFORMATIONAL_ALERTS

#: A row as both stores return it: ``sqlite3.Row`` or psycopg's dict, read by column name.
Row = Any


@dataclass(frozen=True, slots=True)
class Dialect:
    """The SQL that differs between the engines. Queries are written with ``?`` and a table
    alias ``e`` for ``events``; :meth:`sql` turns them into the engine's text.

    ``json_join`` makes ``data`` readable as JSON once per row (PostgreSQL parses it in a
    lateral join; SQLite reads the text in place). Every JSON expression is NULL for a value
    of another type, so a stored string where a number belongs counts as nothing on both.
    """

    name: str
    placeholder: str  # "?" or "%s"
    json_join: str
    number_sql: str   # an expression template with {f}: data.f if a number, else NULL
    text_sql: str     # data.f as text (strings), else NULL
    true_sql: str     # data.f is JSON true
    valid_sql: str    # data is JSON (a damaged row is left out, never the whole answer)
    total_sql: str    # template with {x}: the sum, 0 if no rows
    greatest: str     # the two-argument maximum: max or GREATEST
    action_order: str  # the insertion order of actions
    merge_sql: str    # template with {a} {b}: JSON object b's keys over a's (text)
    serial: str       # DDL: an increasing integer primary key
    integer: str      # DDL: a 64-bit integer
    real: str         # DDL: a double
    action_serial: str  # DDL: the column that orders actions (SQLite has its rowid)

    def sql(self, text: str) -> str:
        if self.placeholder == "?":
            return text
        return text.replace("%", "%%").replace("?", self.placeholder)

    def number(self, field: str) -> str:
        return self.number_sql.format(f=field)

    def text(self, field: str) -> str:
        return self.text_sql.format(f=field)

    def true(self, field: str) -> str:
        return self.true_sql.format(f=field)

    def total(self, expr: str) -> str:
        return self.total_sql.format(x=expr)

    def merge(self, a: str, b: str) -> str:
        return self.merge_sql.format(a=a, b=b)

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` is one of ``values``: the clause and its arguments (SQLite: a list of
        placeholders; PostgreSQL: one array, so the statement text does not vary)."""
        if self.placeholder == "?":
            return f"{column} IN ({','.join('?' * len(values))})", list(values)
        return f"{column} = ANY(?)", [list(values)]


_SQLITE_JSON = "CASE WHEN json_valid(e.data) THEN {x} END"

SQLITE = Dialect(
    name="sqlite", placeholder="?", json_join="",
    number_sql=_SQLITE_JSON.format(x="CASE WHEN json_type(e.data, '$.{f}') IN ('integer',"
                                     " 'real') THEN json_extract(e.data, '$.{f}') END"),
    text_sql=_SQLITE_JSON.format(x="CASE WHEN json_type(e.data, '$.{f}') = 'text'"
                                   " THEN json_extract(e.data, '$.{f}') END"),
    true_sql="coalesce(" + _SQLITE_JSON.format(x="json_type(e.data, '$.{f}') = 'true'")
             + ", 0)",
    valid_sql="json_valid(e.data)", total_sql="total({x})", greatest="max",
    action_order="rowid", merge_sql="json_patch(coalesce({a}, '{{}}'), {b})",
    serial="INTEGER PRIMARY KEY AUTOINCREMENT", integer="INTEGER", real="REAL",
    action_serial="")

#: PostgreSQL: ``data`` is text as in SQLite (a value reads back byte for byte). The hub
#: writes only JSON it encoded itself, so the cast in the lateral join succeeds; should a row
#: not be JSON (written by hand, damaged), the query fails and the store runs it again with
#: :data:`PG_SAFE_JSON_JOIN` (hub/store_pg.py), which reads such a row as NULL.
POSTGRESQL = Dialect(
    name="postgresql", placeholder="%s",
    json_join="LEFT JOIN LATERAL (SELECT e.data::json AS j) d ON true",
    number_sql="CASE WHEN json_typeof(d.j -> '{f}') = 'number'"
               " THEN (d.j ->> '{f}')::numeric END",
    text_sql="CASE WHEN json_typeof(d.j -> '{f}') = 'string' THEN d.j ->> '{f}' END",
    true_sql="coalesce(json_typeof(d.j -> '{f}') = 'boolean' AND (d.j ->> '{f}') = 'true',"
             " false)",
    valid_sql="d.j IS NOT NULL", total_sql="coalesce(sum({x}), 0)", greatest="GREATEST",
    action_order="n",
    merge_sql="(coalesce({a}, '{{}}')::jsonb || {b}::jsonb)::text",
    serial="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", integer="BIGINT",
    real="DOUBLE PRECISION", action_serial="n BIGINT GENERATED ALWAYS AS IDENTITY,")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    n {serial},
    source TEXT NOT NULL,          -- terminalId, or 'hub' for events the hub generates
    seq {integer} NOT NULL,
    id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    data TEXT NOT NULL,            -- the JSON text, as the hub encoded it
    received_at {real} NOT NULL,
    UNIQUE (source, seq)
);
CREATE INDEX IF NOT EXISTS events_by_terminal ON events (terminal_id, event, timestamp);
CREATE INDEX IF NOT EXISTS events_by_name ON events (event, timestamp);
CREATE TABLE IF NOT EXISTS terminals (
    terminal_id TEXT PRIMARY KEY,
    acked_seq {integer} NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_acks (
    event_id TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    "by" TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
    {action_serial}
    id TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    message TEXT NOT NULL,         -- the action as forwarded to the terminal
    sender TEXT NOT NULL,
    status TEXT NOT NULL,          -- queued, sent, accepted, rejected, or a final status
    deadline {real},               -- epoch seconds after which a queued action expires
    result TEXT,                   -- the final actionResult
    created_at {real} NOT NULL
);
"""


def needs_ack_sql(alias: str = "") -> str:
    """The events an operator must acknowledge (api.wire.needs_ack) as an SQL condition on
    columns prefixed with ``alias`` (``"e."``)."""
    return (f"(({alias}channel = 'alerts' AND {alias}event NOT IN ("
            + ",".join(f"'{name}'" for name in sorted(INFORMATIONAL_ALERTS)) + "))"
            + f" OR {alias}event IN ("
            + ",".join(f"'{name}'" for name in sorted(ATTENDANT_EVENTS)) + "))")


#: Prefix of the partial indexes of the events that need an acknowledgement; the rest of
#: the name is a checksum of the condition, so a hub whose list of such events changed
#: makes new ones and drops the old (:func:`schema`, :func:`obsolete_indexes`).
ACK_INDEX_PREFIX = "events_to_ack"
_ACK_SUFFIX = f"{zlib.crc32(needs_ack_sql().encode()):08x}"

#: The indexes on ``events`` a store of this version keeps (docs/scaling.md, "Indexes"),
#: besides the unique ``(source, seq)`` (de-duplication, and lookups by id, which is
#: ``source-seq``): per terminal by name and time (summaries, meters, doors, the floor), by
#: name and time (history by event), and two small partial ones of the events that need an
#: acknowledgement, in cursor order and per terminal (the snapshot's open alerts, their
#: count per terminal). Each index ordered by terminal costs a busy floor's insert a page
#: write per terminal and transaction, so there are no more of those; the partial ones
#: take only the alerts.
EVENT_INDEXES = ("events_by_terminal", "events_by_name", f"{ACK_INDEX_PREFIX}_{_ACK_SUFFIX}",
                 f"{ACK_INDEX_PREFIX}_by_terminal_{_ACK_SUFFIX}")

#: Indexes an older hub created and :func:`schema` drops (the migration of an existing
#: database, SQLite or PostgreSQL, at open).
OBSOLETE_INDEXES = ("events_by_id",)


def obsolete_indexes(names: Sequence[str]) -> list[str]:
    """Of the indexes on ``events`` a database has, those this version drops: an older
    hub's, and the alert indexes of another list of events needing an acknowledgement."""
    return [name for name in names if name in OBSOLETE_INDEXES
            or (name.startswith(ACK_INDEX_PREFIX) and name not in EVENT_INDEXES)]


def schema(dialect: Dialect, existing: Sequence[str] = ()) -> str:
    """The tables both stores keep (docs/scaling.md), in the engine's types; on an existing
    database, whose indexes on ``events`` are ``existing``, it also migrates it
    (:func:`obsolete_indexes` dropped, new indexes made)."""
    need_ack = needs_ack_sql()
    return (_SCHEMA.format(serial=dialect.serial, integer=dialect.integer, real=dialect.real,
                           action_serial=dialect.action_serial)
            + "".join(f"DROP INDEX IF EXISTS {name};\n"
                      for name in sorted({*OBSOLETE_INDEXES, *obsolete_indexes(existing)}))
            + f"CREATE INDEX IF NOT EXISTS {EVENT_INDEXES[2]} ON events (n) WHERE {need_ack};\n"
            + f"CREATE INDEX IF NOT EXISTS {EVENT_INDEXES[3]} ON events (terminal_id)"
              f" WHERE {need_ack};\n")


#: The lateral join of :data:`POSTGRESQL` through ``slot_hub_json`` (hub/store_pg.py's
#: schema): NULL for a value that is not JSON. Slower (a subtransaction per row), so it is
#: used only when the plain cast failed.
PG_SAFE_JSON_JOIN = "LEFT JOIN LATERAL (SELECT slot_hub_json(e.data) AS j) d ON true"


class Db(Protocol):
    """One connection of a store, with its dialect: what the read-side modules use."""

    dialect: Dialect

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """The rows of a query written with ``?`` (:meth:`Dialect.sql` is applied)."""
        ...

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        """A statement; the number of rows it changed."""
        ...

    def schema(self, ddl: str) -> None:
        """Create tables if missing (several statements; instances starting together on
        one PostgreSQL database do it one at a time)."""
        ...

    def close(self) -> None:
        """Close the connection (one opened for a history worker; a store closes its own)."""
        ...


def database_errors() -> tuple[type[Exception], ...]:
    """The exceptions a failing query raises on either engine (psycopg only if installed)."""
    errors: list[type[Exception]] = [sqlite3.Error]
    try:
        import psycopg
    except ImportError:
        pass
    else:
        errors.append(psycopg.Error)
    return tuple(errors)


def conditions(dialect: Dialect, lists: Sequence[tuple[str, Sequence[Any]]],
               bounds: Sequence[tuple[str, Any]]) -> tuple[list[str], list[Any]]:
    """A query's WHERE terms and their arguments: each column of ``lists`` is one of its
    values (an empty list: no condition), each clause of ``bounds`` (``"n > ?"``) holds for
    its value (None: no condition)."""
    where: list[str] = []
    args: list[Any] = []
    for column, values in lists:
        if values:
            clause, listed = dialect.one_of(column, values)
            where.append(clause)
            args.extend(listed)
    for clause, value in bounds:
        if value is not None:
            where.append(clause)
            args.append(value)
    return where, args


def one(db: Db, sql: str, args: Sequence[Any] = ()) -> Row | None:
    found = db.rows(sql, args)
    return found[0] if found else None
