"""Floor-scale ingest: the batches of many terminals share transactions; memory is bounded.

Functional checks only (no rates asserted; bench/hub_load.py measures): batches that arrive
while a transaction commits go into the next one together, every terminal gets its ack only
after that commit, and a terminal over its in-flight limit is no longer read from (its
messages wait in the network, then in its own window) instead of being dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

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
