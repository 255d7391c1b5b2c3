"""The uplink against a hub written from docs/protocol.md §4 alone (not hub/), as an
independent team would write one, including a hub that misbehaves: it lies in ``welcome`` or
``ack``, sends garbage, never welcomes, closes mid-burst with every documented code. Whatever
it does, no event is lost from the hub's point of view once it behaves again, and none is
marked acknowledged in the outbox that the hub was not sent (docs/uplink.md, docs/outbox.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from agent.store.outbox import Outbox
from agent.uplink.actions import Actions
from agent.uplink.client import Uplink
from api import wire
from api.events import Event
from api.signing import sign_action
from tests.agent.uplink_kit import (
    TERMINAL,
    TERMINAL_TOKEN,
    FakeLine,
    bet,
    make_uplink,
    open_outbox,
    running,
    uplink_config,
)
from tests.support.waits import wait_for

WELCOME_TIME = "2026-01-01T00:00:00.000Z"


class DocHub:
    """A ``/ws/terminal`` endpoint from the docs: ``hello`` → ``welcome {ackedSeq}``, events
    stored by seq (a repeat is a duplicate), cumulative ``ack``. ``session`` scripts each
    connection (its index, and this hub); the default welcomes and acks every event."""

    def __init__(self, session: Callable[[DocHub, ServerConnection, int],
                                         Awaitable[None]] | None = None) -> None:
        self.session = session or DocHub.serve_normally
        self.stored: dict[int, dict[str, Any]] = {}
        self.acked = 0  # what this hub holds with nothing missing below (welcome's ackedSeq)
        self.received: list[list[int]] = []  # event seqs, per connection
        self.welcomed: list[int] = []  # the ackedSeq each connection's welcome carried
        self.hellos: list[dict[str, Any]] = []
        self.others: list[dict[str, Any]] = []  # what else the terminal sent
        self.url = ""
        self.ws: ServerConnection | None = None  # the current connection

    async def handler(self, ws: ServerConnection) -> None:
        n = len(self.received)
        self.received.append([])
        self.ws = ws
        with contextlib.suppress(ConnectionClosed):
            await self.session(self, ws, n)

    async def hello(self, ws: ServerConnection) -> dict[str, Any]:
        hello: dict[str, Any] = json.loads(await ws.recv())
        assert hello["type"] == "hello" and hello["terminalId"] == TERMINAL
        self.hellos.append(hello)
        return hello

    async def welcome(self, ws: ServerConnection, acked: int | None = None) -> None:
        acked = self.acked if acked is None else acked
        self.welcomed.append(acked)
        await ws.send(wire.encode(wire.welcome(TERMINAL, acked, WELCOME_TIME)))

    async def next_event(self, ws: ServerConnection, n: int) -> int:
        """Store the next event frame (other frames are kept in ``others``); its seq."""
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] != "event":
                self.others.append(msg)
                continue
            seq = int(msg["seq"])
            assert msg["id"] == f"{TERMINAL}-{seq}"
            self.received[n].append(seq)
            self.stored.setdefault(seq, msg)
            self.acked = max(self.acked, seq)  # in order on a connection (§4 `event`)
            return seq

    async def ack(self, ws: ServerConnection, up_to: int | None = None) -> None:
        await ws.send(wire.encode(wire.ack(self.acked if up_to is None else up_to)))

    async def serve_normally(self, ws: ServerConnection, n: int) -> None:
        await self.hello(ws)
        await self.serve_normally_after_hello(ws, n)

    async def serve_normally_after_hello(self, ws: ServerConnection, n: int) -> None:
        await self.welcome(ws)
        while True:
            await self.next_event(ws, n)
            await self.ack(ws)

    async def close(self, code: int) -> None:
        """Close the current connection from the hub's side."""
        assert self.ws is not None
        await self.ws.close(code, "doc hub")

    def duplicates(self) -> int:
        return sum(len(seqs) for seqs in self.received) - len(self.stored)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = open_outbox(tmp_path / "outbox.db")
    yield box
    box.close()


