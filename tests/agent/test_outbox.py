"""The SQLite outbox: seqs, state, acks, cap policy, corruption, disk full, actions, readers."""

from __future__ import annotations

import io
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from agent.store.outbox import Outbox, OutboxError, OutboxFullError
from api.events import Event
from tests.support.event_data import assert_documented

TS = "2026-01-01T00:00:00.000Z"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def game(i: int) -> Event:
    return Event("gameStarted", TS, {"i": i})


def bet(i: int) -> Event:
    return Event("betPlaced", TS, {"i": i, "amount": 100})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "outbox.db"


def test_the_file_is_wal_with_full_sync(db: Path) -> None:
    with Outbox.open(db, terminal_id="T1") as ob:
        pragma = ob._conn.execute
        assert pragma("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert pragma("PRAGMA synchronous").fetchone()[0] == 2  # FULL: survives power loss
        assert pragma("PRAGMA journal_size_limit").fetchone()[0] > 0
        assert pragma("PRAGMA wal_autocheckpoint").fetchone()[0] > 0


def test_commit_assigns_increasing_seqs_and_stores_state(db: Path, clock: FakeClock) -> None:
    with Outbox.open(db, terminal_id="T1", clock=clock) as ob:
        assert (ob.last_seq, ob.acked_seq, ob.depth, ob.load_state()) == (0, 0, 0, None)
        first = ob.commit([game(1), bet(1)], {"meters": {"coinIn": 100}})
        second = ob.commit([game(2)], None)  # None keeps the previous state
        assert [s.seq for s in first + second] == [1, 2, 3]
        assert first[0].id == "T1-1"
        assert ob.load_state() == {"meters": {"coinIn": 100}}
        assert ob.depth == 3 and ob.last_seq == 3
        assert [s.event for s in ob.pending(0, 10)] == [game(1), bet(1), game(2)]
        assert [s.seq for s in ob.pending(1, 1)] == [2]
        assert ob.oldest_unacked_timestamp() == clock.now
    # Everything survives a reopen.
    with Outbox.open(db, terminal_id="T1", clock=clock) as ob:
        assert ob.last_seq == 3 and ob.load_state() == {"meters": {"coinIn": 100}}
        assert ob.commit([game(4)], {"x": 1})[0].seq == 4


def test_the_gauges_backlog_matches_stats_and_reads_nothing_once_all_is_acked(
        db: Path, clock: FakeClock) -> None:
    """What the daemon reads every 2 s (its STATUS= line and outbox gauges): the writer's
    own seqs, and the depth and oldest unacked event without stats()'s count of every row;
    with everything acknowledged, not even a query."""
    with Outbox.open(db, terminal_id="T1", clock=clock) as ob:
        assert ob.seqs() == (0, 0) and ob.backlog() == (0, None)
        ob.commit([game(i) for i in range(5)], None)
        clock.now += 10.0
        ob.commit([game(5)], None)
        ob.ack(2)
        stats = ob.stats()
        assert ob.seqs() == (stats.last_seq, stats.acked_seq) == (6, 2)
        assert ob.backlog() == (stats.depth, stats.oldest_unacked_created_at) == (4, clock.now - 10)
        ob.ack(6)
        assert ob.seqs() == (6, 6)
        conn, ob._conn = ob._conn, None  # type: ignore[assignment]
        try:
            assert ob.backlog() == (0, None)  # no query: the connection is not touched
        finally:
            ob._conn = conn


def test_ack_is_cumulative_idempotent_and_rejects_unknown_seqs(db: Path, clock: FakeClock) -> None:
    with Outbox.open(db, terminal_id="T1", clock=clock) as ob:
        ob.commit([game(i) for i in range(5)], None)
        assert ob.ack(3) == 3
        assert ob.ack(2) == 3  # lower ack: no change
        assert ob.ack(3) == 3
        assert ob.depth == 2
        assert [s.seq for s in ob.pending(0, 10)] == [4, 5]
        with pytest.raises(OutboxError, match="beyond the last assigned seq 5"):
            ob.ack(6)
        assert ob.acked_seq == 3
        ob.ack(5)
        assert ob.depth == 0 and ob.oldest_unacked_timestamp() is None
        assert len(ob.tail(10)) == 5  # acked events stay for the local audit


def test_tail_and_export_use_the_wire_form(db: Path, clock: FakeClock) -> None:
    with Outbox.open(db, terminal_id="EGM-7", clock=clock) as ob:
        ob.commit([game(i) for i in range(1, 6)], None)
        assert [s.seq for s in ob.tail(2)] == [4, 5]
        out = io.StringIO()
        assert ob.export(out, after_seq=3) == 2
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0] == {
        "type": "event", "id": "EGM-7-4", "seq": 4, "channel": "game", "terminalId": "EGM-7",
        "event": "gameStarted", "timestamp": TS, "data": {"i": 4},
    }
    assert [x["seq"] for x in lines] == [4, 5]


