"""What the two stores share: the rows, and every query but the batch write.

SQLite (hub/store.py) and PostgreSQL (hub/store_pg.py) keep the same tables and columns, so
one text of each query serves both: it is written with ``?`` placeholders and the few
expressions that differ (JSON, lists, sums, ``GREATEST``) come from the store's
:class:`hub.sql_dialect.Dialect`. :class:`SqlStore` holds the queries and the small writes (alert
acknowledgements, actions); each store adds only its connections, its schema, its batch
insert (the one path built for speed, different by nature) and its retention.
The read-side modules (hub.history, hub.replay, hub.audit) take a :class:`Db`, the same
one-connection interface on either engine.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

from api.wire import too_deep
from hub.json_text import reused_encoder
from hub.sql_dialect import (
    POSTGRESQL,
    SQLITE,
    Db,
    Dialect,
    Row,
    database_errors,
    needs_ack_sql,
    one,
    schema,
)

__all__ = [
    "HUB_SOURCE",
    "POSTGRESQL",
    "SQLITE",
    "Db",
    "Dialect",
    "EventWrite",
    "Row",
    "SqlStore",
    "StoredAction",
    "data_text",
    "database_errors",
    "one",
    "schema",
    "source_seq",
    "stored_frame",
]

log = logging.getLogger("hub.store")

HUB_SOURCE = "hub"

#: ``data`` as it is stored: compact JSON, non-ASCII as itself, NaN allowed (a terminal's
#: event data came through the checks; the hub's own are its own), with one encoder for
#: every row (hub/json_text.py): the text the store keeps and the fan-out splices in.
data_text: Callable[[Any], str] = reused_encoder(allow_nan=True)



# ---------------------------------------------------------------------- rows

# Alerts an operator must acknowledge (api.wire.needs_ack, in SQL): the predicate of the
# partial indexes hub.sql_dialect.schema makes for them, with the alias ``e``.
_NEEDS_ACK = needs_ack_sql("e.")

#: The columns of a stored event, with the alias ``e``.
EVENT_COLUMNS = ("e.n, e.source, e.seq, e.id, e.terminal_id, e.channel, e.event, e.timestamp,"
                 " e.data, e.received_at")


def _int64(total: float) -> int:
    """A sum (SQLite's ``total()``, a float that never overflows; PostgreSQL's numeric) as
    an integer clamped to 64 bits, so a hostile flood of large amounts cannot break a
    snapshot."""
    return int(max(-(2**63), min(float(total), 2**63 - 1024)))


class EventWrite(NamedTuple):
    """One event to store: the frame, whose seq space it is in, and the ack it allows.

    ``acked_seq`` (terminal events received in order) is persisted in the same transaction
    as the event, so the acknowledged position never runs ahead of the stored events.
    ``data_text`` is ``frame["data"]`` as stored (compact JSON, :func:`data_text`), when the
    caller encoded it already: it is encoded once for the store and the fan-out
    (hub/fanout.py).

    A named tuple, immutable as a frozen dataclass, because one is made per event: it costs
    about half what a frozen dataclass's ``__init__`` does (0.24-0.37 against 0.66 µs,
    docs/performance.md, "Hub CPU per event: fewer steps per event").
    """

    frame: dict[str, Any]
    source: str
    acked_seq: int | None = None
    data_text: str | None = None


def source_seq(event_id: str) -> tuple[str, int] | None:
    """The ``(source, seq)`` an event id ``source-seq`` is made of; None for an id that is
    not of that form (no stored event has it)."""
    source, dash, digits = event_id.rpartition("-")
    if not dash or not source or not digits.isascii() or not digits.isdigit() \
            or digits.startswith("0"):
        return None
    seq = int(digits)
    return (source, seq) if seq < 2**63 else None


def acked_alert_keys(event_ids: Iterable[str]) -> tuple[list[str], list[str | None],
                                                        list[int | None]]:
    """The ids of acknowledged alerts with the ``(source, seq)`` each is made of (None for an
    id of another form): how retention finds the acknowledgements whose alert is gone
    through the ``(source, seq)`` index (:meth:`SqlStore.prune`)."""
    ids, sources, seqs = [], [], []
    for event_id in event_ids:
        key = source_seq(event_id)
        ids.append(event_id)
        sources.append(key[0] if key else None)
        seqs.append(key[1] if key else None)
    return ids, sources, seqs


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


def _frame(row: Row) -> dict[str, Any]:
    """A stored event as the frame clients get: with its ``cursor`` (the row id ``n``)."""
    return {"type": "event", "id": row["id"], "seq": row["seq"], "channel": row["channel"],
            "terminalId": row["terminal_id"], "event": row["event"],
            "timestamp": row["timestamp"], "data": json.loads(row["data"]), "cursor": row["n"]}


def _readable(row: Row | None) -> dict[str, Any] | None:
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
        data_text(frame["data"])  # it can be sent on, too
        return frame
    except Exception as exc:  # any stored value: ValueError, RecursionError, TypeError...
        log.warning("stored event %r (row %s) cannot be read back, skipped: %s",
                    str(row["id"])[:80], row["n"], str(exc)[:120])
        return None


#: The row's frame for the read-side modules (hub.history, hub.replay, hub.floor), or None
#: when it cannot be read back (logged; the caller skips it).
stored_frame = _readable


def _readable_frames(rows: Iterable[Row]) -> list[dict[str, Any]]:
    return [f for f in map(_readable, rows) if f is not None]


def _action(row: Row) -> StoredAction:
    return StoredAction(
        id=row["id"], terminal_id=row["terminal_id"], message=json.loads(row["message"]),
        sender=row["sender"], status=row["status"], deadline=row["deadline"],
        result=json.loads(row["result"]) if row["result"] else None,
    )


def _json_text(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------------- queries


class SqlStore:
    """The queries and small writes both stores run on their event-loop connection
    (:attr:`db`), and the hand-over of event batches to the store's writer thread; a
    subclass sets ``db`` and ``_writer`` and adds its batch insert (:meth:`insert_events`),
    its connections' end (:meth:`_close_connections`) and the rest of
    :class:`hub.store_api.Store`."""

    db: Db
    _writer: ThreadPoolExecutor
    #: :meth:`write_events` calls not yet returned (hub/cluster.py waits for them).
    writes_in_flight = 0
    #: Called on the event loop with each batch :meth:`write_events` stored (and its
    #: "inserted" flags; empty if it failed): hub/cluster.py fans them out in order.
    on_commit: Callable[[Sequence[EventWrite], Sequence[bool]], None] | None = None

    def insert_events(self, writes: Sequence[EventWrite], received_at: float) -> list[bool]:
        """Store event frames in ONE transaction (writer thread); per frame, False if its
        (source, seq) was already stored, also within the batch; sets each new frame's
        ``cursor``."""
        raise NotImplementedError

    def _close_connections(self) -> None:
        raise NotImplementedError

    def open_history_db(self, query_limit_s: float, over_time: Callable[[], bool]) -> Db:
        """A new read-only connection for a history worker thread (hub.history_runner),
        which stops a query once ``over_time()`` (or ``query_limit_s`` into a statement)."""
        raise NotImplementedError

    def close(self) -> None:
        """Finish the writes already submitted, then close the connections."""
        self._writer.shutdown(wait=True)
        self._close_connections()

    async def write_events(self, writes: Sequence[EventWrite], received_at: float
                           ) -> list[bool]:
        """:meth:`insert_events` on the writer thread; batches commit in submission order."""
        loop = asyncio.get_running_loop()
        inserted: list[bool] = []
        self.writes_in_flight += 1
        try:
            inserted = await loop.run_in_executor(self._writer, self.insert_events, writes,
                                                  received_at)
            return inserted
        finally:
            self.writes_in_flight -= 1
            if self.on_commit is not None:
                self.on_commit(writes, inserted)

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
        """The cursor below which the events to delete are (writer thread)."""
        raise NotImplementedError

    def _prune_chunk(self, cutoff: float, boundary: int, chunk: int) -> int:
        """Delete up to ``chunk`` of them in one transaction; how many were."""
        raise NotImplementedError

    def _prune_rest(self, cutoff: float, final_statuses: tuple[str, ...]) -> None:
        """Delete the acknowledgements and the settled actions that go with them."""
        raise NotImplementedError

    def insert_event(self, frame: dict[str, Any], *, source: str, received_at: float,
                     acked_seq: int | None = None) -> bool:
        """Store one event frame now (blocking, on the writer thread); False if (source, seq)
        was already stored. For tools and tests; the hub uses :meth:`write_events`."""
        writes = [EventWrite(frame, source, acked_seq)]
        return self._writer.submit(self.insert_events, writes, received_at).result()[0]

    @property
    def reader(self) -> Db:
        """The event-loop thread's connection, for the read-only queries of hub.history,
        hub.replay and hub.audit."""
        return self.db

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return self.db.rows(sql, args)

    def acked_seq(self, terminal_id: str) -> int:
        row = one(self.db, "SELECT acked_seq FROM terminals WHERE terminal_id = ?",
                  (terminal_id,))
        return int(row["acked_seq"]) if row else 0

    def set_acked_seq(self, terminal_id: str, acked_seq: int) -> None:
        self.db.run(
            "INSERT INTO terminals (terminal_id, acked_seq) VALUES (?, ?) ON CONFLICT"
            f" (terminal_id) DO UPDATE SET acked_seq = {self.db.dialect.greatest}"
            "(terminals.acked_seq, excluded.acked_seq)", (terminal_id, acked_seq))

    def known_terminals(self) -> list[str]:
        """Every terminal with a stored event, in order. One index seek per terminal (the
        next terminal id after the last one), not a pass over the whole index as
        ``SELECT DISTINCT`` makes on either engine: the hub asks at every start."""
        return [r["terminal_id"] for r in self._rows(
            "WITH RECURSIVE t(terminal_id) AS (SELECT min(terminal_id) FROM events"
            " UNION ALL SELECT (SELECT min(e.terminal_id) FROM events e"
            " WHERE e.terminal_id > t.terminal_id) FROM t WHERE t.terminal_id IS NOT NULL)"
            " SELECT terminal_id FROM t WHERE terminal_id IS NOT NULL")]

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        """The event whose id is ``event_id``, found by the ``(source, seq)`` it is made of.

        Every stored id is ``source-seq`` (a terminal's events are ``terminalId-seq``,
        checked at the door, and the hub's own ``hub-seq``), so the unique ``(source, seq)``
        index finds it: no index on ``id`` (each one costs the insert of a busy floor a
        page write per terminal and transaction: docs/scaling.md, "Indexes").
        """
        key = source_seq(event_id)
        if key is None:
            return None
        return _readable(one(self.db, f"SELECT {EVENT_COLUMNS} FROM events e WHERE"
                                      " e.source = ? AND e.seq = ? AND e.id = ?",
                             (*key, event_id)))

    def events(self, terminal_id: str | None = None) -> list[dict[str, Any]]:
        """All stored events in storage order, as the terminal sent them (without the hub's
        ``cursor``; tests, exports)."""
        if terminal_id is None:
            rows = self._rows(f"SELECT {EVENT_COLUMNS} FROM events e ORDER BY e.n")
        else:
            rows = self._rows(f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.terminal_id = ?"
                              " ORDER BY e.n", (terminal_id,))
        frames = _readable_frames(rows)
        for frame in frames:
            del frame["cursor"]
        return frames

    def _newest(self, where: str, args: list[Any], terminals: Iterable[str] | None,
                limit: int, join: str = "") -> list[dict[str, Any]]:
        """Events matching ``where`` (and of ``terminals``), newest first."""
        if terminals is not None:
            clause, ids = self.db.dialect.one_of("e.terminal_id", list(terminals))
            where = f"{where} AND {clause}"
            args = [*args, *ids]
        rows = self._rows(f"SELECT {EVENT_COLUMNS} FROM events e {join} WHERE {where}"
                          " ORDER BY e.n DESC LIMIT ?", (*args, limit))
        return _readable_frames(rows)

    def recent(self, limit: int, terminals: Iterable[str] | None) -> list[dict[str, Any]]:
        """The last ``limit`` events, newest first, optionally for some terminals only."""
        return self._newest("1 = 1", [], terminals, limit)

    def unacked_alerts(self, limit: int, terminals: Iterable[str] | None
                       ) -> list[dict[str, Any]]:
        """Alerts needing an acknowledgement that have none, newest first."""
        return self._newest(f"{_NEEDS_ACK} AND a.event_id IS NULL", [], terminals, limit,
                            "LEFT JOIN alert_acks a ON a.event_id = e.id")

    def count_unacked_alerts(self, terminal_id: str) -> int:
        row = one(self.db,
                  "SELECT count(*) AS c FROM events e LEFT JOIN alert_acks a"
                  f" ON a.event_id = e.id WHERE {_NEEDS_ACK} AND a.event_id IS NULL"
                  " AND e.terminal_id = ?", (terminal_id,))
        return int(row["c"]) if row else 0

    def last_event(self, terminal_id: str, names: Iterable[str] | None = None
                   ) -> dict[str, Any] | None:
        where, args = "e.terminal_id = ?", [terminal_id]
        if names is not None:
            clause, wanted = self.db.dialect.one_of("e.event", list(names))
            where, args = f"{where} AND {clause}", [*args, *wanted]
        found = self._newest(where, args, None, 1)
        return found[0] if found else None

    def last_door_events(self, terminal_id: str) -> list[dict[str, Any]]:
        """The last ``doorOpened`` / ``doorClosed`` of each door of the terminal (those with
        ``powerOff`` true left out: a door opened while the machine was off)."""
        d = self.db.dialect
        return _readable_frames(self._rows(
            f"SELECT {EVENT_COLUMNS} FROM events e JOIN (SELECT max(e.n) AS n FROM events e"
            f" {d.json_join} WHERE e.terminal_id = ? AND e.event IN ('doorOpened',"
            # A damaged row is skipped, not the whole query (and the hub's start).
            f" 'doorClosed') AND {d.valid_sql} AND NOT {d.true('powerOff')}"
            f" GROUP BY {d.text('door')}) last ON last.n = e.n ORDER BY e.n", (terminal_id,)))

    def day_money(self, terminal_id: str, since: str, until: str) -> tuple[int, int, int]:
        """Coin in, coin out and games (``data.games``, else 1 per ``betPlaced``) of the
        terminal with since <= timestamp < until."""
        d = self.db.dialect
        amount, games = d.number("amount"), d.number("games")
        coin_in = d.total(f"CASE WHEN e.event = 'betPlaced' THEN {amount} END")
        coin_out = d.total(f"CASE WHEN e.event = 'winPaid' THEN {amount} END")
        played = d.total(f"CASE WHEN e.event = 'betPlaced' THEN coalesce({games}, 1) END")
        row = one(self.db,
                  f"SELECT {coin_in} AS i, {coin_out} AS o, {played} AS g"
                  f" FROM events e {d.json_join} WHERE e.terminal_id = ?"
                  " AND e.event IN ('betPlaced', 'winPaid') AND e.timestamp >= ?"
                  f" AND e.timestamp < ? AND {d.valid_sql}", (terminal_id, since, until))
        assert row is not None
        return _int64(row["i"]), _int64(row["o"]), _int64(row["g"])

    def amount_sum(self, terminal_id: str, event: str, since: str, until: str) -> int:
        """Sum of ``data.amount`` of ``event`` with since <= timestamp < until."""
        d = self.db.dialect
        row = one(self.db,
                  f"SELECT {d.total(d.number('amount'))} AS total FROM events e {d.json_join}"
                  " WHERE e.terminal_id = ? AND e.event = ? AND e.timestamp >= ?"
                  " AND e.timestamp < ?", (terminal_id, event, since, until))
        return _int64(row["total"]) if row else 0

    def amounts_by_minute(self, event: str, since: str, terminals: Iterable[str] | None
                          ) -> dict[str, int]:
        """``{"YYYY-MM-DDTHH:MM": total}`` of ``data.amount`` since ``since``."""
        d = self.db.dialect
        where, args = "e.event = ? AND e.timestamp >= ?", [event, since]
        if terminals is not None:
            clause, ids = d.one_of("e.terminal_id", list(terminals))
            where, args = f"{where} AND {clause}", [*args, *ids]
        rows = self._rows(f"SELECT substr(e.timestamp, 1, 16) AS m,"
                          f" {d.total(d.number('amount'))} AS total FROM events e"
                          f" {d.json_join} WHERE {where} GROUP BY m", args)
        return {r["m"]: _int64(r["total"]) for r in rows}

    # ---------------------------------------------------------------- alert acks

    def alert_ack(self, event_id: str) -> tuple[str, str] | None:
        row = one(self.db, 'SELECT "by", at FROM alert_acks WHERE event_id = ?', (event_id,))
        return (row["by"], row["at"]) if row else None

    def add_alert_ack(self, event_id: str, terminal_id: str, by: str, at: str) -> bool:
        return self.db.run(
            'INSERT INTO alert_acks (event_id, terminal_id, "by", at) VALUES (?,?,?,?)'
            " ON CONFLICT (event_id) DO NOTHING", (event_id, terminal_id, by, at)) == 1

    # ---------------------------------------------------------------- actions

    def add_action(self, message: dict[str, Any], *, sender: str, status: str,
                   deadline: float | None, created_at: float) -> bool:
        return self.db.run(
            "INSERT INTO actions (id, terminal_id, message, sender, status, deadline,"
            " created_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (id) DO NOTHING",
            (message["id"], message["terminalId"], _json_text(message), sender, status,
             deadline, created_at)) == 1

    def set_action_status(self, action_id: str, status: str,
                          result: dict[str, Any] | None = None) -> None:
        self.db.run("UPDATE actions SET status = ?, result = coalesce(?, result) WHERE id = ?",
                    (status, _json_text(result), action_id))

    def claim_action(self, action_id: str, expected: str, status: str,
                     result: dict[str, Any] | None = None) -> bool:
        """Move an action from ``expected`` to ``status`` (and its result) in one statement;
        False if it was not in ``expected`` (another hub instance delivered or expired it
        first)."""
        return self.db.run(
            "UPDATE actions SET status = ?, result = coalesce(?, result)"
            " WHERE id = ? AND status = ?",
            (status, _json_text(result), action_id, expected)) == 1

    def get_action(self, action_id: str) -> StoredAction | None:
        row = one(self.db, "SELECT * FROM actions WHERE id = ?", (action_id,))
        return _action(row) if row else None

    def queued_actions(self, terminal_id: str | None = None) -> list[StoredAction]:
        sql, args = "SELECT * FROM actions WHERE status = 'queued'", []
        if terminal_id is not None:
            sql += " AND terminal_id = ?"
            args.append(terminal_id)
        order = self.db.dialect.action_order
        return [_action(r) for r in self._rows(f"{sql} ORDER BY created_at, {order}", args)]