@contextlib.asynccontextmanager
async def serving(hub: DocHub) -> AsyncIterator[DocHub]:
    async with serve(hub.handler, "127.0.0.1", 0, max_size=None) as server:
        hub.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws/terminal"
        yield hub


# --------------------------------------------------------------------------- welcome


async def test_a_welcome_behind_the_outbox_cursor_resends_from_its_acked_seq(
        outbox: Outbox) -> None:
    """protocol.md §4 `welcome`: "The terminal resumes by sending its events with
    seq > ackedSeq": a hub restored from a backup (or one that lost its last commits,
    `synchronous: NORMAL` and a power cut) gets back what it lost, from the outbox."""
    outbox.commit(bet(10), None)
    async with serving(DocHub()) as hub:
        async with running(make_uplink(hub.url, outbox, ack_persist_delay_s=0)) as uplink:
            await wait_for(lambda: outbox.acked_seq == 10, what="all acked")
            # The hub loses seqs 6..10 and comes back.
            hub.acked = 5
            for seq in range(6, 11):
                del hub.stored[seq]
            sessions = uplink.state.sessions
            await hub.close(1001)
            await wait_for(lambda: uplink.state.sessions > sessions, what="second session")
            await wait_for(lambda: len(hub.stored) == 10, what="lost events resent")
        assert hub.welcomed == [0, 5]
        assert hub.received == [list(range(1, 11)), list(range(6, 11))]
        assert outbox.acked_seq == 10 and outbox.last_seq == 10




async def test_no_welcome_is_given_up_after_the_open_timeout_and_retried(
        outbox: Outbox) -> None:
    outbox.commit(bet(3), None)

    async def session(hub: DocHub, ws: ServerConnection, n: int) -> None:
        await hub.hello(ws)
        if n == 0:
            await ws.wait_closed()  # says nothing: no welcome, no error
            return
        await hub.serve_normally_after_hello(ws, n)

    async with serving(DocHub(session)) as hub:
        uplink = make_uplink(hub.url, outbox, open_timeout_s=0.3)
        async with running(uplink):
            await wait_for(lambda: outbox.acked_seq == 3, what="delivered on the 2nd try")
            assert uplink.state.sessions == 1 and uplink.state.reconnects >= 1
        assert hub.received[0] == [] and hub.received[-1] == [1, 2, 3]


async def test_a_welcome_for_another_terminal_or_protocol_is_not_applied(
        outbox: Outbox) -> None:
    """Its ackedSeq is about another outbox: applying it would mark events 1..5 acknowledged
    that this hub never stored."""
    outbox.commit(bet(6), None)

    async def session(hub: DocHub, ws: ServerConnection, n: int) -> None:
        await hub.hello(ws)
        if n < 2:
            welcome = wire.welcome("T-other" if n == 0 else TERMINAL, 5, WELCOME_TIME)
            if n == 1:
                welcome["protocol"] = 2
            await ws.send(wire.encode(welcome))
            await ws.wait_closed()
            return
        await hub.serve_normally_after_hello(ws, n)

    async with serving(DocHub(session)) as hub:
        uplink = make_uplink(hub.url, outbox, ack_persist_delay_s=0)
        async with running(uplink):
            await wait_for(lambda: outbox.acked_seq == 6, what="delivered on the 3rd try")
            assert uplink.state.sessions == 1
        assert hub.received == [[], [], list(range(1, 7))]


# --------------------------------------------------------------------------- acks


