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
        db = sqlite3.connect(path)
        rows = db.execute("SELECT source, seq, n, data FROM events ORDER BY n").fetchall()
        assert [(r[0], r[1]) for r in rows] == expected_rows
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
