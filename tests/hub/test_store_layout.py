"""The events table's indexes: a database an older hub wrote is migrated at open (SQLite and
PostgreSQL), ids are found without an index of their own, and the main queries of the floor,
the snapshots and the history API run on an index (SQLite's plans)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from hub.gaming_day import GamingDay
from hub.history import (
    EventQuery,
    cursor_before_time,
    day_summary,
    head_cursor,
    latest_meters,
    query_events,
)
from hub.sql_dialect import (
    ACK_INDEX_PREFIX,
    EVENT_INDEXES,
    OBSOLETE_INDEXES,
    POSTGRESQL,
    SQLITE,
    Db,
    Dialect,
)
from hub.store import SCHEMA_VERSION, HubStore
from hub.store_api import EventWrite, Store
from tests.support.hub import event_frame

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z

#: The tables as the hub wrote them before this layout (hub/sql_dialect.py of 2026-12-06):
#: with ``events_by_id``. Kept here verbatim, so a database of that hub can be built; with
#: an alert index of another list of events needing an acknowledgement besides.
_OLD_DDL = """
CREATE TABLE IF NOT EXISTS events (
    n {serial},
    source TEXT NOT NULL,
    seq {integer} NOT NULL,
    id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    data TEXT NOT NULL,
    received_at {real} NOT NULL,
    UNIQUE (source, seq)
);
CREATE INDEX IF NOT EXISTS events_by_id ON events (id);
CREATE INDEX IF NOT EXISTS events_by_terminal ON events (terminal_id, event, timestamp);
CREATE INDEX IF NOT EXISTS events_by_name ON events (event, timestamp);
CREATE INDEX IF NOT EXISTS events_to_ack_00000000 ON events (n) WHERE channel = 'alerts';
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
    message TEXT NOT NULL,
    sender TEXT NOT NULL,
    status TEXT NOT NULL,
    deadline {real},
    result TEXT,
    created_at {real} NOT NULL
);
"""

_OLD_ROWS = [("T1", 1, "T1-1", "T1", "alerts", "doorOpened", '{"door":"main"}'),
             ("T1", 2, "T1-2", "T1", "game", "betPlaced", '{"amount":100}'),
             ("hub", 1, "hub-1", "T1", "alerts", "deviceOnline", "{}")]


def _old_ddl(d: Dialect) -> str:
    return _OLD_DDL.format(serial=d.serial, integer=d.integer, real=d.real,
                           action_serial=d.action_serial)


def _old_insert(d: Dialect) -> tuple[str, str]:
    return (d.sql("INSERT INTO events (source, seq, id, terminal_id, channel, event,"
                  " timestamp, data, received_at) VALUES (?,?,?,?,?,?,"
                  " '2023-11-14T22:13:20.000Z',?,?)"),
            d.sql("INSERT INTO alert_acks VALUES ('T1-1', 'T1', 'alice', 'x')"))


def _old_sqlite(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(_old_ddl(SQLITE))
    insert, ack = _old_insert(SQLITE)
    db.executemany(insert, [(*r, T0) for r in _OLD_ROWS])
    db.execute(ack)
    db.commit()
    db.close()


def _old_postgresql(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(_old_ddl(POSTGRESQL).encode())
        insert, ack = _old_insert(POSTGRESQL)
        for r in _OLD_ROWS:
            db.execute(insert.encode(), (*r, T0))
        db.execute(ack.encode())


def _event_indexes(store: Store) -> set[str]:
    if isinstance(store, HubStore):
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
    else:
        sql = "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'events'"
    return {r["name"] for r in store.reader.rows(sql)}


def _write(store: Store, writes: list[EventWrite]) -> list[bool]:
    async def go() -> list[bool]:
        return await store.write_events(writes, T0 + 10)
    return asyncio.run(go())


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_database_of_the_older_layout_is_migrated_at_open(
        engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    store: Store
    if engine == "sqlite":
        _old_sqlite(tmp_path / "hub.db")

        def open_store() -> Store:
            return HubStore(tmp_path / "hub.db", synchronous="NORMAL")
    else:
        from hub.store_pg import PgStore

        url = request.getfixturevalue("pg_url")
        _old_postgresql(url)

        def open_store() -> Store:
            return PgStore(url, synchronous="NORMAL", origin="test")
    for opening in range(2):  # and opened again: nothing left to do
        store = open_store()
        try:
            indexes = _event_indexes(store)
            assert not indexes & {*OBSOLETE_INDEXES, "events_to_ack_00000000"}
            assert set(EVENT_INDEXES) <= indexes
            if isinstance(store, HubStore):
                version = store.reader.rows("PRAGMA user_version")[0][0]
                assert version == SCHEMA_VERSION
            # The old rows read back, by id too, and still de-duplicate exactly.
            assert [e["id"] for e in store.events()][:3] == ["T1-1", "T1-2", "hub-1"]
            alert = store.get_event("T1-1")
            assert alert is not None and alert["data"] == {"door": "main"}
            assert store.alert_ack("T1-1") == ("alice", "x")
            assert store.get_event("hub-1") is not None
            frames = [event_frame("T1", 2), event_frame("T1", 3)]
            assert _write(store, [EventWrite(f, "T1", acked_seq=f["seq"])
                                  for f in frames]) == [False, opening == 0]
            assert [e["id"] for e in store.events("T1")][-1] == "T1-3"
        finally:
            store.close()


def test_ids_are_found_by_the_source_and_seq_they_are_made_of(either_store: Store) -> None:
    store = either_store
    writes = [EventWrite(event_frame("T1", 7), "T1"),
              EventWrite(event_frame("bank-2-T9", 12), "bank-2-T9"),
              EventWrite(event_frame("T1", 3, "deviceOnline") | {"id": "hub-3"}, "hub")]
    assert _write(store, writes) == [True, True, True]
    for event_id, source in (("T1-7", "T1"), ("bank-2-T9-12", "bank-2-T9"), ("hub-3", "hub")):
        found = store.get_event(event_id)
        assert found is not None and found["id"] == event_id, event_id
        assert (found["terminalId"], found["seq"]) in (("T1", 7), ("bank-2-T9", 12),
                                                       ("T1", 3)), source
    # Not of the form source-seq, or of a seq that is not stored: nothing (no error).
    for event_id in ("T1-07", "T1-", "-7", "T1", "T1-7x", "T1-٣", "T1-0", "T1-8",
                     "T1-99999999999999999999", "T9-7", "bank-2-T9-1", "hub-7"):
        assert store.get_event(event_id) is None, event_id


def test_the_prune_keeps_acks_of_kept_alerts_and_drops_the_others(either_store: Store) -> None:
    store = either_store
    _write(store, [EventWrite(event_frame("T1", s, "doorOpened"), "T1") for s in (1, 2)])
    store.add_alert_ack("T1-1", "T1", "alice", "x")
    store.add_alert_ack("T1-2", "T1", "alice", "x")
    store.add_alert_ack("T1-9", "T1", "alice", "x")  # its alert is not stored
    store.add_alert_ack("odd id", "T1", "alice", "x")  # no stored id has this form

    async def go() -> int:
        return await store.prune(T0, ["succeeded"])
    assert asyncio.run(go()) == 0  # no event is older than the cutoff
    assert store.alert_ack("T1-1") and store.alert_ack("T1-2")
    assert store.alert_ack("T1-9") is None and store.alert_ack("odd id") is None


# ---------------------------------------------------------------------- query plans


class _Recording:
    """A store's event-loop connection (:class:`hub.sql_dialect.Db`), noting every query."""

    def __init__(self, db: Db) -> None:
        self.inner = db
        self.dialect = db.dialect
        self.seen: list[tuple[str, Sequence[Any]]] = []

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        self.seen.append((sql, args))
        return self.inner.rows(sql, args)

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.inner.run(sql, args)

    def schema(self, ddl: str) -> None:
        self.inner.schema(ddl)

    def close(self) -> None:
        self.inner.close()