async def test_an_ack_beyond_what_was_sent_marks_nothing_unsent_as_delivered(
        outbox: Outbox) -> None:
    """A hub that acks seqs it was never sent (its own bug, or beyond anything the outbox
    assigned) cannot make the agent skip them: every event still reaches it."""
    outbox.commit(bet(10), None)

    async def session(hub: DocHub, ws: ServerConnection, n: int) -> None:
        await hub.hello(ws)
        await hub.welcome(ws)
        first = await hub.next_event(ws, n)
        await hub.ack(ws, 1000)  # beyond the last seq the outbox ever assigned
        await hub.ack(ws, 8)  # beyond what was sent, within the outbox
        await hub.ack(ws, first)
        while True:
            await hub.next_event(ws, n)
            await hub.ack(ws)

    async with serving(DocHub(session)) as hub:
        uplink = make_uplink(hub.url, outbox, window=1, batch=1, ack_persist_delay_s=0)
        async with running(uplink):
            await wait_for(lambda: sorted(hub.stored) == list(range(1, 11)), what="all sent")
            await wait_for(lambda: outbox.acked_seq == 10, what="cursor at 10")
            outbox.commit(bet(2), None)  # the cursor keeps following the real acks
            uplink.notify_new_events()
            await wait_for(lambda: outbox.acked_seq == 12, what="cursor at 12")
            assert uplink.state.hub_acked_seq == 12
        assert hub.received == [list(range(1, 13))]


async def test_acks_going_backwards_or_repeated_change_nothing(outbox: Outbox) -> None:
    outbox.commit(bet(6), None)

    async def session(hub: DocHub, ws: ServerConnection, n: int) -> None:
        await hub.hello(ws)
        await hub.welcome(ws)
        while True:
            seq = await hub.next_event(ws, n)
            await hub.ack(ws, seq)
            await hub.ack(ws, seq)  # repeated
            await hub.ack(ws, max(0, seq - 3))  # backwards

    async with serving(DocHub(session)) as hub:
        uplink = make_uplink(hub.url, outbox, window=2, batch=2, ack_persist_delay_s=0)
        async with running(uplink):
            await wait_for(lambda: outbox.acked_seq == 6, what="all acked")
            assert uplink.state.hub_acked_seq == 6 and uplink.state.in_flight == 0
        assert hub.received == [list(range(1, 7))]


# --------------------------------------------------------------------------- reconnecting


_WAIT = re.compile(r"reconnecting in ([0-9.]+) s")


async def test_the_backoff_starts_over_after_a_welcome_but_not_after_a_policy_close(
        outbox: Outbox, caplog: pytest.LogCaptureFixture) -> None:
    """docs/uplink.md, "Reconnecting": doubling from the first delay, from the first delay
    again only after a ``welcome``, however that session ended (a clean close, 1011...),
    and not after a policy close (4002 replaced)."""
    caplog.set_level(logging.INFO, logger="agent.uplink.client")
    # per connection: (welcome?, close code); then a normal session
    script = [(False, 1011), (False, 1011), (True, 1011), (False, 1000), (True, 4002),
              (True, 1001), (False, 1011)]

    async def session(hub: DocHub, ws: ServerConnection, n: int) -> None:
        await hub.hello(ws)
        if n >= len(script):
            await hub.serve_normally_after_hello(ws, n)
            return
        welcome, code = script[n]
        if welcome:
            await hub.welcome(ws)
        await ws.close(code, "doc hub")

    async with serving(DocHub(session)) as hub:
        uplink = make_uplink(hub.url, outbox, rng=lambda: 1.0, min_reconnect_delay_s=0.01,
                             reconnect_max_delay_s=1.0)
        async with running(uplink):
            await wait_for(lambda: uplink.state.sessions == 4, what="the last session")
    delays = [float(m.group(1)) for m in _WAIT.finditer(caplog.text)]
    assert delays == [0.01, 0.02, 0.01, 0.02, 0.04, 0.01, 0.02]
    # A clean close is reported with its code (not a crash of the close bookkeeping).
    assert "closed by the hub: 1001 doc hub" in caplog.text
    assert "closed by the hub: 4002 doc hub" in caplog.text


