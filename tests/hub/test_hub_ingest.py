"""Group commit: a burst from a terminal is stored in few transactions and acked cumulatively.

Functional checks only (no rates asserted): every event of a large burst is stored once,
fanned out once and in order, each ``ack`` covers only events already committed, replies keep
the order of the messages they answer, and a failed commit never lets an ack pass the gap.
"""

from __future__ import annotations

import pytest

from api import wire
from hub.store import EventWrite
from tests.support.hub import HubHarness, event_frame

BURST = 10_000


async def test_a_burst_is_stored_once_fanned_out_in_order_and_acked_after_commit(
    harness: HubHarness,
) -> None:
    hub = harness.hub
    assert hub is not None
    viewer, _ = await harness.client("tok-carol", subscribe={"channels": ["game"]})
    term, _ = await harness.terminal("T1")
    frames = [wire.encode(event_frame("T1", seq)) for seq in range(1, BURST + 1)]
    for text in frames:  # pipelined, as an agent drains its backlog
        await term.send_raw(text)
    acks: list[int] = []
    while not acks or acks[-1] < BURST:
        msg = await term.recv(timeout=30)
        assert msg["type"] == "ack", msg
        # The ack promises the events are committed: the store already holds them all.
        assert hub.store.acked_seq("T1") >= msg["upTo"]
        acks.append(msg["upTo"])
    assert acks == sorted(set(acks)), "cumulative acks only go up"
    assert len(acks) < BURST, "a burst is committed in batches, not one event at a time"
    stored = [e["seq"] for e in hub.store.events("T1") if e["event"] == "betPlaced"]
    assert stored == list(range(1, BURST + 1))
    seen: list[int] = []
    while len(seen) < BURST:
        msg = await viewer.recv(timeout=30)
        if msg["type"] == "event":
            seen.append(msg["seq"])
    assert seen == list(range(1, BURST + 1))
    assert hub.stats.events_stored >= BURST and hub.stats.duplicates == 0


async def test_a_resent_burst_is_acked_but_not_stored_or_forwarded_again(
    harness: HubHarness,
) -> None:
    hub = harness.hub
    assert hub is not None
    term, _ = await harness.terminal("T1")
    for seq in range(1, 301):
        await term.send(event_frame("T1", seq))
    await term.recv_until(lambda m: m.get("upTo") == 300, timeout=10)
    viewer, _ = await harness.client("tok-carol", subscribe={"channels": ["game"]})
    for seq in range(1, 302):  # the whole backlog again, plus one new event
        await term.send(event_frame("T1", seq))
    await term.recv_until(lambda m: m.get("upTo") == 301, timeout=10)
    forwarded = [m["seq"] for m in await viewer.sync() if m["type"] == "event"]
    assert forwarded == [301]
    assert hub.stats.duplicates == 300
    assert len([e for e in hub.store.events("T1") if e["event"] == "betPlaced"]) == 301


async def test_replies_keep_the_order_of_the_messages_in_a_burst(harness: HubHarness) -> None:
    term, _ = await harness.terminal("T1")
    for seq in range(1, 6):
        await term.send(event_frame("T1", seq))
    await term.send(wire.ping("mid"))
    await term.send_raw("{broken")
    for seq in range(6, 11):
        await term.send(event_frame("T1", seq))
    last, before = await term.recv_until(lambda m: m.get("upTo") == 10)
    replies = [*before, last]
    kinds = [m["type"] for m in replies]
    pong = kinds.index("pong")
    error = kinds.index("error")
    assert pong < error and replies[pong]["id"] == "mid" and replies[error]["code"] == "bad_json"
    # Events before the ping are acked before the pong; none after it is acked before it.
    acks_before: list[int] = [m["upTo"] for m in replies[:pong] if m["type"] == "ack"]
    acks_after: list[int] = [m["upTo"] for m in replies[error:] if m["type"] == "ack"]
    assert acks_before and acks_before[-1] == 5 and max(acks_before) == 5
    assert acks_after and min(acks_after) >= 6