def test_unserialisable_data_is_refused_and_nothing_is_written(db: Path) -> None:
    with Outbox.open(db, terminal_id="T1") as ob:
        with pytest.raises(OutboxError, match="data of gameStarted"):
            ob.commit([game(1), Event("gameStarted", TS, {"x": object()})], {"a": 1})
        with pytest.raises(OutboxError, match="state"):
            ob.commit([game(1)], {"a": float("nan")})
        assert ob.last_seq == 0 and ob.load_state() is None


def test_terminal_id_mismatch_names_both_ids(db: Path) -> None:
    Outbox.open(db, terminal_id="EGM-0001").close()
    with pytest.raises(OutboxError, match=r"'EGM-0001'.*'EGM-0002'"):
        Outbox.open(db, terminal_id="EGM-0002")


def test_garbage_file_is_moved_aside_and_a_fresh_outbox_started(db: Path) -> None:
    garbage = b"this is not a database at all\x00" * 200
    db.write_bytes(garbage)
    with Outbox.open(db, terminal_id="T1") as ob:
        assert ob.recovered_from is not None
        moved = Path(ob.recovered_from)
        assert moved.name.startswith("outbox.db.corrupt-")
        assert moved.read_bytes() == garbage  # kept, never deleted
        assert ob.commit([game(1)], None)[0].seq == 1
    with Outbox.open(db, terminal_id="T1") as ob:
        assert ob.recovered_from is None and ob.last_seq == 1


def test_damaged_pages_fail_quick_check_and_are_moved_aside(db: Path) -> None:
    with Outbox.open(db, terminal_id="T1") as ob:
        for i in range(20):
            ob.commit([Event("gameStarted", TS, {"pad": "x" * 500, "i": i}) for _ in range(20)],
                      None)
    raw = bytearray(db.read_bytes())
    page = 4096
    assert len(raw) > 20 * page
    raw[5 * page : 12 * page] = b"\xa5" * (7 * page)  # smash b-tree pages, keep the header
    db.write_bytes(bytes(raw))
    with Outbox.open(db, terminal_id="T1") as ob:
        assert ob.recovered_from is not None
        assert ob.last_seq == 0
        assert ob.quick_check() == "ok"


def test_commit_returns_the_given_events_with_their_seqs(db: Path) -> None:
    """The returned StoredEvents are built from the input, not by decoding what was written;
    what a reader decodes from the file is equal to them."""
    events = [game(1), Event("billAccepted", TS, {"amount": 500, "note": "10 €"}), bet(2)]
    with Outbox.open(db, terminal_id="T1") as ob:
        stored = ob.commit(events, None)
        assert [s.event for s in stored] == events
        assert all(s.event is e for s, e in zip(stored, events, strict=True))
        assert ob.pending(0, 10) == stored


