"""Floor-scale ingest: the batches of many terminals share transactions; memory is bounded.

Functional checks only (no rates asserted; bench/hub_load.py measures): batches that arrive
while a transaction commits go into the next one together, every terminal gets its ack only
after that commit, and a terminal over its in-flight limit is no longer read from (its
messages wait in the network, then in its own window) instead of being dropped.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from api import wire
from hub.ingest import MIN_SHARE, InflightGate
from hub.server import Hub
from hub.store import EventWrite
from tests.support.hub import HubHarness, Peer, Traffic, event_frame
from tests.support.tokens import Token
from tests.support.waits import wait_for

TERMINALS = [f"F{i:02d}" for i in range(12)]


class _HeldStore:
    """Wraps ``write_events``: records each transaction's sources; holds while ``gate`` is
    clear (as a slow disk would)."""

    def __init__(self, hub: Hub) -> None:
        self.real = hub.store.write_events
        self.gate = asyncio.Event()
        self.calls: list[set[str]] = []
        self.started = 0

    async def __call__(self, writes: Sequence[EventWrite], received_at: float) -> list[bool]:
        self.started += 1
        await self.gate.wait()
        self.calls.append({w.source for w in writes})
        return await self.real(writes, received_at)


@pytest.fixture
async def floor(tmp_path: Path, traffic: Traffic) -> AsyncIterator[HubHarness]:
    tokens = [Token(f"tok-{t}", "terminal", t) for t in TERMINALS]
    async with HubHarness(tmp_path, traffic, tokens=[*tokens, Token("tok-view", "viewer", "wall")],
                          max_inflight_per_terminal=20, max_inflight_events=40) as h:
        yield h


async def _terminal(h: HubHarness, tid: str) -> Peer:
    peer = await h.connect("/ws/terminal", f"tok-{tid}")
    await peer.send(wire.hello(tid, "test", 0))
    assert (await peer.recv())["type"] == "welcome"
    return peer


async def test_bursts_of_many_terminals_share_transactions_and_are_all_acked(
    floor: HubHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    hub = floor.hub
    assert hub is not None
    caplog.set_level(logging.WARNING, logger="hub")
    peers = [await _terminal(floor, t) for t in TERMINALS]
    viewer = await floor.connect("/ws/client", "tok-view")
    await viewer.recv_type("snapshot")
    await viewer.send(wire.subscribe(channels=["game"]))
    await viewer.recv_type("subscribed")
    await wait_for(lambda: hub.ingest.queued == 0 and hub.gate.held == 0)
    held = _HeldStore(hub)
    monkeypatch.setattr(hub.store, "write_events", held)
    await peers[0].send(event_frame(TERMINALS[0], 1))  # its commit is held by the "disk"
    await wait_for(lambda: held.started == 1)
    for peer, tid in zip(peers[1:], TERMINALS[1:], strict=True):
        for seq in range(1, 6):
            await peer.send(event_frame(tid, seq))
    # Every other terminal's burst waits for the next transaction, none acked meanwhile.
    await wait_for(lambda: hub.ingest.queued == len(TERMINALS) - 1)
    held.gate.set()
    assert (await peers[0].recv_type("ack"))["upTo"] == 1
    for peer in peers[1:]:
        assert (await peer.recv_type("ack"))["upTo"] == 5
    assert held.calls[0] == {TERMINALS[0]}
    assert held.calls[1] == set(TERMINALS[1:]), "one transaction for all the waiting bursts"
    assert hub.ingest.stats.largest_group == len(TERMINALS) - 1
    for tid in TERMINALS[1:]:
        assert [e["seq"] for e in hub.store.events(tid) if e["event"] == "betPlaced"] \
            == [1, 2, 3, 4, 5]
    # Fan-out follows storage order, each terminal's events in seq order.
    got: dict[str, list[int]] = {}
    while sum(len(v) for v in got.values()) < 1 + 5 * (len(TERMINALS) - 1):
        msg = await viewer.recv_type("event")
        got.setdefault(msg["terminalId"], []).append(msg["seq"])
    assert all(seqs == sorted(seqs) for seqs in got.values())
    assert not [r for r in caplog.records if "never arrived" in r.getMessage()]


async def test_a_terminal_over_its_in_flight_limit_is_held_back_not_dropped(
    floor: HubHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = floor.hub
    assert hub is not None
    tid = TERMINALS[0]
    peer = await _terminal(floor, tid)
    await wait_for(lambda: hub.ingest.queued == 0 and hub.gate.held == 0)
    held = _HeldStore(hub)
    monkeypatch.setattr(hub.store, "write_events", held)
    total = 300
    sent = 0

    async def send_all() -> None:
        nonlocal sent
        for seq in range(1, total + 1):  # far more than the 20 it may have in flight
            await peer.send(event_frame(tid, seq))
            sent = seq

    # The hub stops reading: the sender may itself block once the socket buffers are full
    # (that is the backpressure reaching the terminal), so it sends in a task.
    sender = asyncio.create_task(send_all())
    await wait_for(lambda: sent >= 100 and hub.gate.held > 0)
    # The terminal is far ahead of what the hub has read: the rest waits in the network.
    assert hub.gate.peak <= 20 and hub.gate.held <= 20
    assert peer.ws.close_code is None, "back-pressured, not dropped"
    held.gate.set()
    await asyncio.wait_for(sender, 30)
    last, before = await peer.recv_until(lambda m: m.get("upTo") == total, timeout=30)
    assert all(m["type"] == "ack" for m in [*before, last])
    assert [e["seq"] for e in hub.store.events(tid) if e["event"] == "betPlaced"] \
        == list(range(1, total + 1))
    assert hub.gate.peak <= 20
    await wait_for(lambda: hub.gate.held == 0)


async def test_the_hub_wide_limit_is_shared_and_every_terminal_gets_through(
    floor: HubHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = floor.hub
    assert hub is not None
    peers = [await _terminal(floor, t) for t in TERMINALS]
    await wait_for(lambda: hub.ingest.queued == 0 and hub.gate.held == 0)
    held = _HeldStore(hub)
    monkeypatch.setattr(hub.store, "write_events", held)
    async def send_all(peer: Peer, tid: str) -> None:
        for seq in range(1, 51):
            await peer.send(event_frame(tid, seq))

    senders = asyncio.gather(*(send_all(p, t) for p, t in zip(peers, TERMINALS, strict=True)))
    await wait_for(lambda: hub.gate.held >= 40)
    # 40 hub-wide, and each of the 12 may always hold its fair share (at least 8).
    assert hub.gate.peak <= 40 + 8 * len(TERMINALS)
    held.gate.set()
    await asyncio.wait_for(senders, 30)
    for peer in peers:
        await peer.recv_until(lambda m: m.get("upTo") == 50, timeout=30)
    await wait_for(lambda: hub.gate.held == 0)


async def test_the_gate_blocks_a_connection_at_its_share_and_wakes_it_on_release() -> None:
    gate = InflightGate(total=40, per_connection=20)
    a, b = gate.join(), gate.join()
    assert gate.allowance(a) == 20
    gate.take(a, 20)
    assert gate.allowance(a) == 0 and gate.allowance(b) == 20
    waiting = asyncio.create_task(gate.wait_for_room(a))
    await asyncio.sleep(0)  # let it find no room (a bounded step, not a wait for time)
    assert not waiting.done() and gate.waits == 1
    gate.take(b, 20)  # the hub-wide limit is reached: b is at its share too
    assert gate.allowance(b) == 0
    gate.release(a, 5)
    await asyncio.wait_for(waiting, 5)
    assert gate.allowance(a) == 5
    gate.leave(b)
    assert gate.held == 15 and gate.allowance(a) == 5  # per connection: 20
    many = [gate.join() for _ in range(10)]  # fair share 40 / 11 -> 8 (MIN_SHARE)
    gate.take(a, 5)
    gate.take(many[0], 20)  # over the hub-wide 40 now
    assert gate.allowance(many[1]) == MIN_SHARE  # a quiet one still gets its share
    assert gate.allowance(many[0]) == 0


@pytest.fixture
async def small_queues(tmp_path: Path, traffic: Traffic) -> AsyncIterator[HubHarness]:
    h = HubHarness(tmp_path, traffic)
    tokens = tmp_path / "floor-tokens"
    tokens.write_text("".join(f"tok-{t} terminal {t}\n" for t in TERMINALS)
                      + "tok-wall viewer wall\ntok-pit viewer pit\ntok-slow viewer slow\n")
    await h.start(tokens=tokens, client_queue=16, max_frame_bytes=1 << 20,
                  max_message_bytes=512 * 1024)
    try:
        yield h
    finally:
        await h.close()


async def _viewer(h: HubHarness, token: str, **subscribe: Any) -> Peer:
    peer = await h.connect("/ws/client", token, max_size=None)
    await peer.recv_type("snapshot")
    await peer.send(wire.subscribe(**subscribe))
    await peer.recv_type("subscribed")
    return peer


async def test_a_group_is_fanned_out_once_each_event_acked_once_and_a_slow_viewer_dropped(
    small_queues: HubHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Groups of many terminals' bursts (hub/fanout.py): every event acknowledged exactly
    once (cumulative acks strictly rising to the last seq), every viewer gets its events in
    storage order, and a viewer that stops reading is dropped (4001) while the others go on
    receiving everything."""
    h = small_queues
    hub = h.hub
    assert hub is not None
    peers = [await _terminal(h, t) for t in TERMINALS]
    wall = await _viewer(h, "tok-wall")  # everything
    pit = await _viewer(h, "tok-pit", terminals=[TERMINALS[3]])
    # A viewer that stops reading: its library takes 1 frame, then the TCP buffers fill.
    slow = await h.connect("/ws/client", "tok-slow", max_queue=1, max_size=None)
    await slow.send(wire.subscribe())
    await wait_for(lambda: hub.ingest.queued == 0 and hub.gate.held == 0)
    seen: dict[str, list[tuple[str, int, int]]] = {"wall": [], "pit": []}

    async def read(name: str, peer: Peer) -> None:
        while True:
            msg = await peer.recv(timeout=30)
            if msg["type"] == "event" and msg["event"] == "betPlaced":
                seen[name].append((msg["terminalId"], msg["seq"], msg["cursor"]))

    readers = [asyncio.create_task(read("wall", wall)), asyncio.create_task(read("pit", pit))]
    acks: dict[str, list[int]] = {t: [] for t in TERMINALS}

    async def acked_to(peer: Peer, tid: str, upto: int) -> None:
        while not acks[tid] or acks[tid][-1] < upto:
            acks[tid].append((await peer.recv_type("ack", timeout=30))["upTo"])

    blob = base64.b64encode(os.urandom(15_000)).decode()
    burst, rounds = 3, 0
    try:
        while hub.stats.slow_consumers_dropped == 0:
            rounds += 1
            assert rounds <= 60, "the viewer that does not read was never dropped"
            held = _HeldStore(hub)
            monkeypatch.setattr(hub.store, "write_events", held)
            for peer, tid in zip(peers, TERMINALS, strict=True):
                for k in range(burst):
                    seq = (rounds - 1) * burst + k + 1
                    await peer.send(event_frame(tid, seq, data={"amount": 1, "blob": blob}))
            await wait_for(lambda store=held: store.started >= 1)  # type: ignore[misc]
            held.gate.set()
            await asyncio.gather(*(acked_to(p, t, rounds * burst)
                                   for p, t in zip(peers, TERMINALS, strict=True)))
        assert await slow.closed(timeout=10) == 4001
        total = rounds * burst
        await wait_for(lambda: len(seen["wall"]) == total * len(TERMINALS), timeout=30)
        await wait_for(lambda: len(seen["pit"]) == total, timeout=30)
    finally:
        for r in readers:
            r.cancel()
    for tid in TERMINALS:
        ups = acks[tid]
        assert ups == sorted(set(ups)) and ups[-1] == total, (tid, ups)  # each seq acked once
        stored = [e["seq"] for e in hub.store.events(tid) if e["event"] == "betPlaced"]
        assert sorted(stored) == list(range(1, total + 1))
    cursors = [c for _, _, c in seen["wall"]]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)
    for tid in TERMINALS:
        assert [s for t, s, _ in seen["wall"] if t == tid] == list(range(1, total + 1))
    assert [(t, s) for t, s, _ in seen["pit"]] == [(TERMINALS[3], s)
                                                    for s in range(1, total + 1)]
    assert hub.stats.slow_consumers_dropped == 1