async def test_the_state_names_the_next_url_while_the_uplink_waits(outbox: Outbox) -> None:
    """docs/uplink.md: the state's ``url`` is the URL of the current or next attempt."""
    async def session(hub: DocHub, ws: ServerConnection, n: int) -> None:
        await ws.close(1011, "down")

    async with serving(DocHub(session)) as first, serving(DocHub(session)) as second:
        uplink = Uplink(uplink_config(first.url, urls=(first.url, second.url),
                                      reconnect_max_delay_s=600),
                        terminal_id=TERMINAL, outbox=outbox, token=lambda: TERMINAL_TOKEN,
                        min_reconnect_delay_s=600, rng=lambda: 1.0)
        async with running(uplink):
            # first, then second at once, then the wait before the first again
            await wait_for(lambda: len(second.received) == 1 and
                           uplink.state.last_error is not None and
                           "1011" in uplink.state.last_error and
                           uplink.state.reconnects == 1, what="both tried")
            await wait_for(lambda: uplink.state.url == first.url, what="next URL named")
            assert len(first.received) == 1


# --------------------------------------------------------------------------- a hostile hub


async def test_garbage_and_closes_mid_burst_with_every_code_lose_and_double_nothing(
        outbox: Outbox) -> None:
    """Every connection but the last: a welcome, a few events acked, garbage the agent must
    skip (bad JSON, a binary frame, an unknown type, an ack of the wrong type, a welcome
    again, an error that is not ``internal``), then a close mid-burst with one of the codes
    of protocol.md §9, or a frame beyond the agent's size limit (it closes with 1009). The
    last connection behaves. Each resumes at its welcome's ``ackedSeq + 1``; the hub ends
    up with every event, and the terminal never skips one."""
    total = 120
    outbox.commit(bet(total), None)
    codes = [1000, 1001, 1008, 1011, 4001, 4002, 4003, None]  # None: a frame too large
    garbage: list[str | bytes] = [
        "{not json", b"\x00\x01binary", '{"type": "mystery", "x": 1}',
        '{"type": "ack", "upTo": "7"}', '{"type": "ack"}', "[1, 2]",
        wire.encode(wire.welcome(TERMINAL, 10**6, WELCOME_TIME)),
        wire.encode(wire.error(wire.ErrorCode.BAD_MESSAGE, "not that one", "x")),
        wire.encode(wire.ping("p1")),
    ]

    async def session(hub: DocHub, ws: ServerConnection, n: int) -> None:
        await hub.hello(ws)
        await hub.welcome(ws)
        if n >= len(codes):
            while True:
                await hub.next_event(ws, n)
                await hub.ack(ws)
        for i in range(6):
            await hub.next_event(ws, n)
            if i % 2:
                await hub.ack(ws)
            if i == 2:
                for frame in garbage:
                    await ws.send(frame)
        code = codes[n]
        if code is None:
            await ws.send("x" * (2 << 20))  # beyond max_message_bytes (1 MiB)
            await ws.wait_closed()
        else:
            await ws.close(code, "doc hub")

    async with serving(DocHub(session)) as hub:
        uplink = make_uplink(hub.url, outbox, window=4, batch=3, ack_persist_delay_s=0)
        async with running(uplink):
            await wait_for(lambda: outbox.acked_seq == total, timeout=30, what="all acked")
    assert sorted(hub.stored) == list(range(1, total + 1))
    for welcomed, seqs in zip(hub.welcomed, hub.received, strict=True):
        assert seqs == list(range(welcomed + 1, welcomed + 1 + len(seqs)))
    assert len(hub.received) == len(codes) + 1
    assert {"type": "pong", "id": "p1"} in hub.others  # the ping among the garbage
    # What is sent twice is at most what was in flight, unacknowledged, at each close.
    assert hub.duplicates() <= 4 * len(codes)


# --------------------------------------------------------------------------- actions


KEY = b"doc-hub-action-key-0123456789"


