"""The SQLite store's batch insert (hub/store.py ``insert_events``): multi-row statements of
power-of-two sizes in place of ``executemany``. Whatever the batch's size and wherever its
duplicates are, every new event is stored once, in order, under consecutive cursors, each
duplicate is flagged, and the acknowledged seqs advance."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.store import HubStore, _insert_many
from hub.store_sql import EventWrite

TS = "2026-12-07T00:00:00.000Z"


def _frame(terminal: str, seq: int) -> dict[str, object]:
    return {"type": "event", "id": f"{terminal}-{seq}", "seq": seq, "terminalId": terminal,
            "channel": "game", "event": "betPlaced", "timestamp": TS,
            "data": {"amount": seq, "credits": 1}}


# A batch: (terminal, seq) pairs, seqs drawn from a small space so that repeats (within the
# batch and against earlier batches) are common.
batches = st.lists(
    st.lists(st.tuples(st.sampled_from(["T-1", "T-2", "T-3"]), st.integers(1, 400)),
             max_size=700),
    min_size=1, max_size=4)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=batches)
def test_any_batch_is_stored_once_in_order_under_consecutive_cursors(
        tmp_path_factory: pytest.TempPathFactory, batches: list[list[tuple[str, int]]]) -> None:
    path = tmp_path_factory.mktemp("store") / "hub.db"
    store = HubStore(path, synchronous="NORMAL")
    try:
        stored: set[tuple[str, int]] = set()
        expected_rows: list[tuple[str, int]] = []
        acked: dict[str, int] = {}
        cursor_of: dict[tuple[str, int], int] = {}
        for batch in batches:
            writes = [EventWrite(_frame(t, s), t, acked_seq=s) for t, s in batch]
            inserted = store.insert_events(writes, 1.0)
            want = []
            for key in batch:
                fresh = key not in stored
                want.append(fresh)
                if fresh:
                    stored.add(key)
                    expected_rows.append(key)
                acked[key[0]] = max(acked.get(key[0], 0), key[1])
            assert inserted == want
            cursors = [w.frame["cursor"] for w, new in zip(writes, inserted, strict=True)
                       if new]
            if cursors:
                assert cursors == list(range(cursors[0], cursors[0] + len(cursors)))
            cursor_of.update({(w.source, w.frame["seq"]): w.frame["cursor"]
                              for w, new in zip(writes, inserted, strict=True) if new})
        db = sqlite3.connect(path)
        rows = db.execute("SELECT source, seq, n, data FROM events ORDER BY n").fetchall()
        assert [(r[0], r[1]) for r in rows] == expected_rows
        assert {(r[0], r[1]): r[2] for r in rows} == cursor_of  # each frame's cursor is its n
        assert all(r[3] == f'{{"amount":{r[1]},"credits":1}}' for r in rows)
        assert dict(db.execute("SELECT terminal_id, acked_seq FROM terminals").fetchall()) \
            == acked
        db.close()
    finally:
        store.close()


def test_statements_stay_within_the_bound_parameter_limit(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    db.execute("CREATE TABLE t (a, b, c)")
    db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 100)  # an old build's smaller limit
    seen: list[int] = []
    db.set_trace_callback(lambda sql: seen.append(sql.count("),(") + 1))
    assert _insert_many(db, "INSERT INTO t VALUES ", "(?,?,?)",
                        [(i, i, i) for i in range(1000)]) == 1000
    assert max(seen) <= 32  # 32 rows x 3 = 96 parameters; 64 would be 192
    assert [r[0] for r in db.execute("SELECT a FROM t")] == list(range(1000))
    assert _insert_many(db, "INSERT INTO t VALUES ", "(?,?,?)", []) == 0


def test_cursors_without_reading_the_sequence_and_after_rows_stored_elsewhere(
        tmp_path: Path) -> None:
    """After its first commit the writer numbers the new rows from the last id it stored and
    each statement's ``lastrowid``, with no SELECT in the transaction; rows another
    connection inserted meanwhile are noticed (the ids do not follow on) and the cursors are
    still the rows' ids."""
    path = tmp_path / "hub.db"
    store = HubStore(path, synchronous="NORMAL")
    statements: list[str] = []
    store._writer_db.set_trace_callback(statements.append)
    try:
        def batch(first: int, count: int) -> list[EventWrite]:
            writes = [EventWrite(_frame("T-1", s), "T-1", acked_seq=s)
                      for s in range(first, first + count)]
            assert store.insert_events(writes, 1.0) == [True] * count
            return writes

        batch(1, 3)
        assert any(s.startswith("SELECT") for s in statements)  # the first: read back
        statements.clear()
        second = batch(4, 300)  # four statements: 256 + 32 + 8 + 4 rows
        assert not [s for s in statements if s.startswith("SELECT")]
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("INSERT INTO events (source, seq, id, terminal_id, channel, event,"
                      " timestamp, data, received_at) VALUES ('T-9', 1, 'T-9-1', 'T-9',"
                      " 'game', 'betPlaced', ?, '{}', 0)", (TS,))
        other.close()
        third = batch(304, 5)
        fourth = batch(309, 2)
        ids = dict(((r[0], r[1]), r[2]) for r in sqlite3.connect(path).execute(
            "SELECT source, seq, n FROM events"))
        for w in (*second, *third, *fourth):
            assert w.frame["cursor"] == ids[("T-1", w.frame["seq"])]
        assert third[0].frame["cursor"] == ids[("T-9", 1)] + 1
    finally:
        store.close()
