"""Cursors and ``subscribe`` with ``from``: the stored events, then live, no gap, no duplicate."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from api import wire
from hub.audit import AuditQuery
from tests.support.hub import HubHarness, event_frame, publish_all
from tests.support.waits import wait_for


async def _publish(term: Any, first: int, count: int, terminal: str = "T1") -> None:
    await publish_all(term, [event_frame(terminal, seq) for seq in range(first, first + count)])


async def test_every_event_frame_carries_an_increasing_cursor(harness: HubHarness) -> None:
    viewer, _ = await harness.client("tok-carol", subscribe={})
    term, _ = await harness.terminal("T1")
    await _publish(term, 1, 5)
    frames = [await viewer.recv_type("event") for _ in range(6)]  # deviceOnline + 5
    cursors = [f["cursor"] for f in frames]
    assert cursors == sorted(cursors) and len(set(cursors)) == 6
    _, snap = await harness.client("tok-carol")
    assert [f["cursor"] for f in snap["recent"]] == sorted(cursors, reverse=True)


async def test_a_client_resumes_from_its_last_cursor_with_no_gap(harness: HubHarness) -> None:
    """Away for 30 events, the client gets exactly them back, then the live stream."""
    viewer, _ = await harness.client("tok-carol", subscribe={"channels": ["game"]})
    term, _ = await harness.terminal("T1")
    await _publish(term, 1, 10)
    seen = [await viewer.recv_type("event") for _ in range(10)]
    last = seen[-1]["cursor"]
    await viewer.close()
    await _publish(term, 11, 30)  # while it is away
    back, _ = await harness.client("tok-carol")
    await back.send(wire.subscribe(channels=["game"], start=last, request_id="r"))
    assert (await back.recv_type("subscribed"))["id"] == "r"
    msg, replayed = await back.recv_until(lambda m: m["type"] == "replayed")
    assert [f["seq"] for f in replayed] == list(range(11, 41))
    assert msg["count"] == 30 and msg["cursor"] == replayed[-1]["cursor"] and msg["id"] == "r"
    await _publish(term, 41, 3)
    live = [await back.recv_type("event") for _ in range(3)]
    assert [f["seq"] for f in live] == [41, 42, 43]


async def test_replay_while_events_keep_arriving_has_no_gap_and_no_duplicate(
    harness: HubHarness,
) -> None:
    """A terminal publishes without pause while a client replays 1,500 events from 0 in
    pages; every seq arrives exactly once, in order (the switch to live is seamless)."""
    term, _ = await harness.terminal("T1")
    await _publish(term, 1, 1500)
    client, _ = await harness.client("tok-carol")

    async def keep_publishing() -> None:
        await _publish(term, 1501, 400)

    publisher = asyncio.create_task(keep_publishing())
    await client.send(wire.subscribe(channels=["game"], start=0))
    got: list[int] = []
    cursors: list[int] = []
    async with asyncio.timeout(30):
        while len(got) < 1900:
            msg = await client.recv(10)
            if msg["type"] == "event":
                got.append(msg["seq"])
                cursors.append(msg["cursor"])
    await publisher
    assert got == list(range(1, 1901))
    assert cursors == sorted(set(cursors))
    await client.sync()  # and nothing more came


async def test_resume_from_a_time_and_filters_apply_to_the_replay(
    harness: HubHarness,
) -> None:
    hub = harness.hub
    assert hub is not None
    t1, _ = await harness.terminal("T1")
    t2, _ = await harness.terminal("T2")
    await _publish(t1, 1, 3)
    await _publish(t2, 1, 3, "T2")
    # ``from`` has millisecond precision: a boundary after everything received so far.
    boundary = wire.format_timestamp(time.time() + 0.002)
    await wait_for(lambda: hub.clock() > wire.parse_timestamp(boundary) + 0.001)
    await _publish(t1, 4, 2)
    await _publish(t2, 4, 2, "T2")
    client, _ = await harness.client("tok-carol")
    await client.send(wire.subscribe(terminals=["T2"], channels=["game"],
                                     start=boundary))
    _, replayed = await client.recv_until(lambda m: m["type"] == "replayed")
    events = [m for m in replayed if m["type"] == "event"]
    assert [(f["terminalId"], f["seq"]) for f in events] == [("T2", 4), ("T2", 5)]


async def test_resume_after_a_hub_restart_and_bad_from_values(harness: HubHarness) -> None:
    term, _ = await harness.terminal("T1")
    await _publish(term, 1, 4)
    await term.close()
    await harness.restart()
    client, _ = await harness.client("tok-carol")
    await client.send(wire.subscribe(channels=["game"], start=0))
    _, replayed = await client.recv_until(lambda m: m["type"] == "replayed")
    assert [m["seq"] for m in replayed if m["type"] == "event"] == [1, 2, 3, 4]
    await client.send_raw(wire.encode({"type": "subscribe", "from": -1}))
    assert (await client.recv_type("error"))["code"] == "bad_message"
    await client.send_raw(wire.encode({"type": "subscribe", "from": "yesterday"}))
    assert (await client.recv_type("error"))["code"] == "bad_message"
    await client.send_raw(wire.encode({"type": "unsubscribe", "from": 3}))
    assert (await client.recv_type("error"))["code"] == "bad_message"


async def test_a_database_of_an_older_hub_gains_the_audit_table_and_keeps_its_cursors(
    harness: HubHarness,
) -> None:
    """Additive migration: the events table is unchanged (its row id is the cursor); the
    audit table is created at start when missing."""
    term, _ = await harness.terminal("T1")
    await _publish(term, 1, 3)
    await term.close()
    hub = harness.hub
    assert hub is not None
    await hub.stop()
    db = sqlite3.connect(harness.config.database)
    db.execute("DROP TABLE audit")  # as an older hub left it
    old = [row[0] for row in db.execute("SELECT n FROM events ORDER BY n")]
    db.commit()
    db.close()
    await harness.start()
    client, _ = await harness.client("tok-alice")
    await client.send(wire.subscribe(start=0))
    _, replayed = await client.recv_until(lambda m: m["type"] == "replayed")
    assert [m["cursor"] for m in replayed if m["type"] == "event"][:len(old)] == old
    hub = harness.hub
    assert hub is not None
    entries, _ = hub.audit.query(AuditQuery(kinds=["login"]))
    assert [e["who"] for e in entries] == ["alice"]


async def test_a_cursor_beyond_the_store_resumes_from_the_newest_event(
    harness: HubHarness,
) -> None:
    """A client's cursor from before the hub's database was replaced is above anything
    stored: the replay goes live at the newest cursor and says so (``replayed.cursor``), and
    the live events follow (they were all taken for replayed ones, up to that cursor)."""
    viewer, _ = await harness.client("tok-carol", subscribe={"channels": ["game"]})
    term, _ = await harness.terminal("T1")
    await _publish(term, 1, 3)
    newest = [await viewer.recv_type("event") for _ in range(3)][-1]["cursor"]
    client, _ = await harness.client("tok-view")
    await client.send(wire.subscribe(channels=["game"], start=newest + 1_000_000,
                                     request_id="r"))
    done = await client.recv_type("replayed")
    assert (done["count"], done["cursor"]) == (0, newest), done
    await _publish(term, 4, 2)
    live = [await client.recv_type("event") for _ in range(2)]
    assert [f["seq"] for f in live] == [4, 5]
    assert all(f["cursor"] > newest for f in live)


async def test_unsubscribing_a_replaying_filter_ends_its_replay(tmp_path: Path) -> None:
    """An ``unsubscribe`` during a long replay stops it (it went on to the last page, for a
    filter the client no longer had) and no ``replayed`` follows (protocol.md §5)."""
    async with HubHarness(tmp_path, client_queue=50) as harness:
        term, _ = await harness.terminal("T1")
        await _publish(term, 1, 1000)
        client, _ = await harness.client("tok-carol")
        await client.send(wire.subscribe(channels=["game"], start=0, request_id="r"))
        await client.send(wire.subscribe(channels=["game"], unsubscribe=True))
        got = await client.sync(timeout=10)
        got += await client.sync(timeout=10)  # and nothing trickles in after
        events = [m for m in got if m["type"] == "event"]
        assert [m for m in got if m["type"] == "replayed"] == [], (len(events), got[-3:])
        assert 0 < len(events) < 1000
