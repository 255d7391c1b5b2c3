"""The SQLite store's WAL checkpoint on a thread of its own (hub/wal_checkpoint.py): the
commits' pages reach the database file without a commit copying them, the WAL stays
bounded under steady writes, an unwritten store starts no thread, and closing stops it."""

from __future__ import annotations

import sqlite3
import struct
import threading
from pathlib import Path

import pytest

import hub.store
from hub.store import HubStore
from hub.store_sql import EventWrite
from hub.wal_checkpoint import WalCheckpointer
from tests.support.waits import wait_until

TS = "2026-12-07T00:00:00.000Z"


def _writes(first: int, n: int, terminals: int = 40) -> list[EventWrite]:
    """``n`` events spread over ``terminals`` terminals (a page per terminal in each
    per-terminal index, as a busy floor's transaction)."""
    out = []
    for k in range(first, first + n):
        tid, seq = f"T-{k % terminals:03d}", k // terminals + 1
        frame = {"type": "event", "id": f"{tid}-{seq}", "seq": seq, "terminalId": tid,
                 "channel": "game", "event": "betPlaced", "timestamp": TS,
                 "data": {"amount": k, "credits": 1, "pad": "x" * 200}}
        out.append(EventWrite(frame, tid, acked_seq=seq))
    return out


def _wal_index(path: Path) -> tuple[int, int]:
    """(frames in the WAL, frames copied to the database) from the WAL index header
    (sqlite.org/walformat.html: ``mxFrame`` at offset 16, ``nBackfill`` at 96, native
    byte order)."""
    head = Path(f"{path}-shm").read_bytes()[:100]
    return struct.unpack_from("=I", head, 16)[0], struct.unpack_from("=I", head, 96)[0]


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "hub-checkpoint"]


def test_committed_pages_reach_the_database_with_no_commit_copying_them(tmp_path: Path
                                                                        ) -> None:
    path = tmp_path / "hub.db"
    store = HubStore(path)
    try:
        for i in range(5):  # far under the writer's own checkpoint limit
            assert store.insert_events(_writes(i * 200, 200), 1.0) == [True] * 200
        frames, _ = _wal_index(path)
        assert 0 < frames < hub.store._WRITER_CHECKPOINT_PAGES
        # Nothing writes any more: only the checkpoint thread can copy the frames.
        wait_until(lambda: _wal_index(path)[1] == _wal_index(path)[0],
                   what=lambda: f"every WAL frame copied (mxFrame, nBackfill) = "
                                f"{_wal_index(path)}")
        assert store.checkpointer.failures == 0
        assert store.checkpointer.runs >= 1
        # The copy is the database's: a new connection reads every event from it.
        assert len(store.events()) == 1000
    finally:
        store.close()


def test_the_wal_starts_over_under_steady_writes(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer completes what the thread copied, so the WAL restarts from its first
    frame: the file stays bounded however long the writes go on."""
    monkeypatch.setattr(hub.store, "_WRITER_CHECKPOINT_PAGES", 200)
    path = tmp_path / "hub.db"
    store = HubStore(path)
    try:
        most, restarts, before = 0, 0, 0
        for i in range(60):
            store.insert_events(_writes(i * 100, 100), 1.0)
            frames, _ = _wal_index(path)
            most = max(most, frames)
            restarts += frames < before
            before = frames
        assert restarts >= 3
        assert most < 4 * 200, f"the WAL grew to {most} frames"
    finally:
        store.close()


def test_a_store_only_read_starts_no_thread_and_close_stops_it(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    before = len(_checkpoint_threads())
    store = HubStore(path)
    store.events()
    assert len(_checkpoint_threads()) == before
    store.insert_events(_writes(0, 10), 1.0)
    assert len(_checkpoint_threads()) == before + 1
    store.close()
    assert len(_checkpoint_threads()) == before
    # Every connection closed: SQLite copied the rest and removed the WAL.
    assert not Path(f"{path}-wal").exists()
    store_again = HubStore(path)
    try:
        assert len(store_again.events()) == 10
    finally:
        store_again.close()


class _StopBeforeClear(threading.Event):
    """The checkpoint's wake-up, with a :meth:`WalCheckpointer.stop` landing just before
    its first clear (after the checkpoint's delay, before the copy)."""

    def __init__(self, checkpointer: WalCheckpointer) -> None:
        super().__init__()
        self.checkpointer = checkpointer
        self.stopper: threading.Thread | None = None

    def clear(self) -> None:
        if self.stopper is None:
            self.stopper = threading.Thread(target=self.checkpointer.stop, daemon=True)
            self.stopper.start()
            # stop() has set the wake-up (after _stopping) before the clear erases it
            wait_until(lambda: self.checkpointer._stopping.is_set() and self.is_set())
        super().clear()


def test_a_stop_between_the_delay_and_the_copy_still_ends_the_thread(tmp_path: Path) -> None:
    """A stop whose wake-up the checkpoint erased (it cleared it for the next round) ended
    nothing: the thread waited for a commit that never came, and the close with it."""
    path = tmp_path / "hub.db"
    HubStore(path).close()  # the database and its WAL mode
    checkpointer = WalCheckpointer(str(path), lambda: sqlite3.connect(path))
    wake = _StopBeforeClear(checkpointer)
    checkpointer._written = wake
    checkpointer.written()
    wait_until(lambda: wake.stopper is not None, what="the stop landing before the clear")
    assert wake.stopper is not None
    wake.stopper.join(10)
    assert not wake.stopper.is_alive(), "stop() waited for ever for the checkpoint thread"
    assert not _checkpoint_threads()
