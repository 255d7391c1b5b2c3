"""hub.history_runner on its own, on both stores: worker threads with read-only connections
of their own, the bound, and the time limit."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from hub.history_runner import HistoryBusyError, HistoryRunner, HistoryTooSlowError
from hub.store import HubStore
from hub.store_api import Store
from hub.store_sql import Db, database_errors
from tests.support.hub import event_frame
from tests.support.waits import wait_for


@pytest.fixture
def store(either_store: Store) -> Store:
    """Each test runs on SQLite, then on PostgreSQL, with ten events stored."""
    for seq in range(1, 11):
        either_store.insert_event(event_frame("T1", seq), source="T1", received_at=0.0)
    return either_store


def _count(db: Db) -> tuple[int, str]:
    row = db.rows("SELECT count(*) AS c FROM events")[0]
    return int(row["c"]), threading.current_thread().name


async def test_queries_run_on_workers_read_only_and_within_the_bound(store: Store) -> None:
    runner = HistoryRunner(store, workers=1)
    try:
        total, thread = await runner.run(_count)
        assert total == 10 and thread.startswith("hub-history")
        with pytest.raises(database_errors(), match=r"readonly|read-only|query_only"):
            await runner.run(lambda db: db.run("DELETE FROM events"))
        # A failed query's connection is not kept: the next one gets a new connection.
        with pytest.raises(database_errors()):
            await runner.run(lambda db: db.rows("SELECT * FROM no_such_table"))
        assert (await runner.run(_count))[0] == 10
        release = threading.Event()
        started = threading.Event()

        def held(db: Db) -> int:
            started.set()
            assert release.wait(30)
            return 1

        first = asyncio.create_task(runner.run(held))
        assert await asyncio.to_thread(started.wait, 30)
        with pytest.raises(HistoryBusyError):
            await runner.run(_count)
        release.set()
        assert await first == 1
        # released from the worker's done-callback, through the loop
        await wait_for(lambda: runner.running == 0, 10, "the worker counted free")
        assert (await runner.run(_count))[0] == 10
        assert store.events("T1")[-1]["seq"] == 10  # nothing was deleted
    finally:
        runner.close()


async def test_a_query_over_its_time_is_stopped_and_the_worker_serves_on(
        store: Store) -> None:
    runner = HistoryRunner(store, workers=1, query_limit_s=60.0)
    try:
        assert (await runner.run(_count))[0] == 10  # the worker's connection is open
        runner.query_limit_s = 0.0  # over time before its first statement

        def long_query(db: Db) -> int:
            return len(db.rows("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1"
                               " FROM r WHERE i < 2000000) SELECT count(*) FROM r"))

        with pytest.raises(HistoryTooSlowError, match="longer than 0 s"):
            await runner.run(long_query)
        runner.query_limit_s = 60.0
        assert (await runner.run(_count))[0] == 10
    finally:
        runner.close()


def test_a_runner_needs_a_worker(tmp_path: Path) -> None:
    store = HubStore(tmp_path / "x.db")
    try:
        with pytest.raises(ValueError, match="at least one worker"):
            HistoryRunner(store, workers=0)
    finally:
        store.close()


async def test_a_worker_whose_connection_was_cut_connects_again(pg_url: str) -> None:
    import psycopg

    from hub.store_pg import PgStore

    store = PgStore(pg_url, synchronous="NORMAL", origin="cut")
    runner = HistoryRunner(store, workers=1)
    try:
        assert (await runner.run(_count))[0] == 0
        with psycopg.connect(pg_url, autocommit=True) as admin:  # as a database restart
            cut = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM"
                                " pg_stat_activity WHERE application_name = %s",
                                ("slot-hub cut history",)).fetchone()
        assert cut == (1,)
        with pytest.raises(database_errors()):
            await runner.run(_count)  # the query that finds it cut fails (HTTP 500)
        assert (await runner.run(_count))[0] == 0  # and the next one has a new connection
    finally:
        runner.close()
        store.close()