def test_pending_frames_are_the_wire_frames_of_the_stored_events(db: Path) -> None:
    """The uplink's frames splice the stored data text: the same JSON as ``to_wire`` (same
    keys, same order), for plain, nested and non-ASCII data; after_seq, the ack cursor and
    the limit apply as for :meth:`pending`."""
    events = [game(1), bet(2), Event("billAccepted", TS, {"amount": 500, "note": "10 € \"x\""}),
              Event("meterSnapshot", TS, {"meters": {"coinIn": [1, 2]}, "z": None, "a": []}),
              Event("gameStarted", TS, {})]
    with Outbox.open(db, terminal_id="T-0042:a.b_c") as ob:
        ob.commit(events, None)
        expected = ob.pending(0, 10)
        frames = ob.pending_frames(0, 10)
        assert [f.seq for f in frames] == [1, 2, 3, 4, 5]
        for frame, stored in zip(frames, expected, strict=True):
            decoded = json.loads(frame.text)
            assert decoded == stored.to_wire()
            assert list(decoded) == list(stored.to_wire())
        ob.ack(2)
        assert [f.seq for f in ob.pending_frames(0, 10)] == [3, 4, 5]
        assert [f.seq for f in ob.pending_frames(3, 1)] == [4]
        with Outbox.open_reader(db) as reader:
            assert reader.pending_frames(0, 10) == ob.pending_frames(0, 10)


def test_the_page_cache_of_every_connection_is_bounded(db: Path) -> None:
    """SQLite's default page cache (2,000 KiB) fills a page at a time as the table grows, so
    the daemon's memory would grow for hours; each connection is held to PAGE_CACHE_KIB."""
    from agent.store.outbox import PAGE_CACHE_KIB

    with Outbox.open(db, terminal_id="T1") as ob:
        assert ob._conn.execute("PRAGMA cache_size").fetchone()[0] == -PAGE_CACHE_KIB
        with Outbox.open_reader(db) as reader:
            assert reader._conn.execute("PRAGMA cache_size").fetchone()[0] == -PAGE_CACHE_KIB
    assert 0 < PAGE_CACHE_KIB <= 512


def test_size_cap_drops_acked_then_unprotected_with_a_data_gap(db: Path, clock: FakeClock) -> None:
    with Outbox.open(db, terminal_id="T1", max_events=10, clock=clock) as ob:
        ob.commit([game(i) for i in range(1, 5)], None)  # 1..4
        ob.ack(2)
        ob.commit([bet(i) for i in range(5, 11)], None)  # 5..10, table full (10 rows)
        stored = ob.commit([game(11)], None)  # drops acked seq 1 only
        assert [s.seq for s in stored] == [11]
        assert ob.rows == 10
        stored = ob.commit([game(12), game(13)], None)  # acked 2, then unacked game 3, 4
        gap = stored[0]
        assert gap.event.name == "dataGap"
        assert gap.event.data == {"reason": "outboxOverflow", "dropped": 2, "fromSeq": 3,
                                  "toSeq": 4, "events": {"gameStarted": 2}}
        assert_documented([gap.to_wire()])
        assert [s.seq for s in stored] == [12, 13, 14]
        seqs = [s.seq for s in ob.pending(0, 100)]
        assert seqs == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
        assert ob.dropped_events == 2


def test_protected_events_are_kept_beyond_the_cap(db: Path) -> None:
    with Outbox.open(db, terminal_id="T1", max_events=3) as ob:
        ob.commit([bet(i) for i in range(5)], None)
        assert ob.rows == 5  # the cap is a target; money is never dropped
        assert all(s.event.name == "betPlaced" for s in ob.pending(0, 10))


def test_seqs_are_never_reused_after_deletions(db: Path, clock: FakeClock) -> None:
    with Outbox.open(db, terminal_id="T1", clock=clock, retention_seconds=10) as ob:
        ob.commit([game(i) for i in range(3)], None)
        ob.ack(3)
        clock.now += 11
        assert ob.prune() == 3
        assert ob.rows == 0
    with Outbox.open(db, terminal_id="T1", clock=clock) as ob:
        assert ob.commit([game(9)], None)[0].seq == 4