async def test_a_failed_commit_gets_internal_and_the_ack_never_passes_it(
    harness: HubHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = harness.hub
    assert hub is not None
    term, _ = await harness.terminal("T1")
    await term.send(event_frame("T1", 1))
    assert await term.recv() == {"type": "ack", "upTo": 1}
    real = hub.store.write_events

    async def failing(writes: list[EventWrite], received_at: float) -> list[bool]:
        if any(w.source == "T1" and w.frame["seq"] == 2 for w in writes):
            raise OSError("disk full")
        return await real(writes, received_at)

    monkeypatch.setattr(hub.store, "write_events", failing)
    for seq in range(2, 6):
        await term.send(event_frame("T1", seq))
    assert await term.closed() == 1011  # internal error: resend from ackedSeq
    received = [m for m in harness.traffic.frames if m["type"] in ("error", "ack")]
    errors = [m for m in received if m["type"] == "error"]
    assert [(e["code"], e["id"]) for e in errors] == [("internal", "T1-2")]
    assert max(m["upTo"] for m in received if m["type"] == "ack") == 1
    monkeypatch.setattr(hub.store, "write_events", real)
    term2, welcome = await harness.terminal("T1", last_seq=5)
    assert welcome["ackedSeq"] == 1
    for seq in range(2, 6):
        await term2.send(event_frame("T1", seq))
    await term2.recv_until(lambda m: m.get("upTo") == 5)
    stored = [e["seq"] for e in hub.store.events("T1") if e["event"] == "betPlaced"]
    assert stored == [1, 2, 3, 4, 5]


async def test_no_compression_is_negotiated_even_when_a_peer_offers_it(
    harness: HubHarness,
) -> None:
    """permessage-deflate is never accepted (docs/protocol.md §1): per-frame CPU, once per
    peer, is what bounds the event rate. The websockets client offers it by default."""
    term, _ = await harness.terminal("T1")
    viewer, _ = await harness.client("tok-carol")
    for peer in (term, viewer):
        assert peer.ws.request is not None and peer.ws.response is not None
        assert "permessage-deflate" in peer.ws.request.headers["Sec-WebSocket-Extensions"]
        assert "Sec-WebSocket-Extensions" not in peer.ws.response.headers
    await term.send(event_frame("T1", 1))
    assert (await term.recv_type("ack"))["upTo"] == 1


async def test_unknown_fields_of_an_event_are_neither_stored_nor_forwarded(
    harness: HubHarness,
) -> None:
    hub = harness.hub
    assert hub is not None
    viewer, _ = await harness.client("tok-carol", subscribe={"channels": ["game"]})
    term, _ = await harness.terminal("T1")
    plain, extra = event_frame("T1", 1), event_frame("T1", 2)
    await term.send(plain)
    await term.send_raw(wire.encode(extra | {"fromTheFuture": {"x": 1}}))
    while (await term.recv_type("ack"))["upTo"] < 2:
        pass
    assert [e for e in hub.store.events("T1") if e["event"] == "betPlaced"] == [plain, extra]
    forwarded = [await viewer.recv_type("event") for _ in range(2)]
    # As sent, plus the hub's cursor (protocol.md §3), and without the unknown field.
    assert [{k: v for k, v in f.items() if k != "cursor"} for f in forwarded] == [plain, extra]
    assert forwarded[0]["cursor"] < forwarded[1]["cursor"]


async def test_amounts_out_of_range_are_refused_and_snapshots_keep_working(
    harness: HubHarness,
) -> None:
    """An amount beyond 64 bits (or one that reads as infinity) used to be stored and then
    break every snapshot's per-minute sums; it is refused at the door."""
    term, _ = await harness.terminal("T1")
    await term.send(event_frame("T1", 1, data={"amount": 2**63}))
    refused = await term.recv(timeout=10)
    assert refused["type"] == "error" and refused["code"] == "bad_message", refused
    await term.send_raw('{"type":"event","id":"T1-1","seq":1,"channel":"game",'
                        '"terminalId":"T1","event":"betPlaced",'
                        '"timestamp":"2026-05-11T11:10:40.300Z","data":{"amount":1e400}}')
    refused = await term.recv(timeout=10)
    assert refused["type"] == "error" and refused["code"] == "bad_json", refused
    for seq in (1, 2):
        await term.send(event_frame("T1", seq, data={"amount": wire.MAX_AMOUNT_CENTS}))
    await term.recv_until(lambda m: m.get("upTo") == 2, timeout=10)
    _, snapshot = await harness.client("tok-carol")
    assert snapshot["type"] == "snapshot"
    assert sum(p["amount"] for p in snapshot["coinInPerMinute"]) == 2 * wire.MAX_AMOUNT_CENTS


async def test_a_skipped_seq_that_arrives_late_is_stored_and_the_ack_stays(
    harness: HubHarness,
) -> None:
    """protocol.md §4 ``event``: the hub does not wait for a skipped seq; if it comes after
    all (a terminal out of order), it is stored and forwarded like any other, and ``upTo``
    does not go down. A cursor the terminal sends is dropped (§3)."""
    hub = harness.hub
    assert hub is not None
    viewer, _ = await harness.client("tok-carol", subscribe={"channels": ["game"]})
    term, _ = await harness.terminal("T1")
    await term.send_raw(wire.encode(event_frame("T1", 1) | {"cursor": 999}))
    await term.send(event_frame("T1", 3))
    while (await term.recv_type("ack"))["upTo"] < 3:
        pass
    await term.send(event_frame("T1", 2))
    assert (await term.recv_type("ack"))["upTo"] == 3
    assert harness.seqs("T1") == [1, 3, 2]
    forwarded = [await viewer.recv_type("event") for _ in range(3)]
    assert [f["seq"] for f in forwarded] == [1, 3, 2]
    assert forwarded[0]["cursor"] != 999 and "cursor" not in hub.store.events("T1")[0]