#: SQLite: a full pass over ``events`` or over one of its indexes (rather than a search on
#: a key), except over a partial index of the alerts (it holds nothing else).
_FULL_SCAN = re.compile(rf"^SCAN (e|events)\b(?! USING (COVERING )?INDEX {ACK_INDEX_PREFIX})")


def _full_scans(store: Store, db: _Recording, sql: str, args: Sequence[Any]) -> list[str]:
    """The steps of the query's plan that read all of ``events``."""
    if isinstance(store, HubStore):
        plan = [r[3] for r in db.inner.rows(f"EXPLAIN QUERY PLAN {sql}", args)]
        return [step for step in plan if _FULL_SCAN.match(step)]
    # PostgreSQL plans a few rows with a sequential scan whatever the indexes; with
    # sequential scans priced out, one is left only where no index can serve.
    db.inner.run("SET enable_seqscan = off")
    try:
        plan = [r["QUERY PLAN"] for r in db.inner.rows(f"EXPLAIN {sql}", args)]
    finally:
        db.inner.run("RESET enable_seqscan")
    return [step for step in plan if "Seq Scan on events" in step]


def test_the_main_queries_search_an_index(either_store: Store) -> None:
    store = either_store
    names = ["betPlaced", "winPaid", "doorOpened", "doorClosed", "meterSnapshot",
             "billAccepted", "machineLocked", "handpayPending"]
    _write(store, [EventWrite(event_frame(f"T{t}", s, names[s % len(names)],
                                          timestamp=T0 + s), f"T{t}", acked_seq=s)
                   for t in range(5) for s in range(1, 40)])
    db = _Recording(store.db)  # type: ignore[attr-defined]
    store.db = db  # type: ignore[attr-defined]
    day = GamingDay("UTC", 6)
    # The floor (at start and per event), an alert's acknowledgement, the snapshot, the
    # history API with its filters, summaries and meters.
    assert store.known_terminals() == ["T0", "T1", "T2", "T3", "T4"]
    store.get_event("T1-3")
    store.events("T1")
    store.last_event("T1")
    store.last_event("T1", ["machineLocked", "machineUnlocked"])
    store.last_door_events("T1")
    store.day_money("T1", "2023-11-14T06:00:00.000Z", "2023-11-15T06:00:00.000Z")
    store.amount_sum("T1", "billAccepted", "2023-11-14T06:00:00.000Z",
                     "2023-11-15T06:00:00.000Z")
    store.amounts_by_minute("betPlaced", "2023-11-14T22:00:00.000Z", None)
    store.amounts_by_minute("betPlaced", "2023-11-14T22:00:00.000Z", ["T1", "T2"])
    store.count_unacked_alerts("T1")
    store.unacked_alerts(10, None)
    store.unacked_alerts(10, ["T1", "T2"])
    store.recent(10, ["T1", "T2"])
    for q in (EventQuery(terminals=["T1"]), EventQuery(terminals=["T1"], events=["winPaid"]),
              EventQuery(events=["winPaid"], since="2023-11-14T22:13:30.000Z"),
              EventQuery(after=10), EventQuery(before=50, limit=5),
              EventQuery(terminals=["T1", "T2"], since="2023-11-14T22:13:30.000Z",
                         until="2023-11-14T22:14:00.000Z")):
        query_events(db, q)
    day_summary(db, day, "2023-11-14", ["T1", "T2"], {})
    latest_meters(db, ["T1", "T2"])
    head_cursor(db)
    cursor_before_time(db, T0 + 20)
    assert len(db.seen) >= 27
    for sql, args in db.seen:
        assert not _full_scans(store, db, sql, args), sql