def test_prune_keeps_unacked_and_recent_events(db: Path, clock: FakeClock) -> None:
    with Outbox.open(db, terminal_id="T1", clock=clock, retention_seconds=100) as ob:
        ob.commit([game(1), game(2)], None)
        clock.now += 50
        ob.commit([game(3)], None)
        ob.ack(3)
        clock.now += 60
        assert ob.prune() == 2  # only the two older than 100 s
        assert [s.seq for s in ob.tail(10)] == [3]
        ob.commit([game(4)], None)
        clock.now += 1000
        assert ob.prune() == 1
        assert [s.seq for s in ob.tail(10)] == [4]  # unacked: kept whatever its age


def test_disk_full_runs_the_cap_policy_then_raises_without_losing_the_batch(db: Path) -> None:
    pad = "y" * 1000
    with Outbox.open(db, terminal_id="T1") as ob:
        pages = ob._conn.execute("PRAGMA page_count").fetchone()[0]
        ob._conn.execute(f"PRAGMA max_page_count={pages + 30}")
        # Fill with unprotected events until the file is full: the policy drops the oldest
        # ones and records a dataGap instead of failing.
        gaps = []
        for i in range(400):
            for s in ob.commit([Event("gameStarted", TS, {"pad": pad, "i": i})], None):
                if s.event.name == "dataGap":
                    gaps.append(s)
        assert gaps, "the disk never filled up"
        assert gaps[0].event.data["reason"] == "outboxOverflow"
        assert ob.dropped_events == sum(g.event.data["dropped"] for g in gaps)
        # Now only protected events: once the unprotected ones are gone, the batch is refused.
        with pytest.raises(OutboxFullError):
            for i in range(400):
                ob.commit([Event("betPlaced", TS, {"pad": pad, "i": i})], None)
        last = ob.last_seq
        batch = [Event("betPlaced", TS, {"pad": pad, "i": i}) for i in range(2)]
        with pytest.raises(OutboxFullError):
            ob.commit(batch, {"after": "full"})
        assert ob.last_seq == last and ob.load_state() is None
        kept = ob.pending(0, 10_000)
        assert not [s for s in kept if s.event.name == "gameStarted"]
        # Acking makes room again: the same batch now goes through.
        ob.ack(last)
        stored = ob.commit(batch, {"after": "full"})
        assert [s.event.name for s in stored] == ["betPlaced", "betPlaced"]
        assert ob.load_state() == {"after": "full"}


def test_actions_are_idempotent_and_their_results_persist(db: Path, clock: FakeClock) -> None:
    with Outbox.open(db, terminal_id="T1", clock=clock, retention_seconds=100) as ob:
        assert ob.action_begin("a1", clock.now) is None
        running = ob.action_begin("a1", clock.now + 1)
        assert running is not None and running.result is None
        assert running.received_at == clock.now
        ob.action_finish("a1", {"status": "ok"})
        with pytest.raises(OutboxError, match="never begun"):
            ob.action_finish("zz", {"status": "ok"})
        assert ob.action_begin("a2", clock.now) is None
        ob.commit([Event("actionCompleted", TS, {"actionId": "a2"})], None,
                  finished_actions={"a2": {"status": "error", "error": "timeout"}})
    with Outbox.open(db, terminal_id="T1", clock=clock, retention_seconds=100) as ob:
        done = ob.action_begin("a1", clock.now + 5)
        assert done is not None and done.result == {"status": "ok"}
        rec = ob.action_get("a2")
        assert rec is not None and rec.result == {"status": "error", "error": "timeout"}
        assert ob.action_begin("a3", clock.now) is None  # the agent stops while it runs
    with Outbox.open(db, terminal_id="T1", clock=clock, retention_seconds=100) as ob:
        assert [a.action_id for a in ob.unfinished_actions()] == ["a3"]
        ob.action_finish("a3", {"status": "error", "error": "interrupted"})
        assert ob.unfinished_actions() == []
        clock.now += 50
        assert ob.action_begin("a4", clock.now) is None
        clock.now += 51
        ob.prune()
        assert ob.action_get("a1") is None and ob.action_get("a3") is None
        assert ob.action_get("a4") is not None  # younger than the retention