async def test_actions_from_a_doc_hub_get_one_ack_and_one_result_each(outbox: Outbox) -> None:
    """docs/uplink.md "Remote actions", over the wire with a key: a signed action runs once;
    its repeat while it runs is accepted and gets no second result; unsigned, stale or
    forged signatures are
    ``bad_signature`` and record nothing (the genuine action with that id still runs after);
    another terminal is ``forbidden``; past ``expiresAt`` is ``expired``; an unknown action
    is ``unknown_action``. Every frame gets one ``actionAck``, every id one ``actionResult``
    per execution or refusal, and the results also arrive as ``actionCompleted`` events."""
    now = time.time()

    def signed(action_id: str, name: str = "lock", *, terminal: str = TERMINAL,
               issued: float = now, expires: float | None = None) -> str:
        msg = wire.action(action_id, terminal, name, {},
                          issued_at=wire.format_timestamp(issued),
                          expires_at=None if expires is None else wire.format_timestamp(expires))
        return wire.encode(sign_action(KEY, msg))

    forged = json.loads(signed("a-forged"))
    forged["signature"] = "0" * 64
    frames = [
        signed("a-1"),
        signed("a-1"),  # repeated
        wire.encode(wire.action("a-2", TERMINAL, "lock", {})),  # unsigned
        signed("a-3", issued=now - 3600),  # outside the replay window
        json.dumps(forged),
        signed("a-4", terminal="T-other"),
        signed("a-5", expires=now - 60),
        signed("a-6", "fly"),
        signed("a-2"),  # the genuine a-2 after the refused unsigned one
    ]
    answers: list[dict[str, Any]] = []

    async def session(hub: DocHub, ws: ServerConnection, n: int) -> None:
        await hub.hello(ws)
        await hub.welcome(ws)
        for frame in frames:
            await ws.send(frame)
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == "event":
                hub.received[n].append(msg["seq"])
                hub.stored.setdefault(msg["seq"], msg)
                await ws.send(wire.encode(wire.ack(msg["seq"])))
            else:
                answers.append(msg)

    line = FakeLine()
    uplink: Uplink | None = None

    def emit(event: Event) -> None:
        outbox.commit([event], None)
        if uplink is not None:
            uplink.notify_new_events()

    actions = Actions(terminal_id=TERMINAL, store=outbox, submit=line.submit, emit=emit,
                      observe=lambda _: None, diagnostics_report=dict, addresses=[1],
                      hmac_key=KEY)
    async with serving(DocHub(session)) as hub:
        uplink = make_uplink(hub.url, outbox, actions=actions.handle)
        async with running(uplink):
            # a-1's repeat comes while a-1 runs: accepted, and its one result follows
            await wait_for(lambda: sum(a["type"] == "actionResult" for a in answers)
                           == len(frames) - 1, what="every result")
            await wait_for(lambda: sum(e["event"] == "actionCompleted"
                                       for e in hub.stored.values()) == 8, what="events")
    got: dict[str, list[tuple[str, str, str]]] = {}
    for a in answers:
        assert a["terminalId"] == TERMINAL
        got.setdefault(a["id"], []).append(
            (a["type"], a["status"], (a.get("error") or "").split(":")[0]))
    ok = [("actionAck", "accepted", ""), ("actionResult", "succeeded", "")]
    assert sorted(got["a-1"]) == [ok[0], ok[0], ok[1]]
    assert got["a-2"] == [("actionAck", "rejected", "bad_signature"),
                          ("actionResult", "rejected", "bad_signature"), *ok]
    for action_id in ("a-3", "a-forged"):
        assert got[action_id] == [("actionAck", "rejected", "bad_signature"),
                                  ("actionResult", "rejected", "bad_signature")]
    assert got["a-4"] == [("actionAck", "rejected", "forbidden"),
                          ("actionResult", "rejected", "forbidden")]
    assert got["a-5"] == [("actionAck", "rejected", "expired"),
                          ("actionResult", "expired", "expired")]
    assert got["a-6"] == [("actionAck", "rejected", "unknown_action"),
                          ("actionResult", "rejected", "unknown_action")]
    assert [c.action_id for c in line.commands] == ["a-1", "a-2"]
    completed = sorted((e["data"]["actionId"], e["data"]["status"]) for e in hub.stored.values()
                       if e["event"] == "actionCompleted")
    assert completed == [("a-1", "succeeded"), ("a-2", "rejected"), ("a-2", "succeeded"),
                         ("a-3", "rejected"), ("a-4", "rejected"), ("a-5", "expired"),
                         ("a-6", "rejected"), ("a-forged", "rejected")]
