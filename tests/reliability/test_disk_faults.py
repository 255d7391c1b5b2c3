"""Disk faults: the outbox database full (SQLite page limit) and the outbox damaged at start.

What must hold: the agent keeps polling the machine, raises an ``outboxFault`` alert,
recovers without losing money, and nothing crashes in a loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.store.outbox import Outbox
from tests.reliability.agent_rig import AgentRig
from tests.reliability.reliability_kit import LONG, long_or_short
from tests.reliability.system_rig import AgentProc, EmulatorProc, HubProc
from tests.support.waits import wait_until

pytestmark = pytest.mark.timeout(600 if LONG else 90)

FULL_CYCLES = long_or_short(3000, 300)


def set_page_limit(outbox: Outbox, pages: int | None) -> int:
    """Cap the outbox file at ``pages`` (None: lift the cap); returns the pages in use.

    SQLite's ``max_page_count`` is a property of the connection, and the outbox has no
    public knob for it, so this reaches its writer connection under its own lock: the same
    "database or disk is full" the outbox sees when the disk itself fills up.
    """
    with outbox._lock:
        conn = outbox._conn
        used = int(conn.execute("PRAGMA page_count").fetchone()[0])
        conn.execute(f"PRAGMA max_page_count={pages if pages is not None else 2**31 - 2}")
    return used


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[AgentRig]:
    with AgentRig.ready(tmp_path, seed=9) as r:
        yield r


def test_outbox_full_keeps_polling_alerts_and_recovers_without_losing_money(
        rig: AgentRig) -> None:
    rig.cycles(40, play=True)
    used = set_page_limit(rig.outbox, None)
    set_page_limit(rig.outbox, used)  # the disk is full from now on
    last_seq = rig.outbox.last_seq
    cycles = rig.line.cycles
    rig.cycles(FULL_CYCLES, play=True)  # play goes on; the line must keep polling
    assert rig.line.running and rig.pipeline.running
    assert rig.line.cycles >= cycles + FULL_CYCLES
    full_error = rig.pipeline.last_error
    assert full_error is not None and "full" in full_error, full_error
    stuck = rig.outbox.last_seq
    # Space comes back (an operator freed the disk): everything held is committed.
    set_page_limit(rig.outbox, None)
    rig.cycles(60, play=True)
    rig.settle_money()
    faults = [e for e in rig.events("outboxFault") if e.seq > last_seq]
    assert [f.event.data["reason"] for f in faults] == ["full"], faults
    assert set(faults[0].event.data) == {"reason", "detail", "pendingEvents"}  # docs/events.md
    # Only unprotected events may have been dropped to make room; each drop is announced.
    for gap in rig.events("dataGap"):
        dropped = set(gap.event.data.get("events", {}))
        assert not dropped & {"betPlaced", "winPaid", "billAccepted", "cashout",
                              "ticketPrinted", "ticketRedeemed"}, gap
    assert rig.outbox.last_seq > stuck


def corrupt_garbage(path: Path) -> bytes:
    data = b"this is not an SQLite database\n" * 200
    path.write_bytes(data)
    return data


def corrupt_pages(path: Path) -> bytes:
    """A real outbox with events, then two pages in the middle overwritten."""
    with Outbox.open(path, terminal_id="EGM-R1") as box:
        from api.events import Event, utc_timestamp
        for _ in range(20):
            box.commit([Event("gameStarted", utc_timestamp(0), {"gameNumber": 1,
                                                               "pad": "x" * 300})] * 50, None)
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page:5 * page] = b"\xde\xad\xbe\xef" * (page // 2)
    path.write_bytes(bytes(data))
    with pytest.raises(sqlite3.DatabaseError):  # really damaged
        conn = sqlite3.connect(path)
        try:
            result = conn.execute("PRAGMA quick_check").fetchall()
            if result != [("ok",)]:
                raise sqlite3.DatabaseError(str(result[:2]))
        finally:
            conn.close()
    return bytes(data)


@pytest.mark.parametrize("damage", [corrupt_garbage, corrupt_pages], ids=["garbage", "pages"])
def test_damaged_outbox_at_start_is_moved_aside_and_the_agent_runs_on(
        tmp_path: Path, damage: object) -> None:
    hub = HubProc(tmp_path)
    emulator = EmulatorProc(tmp_path, steps=[{"autoplay": "forever"}], seed=3,
                            games_per_minute=300)
    agent = AgentProc(tmp_path, serial_url=emulator.url, hub=hub)
    original = damage(agent.outbox)  # type: ignore[operator]
    try:
        proc = agent.start()
        wait_until(lambda: any(e["event"] == "outboxFault" for e in hub.events()), 30,
                   lambda: f"an outboxFault at the hub; agent stderr {proc.err_lines[-3:]}")
        fault = next(e for e in hub.events() if e["event"] == "outboxFault")
        assert fault["data"]["reason"] == "corrupt"
        moved = Path(fault["data"]["movedTo"])
        assert moved.read_bytes()[:len(original)] == original, "the damaged file was altered"
        # The agent polls on and streams: play reaches the hub, the process never restarted.
        wait_until(lambda: any(e["event"] == "betPlaced" for e in hub.events()), 30,
                   "play reaching the hub after the recovery")
        assert agent.alive() and agent.proc is proc
        # A restart finds a healthy outbox: no second fault, the seqs continue.
        assert agent.stop() == 0
        last = agent.last_seq()
        agent.start()
        wait_until(lambda: any(e["event"] == "agentStarted" and e["seq"] > last
                               for e in hub.events()), 30, "the second run at the hub")
        assert [e["event"] for e in hub.events()].count("outboxFault") == 1
        ids = [e["id"] for e in hub.events()]
        assert len(ids) == len(set(ids))
    finally:
        agent.kill()
        emulator.proc.kill()
        hub.stop()