def test_a_file_from_a_newer_agent_is_refused(db: Path) -> None:
    Outbox.open(db, terminal_id="T1").close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(OutboxError, match="schema version 99, newer"):
        Outbox.open(db, terminal_id="T1")
    assert db.exists()  # refused, not moved aside


def test_reader_sees_commits_while_the_writer_is_open(db: Path) -> None:
    with Outbox.open(db, terminal_id="T1") as ob:
        ob.commit([game(1)], {"s": 1})
        with Outbox.open_reader(db) as reader:
            assert reader.last_seq == 1 and reader.terminal_id == "T1"
            ob.commit([game(2)], {"s": 2})
            ob.ack(1)
            assert [s.seq for s in reader.pending(0, 10)] == [2]
            assert reader.load_state() == {"s": 2}
            stats = reader.stats()
            assert (stats.last_seq, stats.acked_seq, stats.depth, stats.rows) == (2, 1, 1, 2)
            assert stats.db_bytes > 0
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                reader._conn.execute("DELETE FROM events")


def test_stats_interns_no_string(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's status loop calls stats() every 2 s, for months. A string interned there
    and dropped (pathlib interns every part of a path it parses) still takes a slot of the
    interpreter's table of interned strings until the table is resized: in the daemon, that
    table doubled after about half an hour, +0.5 MB at once (docs/performance.md)."""
    interned: list[str] = []
    real = sys.intern

    def counting(text: str) -> str:
        interned.append(text)
        return real(text)

    with Outbox.open(db, terminal_id="T1") as ob:
        ob.commit([game(1)], None)
        with Outbox.open_reader(db) as reader:
            monkeypatch.setattr(sys, "intern", counting)
            writer, read = ob.stats(), reader.stats()
            monkeypatch.undo()
    assert interned == []
    assert writer.wal_bytes > 0 and read.wal_bytes == writer.wal_bytes  # the -wal file's size


def test_reader_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="no outbox"):
        Outbox.open_reader(tmp_path / "nope.db")


def test_resync_moves_seqs_past_the_hub_after_a_reset(db: Path) -> None:
    with Outbox.open(db, terminal_id="T1") as ob:
        ob.commit([game(1), game(2)], None)  # a fresh file after a reset: seqs 1, 2
        assert ob.resync(2) is False
        assert ob.resync(500) is True
        assert [s.seq for s in ob.pending(0, 10)] == [501, 502]
        assert (ob.acked_seq, ob.last_seq) == (500, 502)
        assert ob.commit([game(3)], None)[0].seq == 503


def test_a_path_that_cannot_be_opened_is_an_error_not_a_recovery(tmp_path: Path) -> None:
    target = tmp_path / "a-directory"
    target.mkdir()
    with pytest.raises(OutboxError, match="cannot open outbox"):
        Outbox.open(target, terminal_id="T1")
    assert target.is_dir() and not list(tmp_path.glob("*.corrupt-*"))


def test_a_missing_directory_is_created_one_that_cannot_be_is_an_error(tmp_path: Path) -> None:
    """docs/outbox.md, "Damaged files": the outbox's directory is created with its parents;
    where it cannot be (a file stands in the way), opening is an error, not a recovery."""
    nested = tmp_path / "state" / "slot-agent" / "outbox.db"
    Outbox.open(nested, terminal_id="T1").close()
    assert nested.is_file()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OutboxError, match="cannot open outbox"):
        Outbox.open(tmp_path / "a-file" / "outbox.db", terminal_id="T1")
