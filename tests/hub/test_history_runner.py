"""hub.history_runner on its own: worker threads with read-only connections, the bound."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from hub.history_runner import HistoryBusyError, HistoryRunner
from tests.support.waits import wait_for


def _database(tmp_path: Path) -> Path:
    path = tmp_path / "h.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (n INTEGER)")
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(10)])
    db.commit()
    db.close()
    return path


async def test_queries_run_on_workers_read_only_and_within_the_bound(tmp_path: Path) -> None:
    runner = HistoryRunner(_database(tmp_path), workers=1)
    try:
        def count(db: sqlite3.Connection) -> tuple[int, str]:
            total = db.execute("SELECT count(*) FROM t").fetchone()[0]
            return total, threading.current_thread().name

        total, thread = await runner.run(count)
        assert total == 10 and thread.startswith("hub-history")
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only|query_only"):
            await runner.run(lambda db: db.execute("DELETE FROM t"))
        release = threading.Event()
        started = threading.Event()

        def held(db: sqlite3.Connection) -> int:
            started.set()
            assert release.wait(30)
            return 1

        first = asyncio.create_task(runner.run(held))
        assert await asyncio.to_thread(started.wait, 30)
        with pytest.raises(HistoryBusyError):
            await runner.run(count)
        release.set()
        assert await first == 1
        # released from the worker's done-callback, through the loop
        await wait_for(lambda: runner.running == 0, 10, "the worker counted free")
        assert (await runner.run(count))[0] == 10
    finally:
        runner.close()


def test_a_runner_needs_a_worker(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        HistoryRunner(tmp_path / "x.db", workers=0)
