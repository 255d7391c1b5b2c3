"""Actions end to end: an operator's action through the real hub and the uplink to a fake
line owner, and the result back to the operator, including across a network drop."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from agent.line.commands import CommandKind, CommandResult, MachineCommand
from agent.observations import HostLockChanged, Observation
from agent.store.outbox import Outbox
from agent.uplink.actions import Actions
from agent.uplink.client import Uplink
from api import wire
from api.events import Event
from tests.agent.uplink_kit import (
    TERMINAL,
    TERMINAL_TOKEN,
    FakeLine,
    Operator,
    Proxy,
    open_outbox,
    uplink_config,
)
from tests.support.hub import HubHarness
from tests.support.waits import wait_for

KEY = b"shared-action-key-0123456789"


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = open_outbox(tmp_path / "outbox.db")
    yield box
    box.close()


class Agent:
    """Uplink + Actions wired the way the daemon wires them (emit -> outbox -> notify)."""

    def __init__(self, url: str, outbox: Outbox, *, key: bytes | None = None,
                 hold: bool = False, with_actions: bool = True) -> None:
        self.outbox = outbox
        self.line = FakeLine(hold=hold)
        self.observations: list[Observation] = []
        self.actions = Actions(
            terminal_id=TERMINAL, store=outbox, submit=self.line.submit, emit=self.emit,
            observe=self.observations.append, diagnostics_report=dict, addresses=[1],
            hmac_key=key)
        self.uplink = Uplink(uplink_config(url), terminal_id=TERMINAL, outbox=outbox,
                             token=lambda: TERMINAL_TOKEN,
                             actions=self.actions.handle if with_actions else None,
                             min_reconnect_delay_s=0.01)

    def emit(self, event: Event) -> None:
        self.outbox.commit([event], None)
        self.uplink.notify_new_events()


def _in(seconds: float) -> str:
    return wire.format_timestamp(time.time() + seconds)


def replies(op: Operator, action_id: str) -> list[tuple[str, str]]:
    return [(m["type"], m["status"]) for m in op.frames
            if m["type"] in ("actionAck", "actionResult") and m["id"] == action_id]


async def test_a_lock_from_an_operator_reaches_the_machine_and_its_result_returns(
        hub: HubHarness, outbox: Outbox) -> None:
    agent = Agent(hub.terminal_url, outbox)
    agent.uplink.start()
    try:
        await wait_for(lambda: agent.uplink.connected, what="connected")
        op = await Operator.connect(hub.port)
        await op.ws.send(wire.encode(wire.action("act-1", TERMINAL, "lock", {},
                                                 expires_at=_in(60))))
        result = await op.wait(lambda m: m["type"] == "actionResult")
        # the hub names the action on everything it relays to clients (optional field)
        assert result == {"type": "actionResult", "id": "act-1", "terminalId": TERMINAL,
                          "action": "lock", "status": "succeeded", "result": {"locked": True}}
        assert replies(op, "act-1") == [("actionAck", "sent"), ("actionAck", "accepted"),
                                        ("actionResult", "succeeded")]
        assert {m.get("action") for m in op.frames
                if m["type"] in ("actionAck", "actionResult") and m["id"] == "act-1"} == {"lock"}
        assert agent.line.commands == [MachineCommand(CommandKind.LOCK, 1, "act-1", {})]
        # machineLocked comes from the line owner's observation of the ACK, not from here
        assert not any(isinstance(o, HostLockChanged) for o in agent.observations)
        # The actionCompleted event reached the hub and the subscriber as well.
        event = await op.wait(lambda m: m["type"] == "event"
                              and m["event"] == "actionCompleted")
        assert event["data"]["actionId"] == "act-1" and event["data"]["status"] == "succeeded"
        assert event["channel"] == "system"
        await op.close()
    finally:
        await agent.uplink.stop()


async def test_a_result_ready_while_the_connection_is_down_still_reaches_the_operator(
        hub: HubHarness, outbox: Outbox) -> None:
    proxy = Proxy(hub.port)
    await proxy.start()
    agent = Agent(f"ws://127.0.0.1:{proxy.port}/ws/terminal", outbox, hold=True)
    agent.uplink.start()
    try:
        await wait_for(lambda: agent.uplink.connected, what="connected")
        op = await Operator.connect(hub.port)
        await op.ws.send(wire.encode(wire.action("act-2", TERMINAL, "readMeters",
                                                 expires_at=_in(60))))
        await wait_for(lambda: len(agent.line.futures) == 1, what="command queued")
        await op.wait(lambda m: m["type"] == "actionAck" and m["status"] == "accepted")
        proxy.cut()
        await wait_for(lambda: not agent.uplink.connected, what="drop noticed")
        future = agent.line.futures[0]
        assert future.set_running_or_notify_cancel()
        future.set_result(CommandResult(True, data={"meters": {"0": 42}}))
        result = await op.wait(lambda m: m["type"] == "actionResult")
        assert result["status"] == "succeeded" and result["result"] == {"meters": {"0": 42}}
        assert agent.uplink.state.sessions >= 2
        event = await op.wait(lambda m: m["type"] == "event"
                              and m["event"] == "actionCompleted")
        assert event["data"]["actionId"] == "act-2"
        assert [t for t, _ in replies(op, "act-2")].count("actionResult") == 1
        await op.close()
    finally:
        await agent.uplink.stop()
        await proxy.stop()


async def test_signed_end_to_end_when_hub_and_terminal_share_the_key(
        tmp_path: Path, outbox: Outbox) -> None:
    runner = HubHarness(tmp_path, action_key=KEY)
    await runner.start()
    agent = Agent(runner.terminal_url, outbox, key=KEY)
    agent.uplink.start()
    try:
        await wait_for(lambda: agent.uplink.connected, what="connected")
        op = await Operator.connect(runner.port)
        await op.ws.send(wire.encode(wire.action("act-3", TERMINAL, "unlock",
                                                 expires_at=_in(60))))
        result = await op.wait(lambda m: m["type"] == "actionResult")
        assert result["status"] == "succeeded", result
        assert len(agent.line.commands) == 1
        await op.close()
    finally:
        await agent.uplink.stop()
        await runner.stop()


async def test_an_unsigned_action_is_refused_by_a_terminal_that_holds_a_key(
        hub: HubHarness, outbox: Outbox) -> None:
    agent = Agent(hub.terminal_url, outbox, key=KEY)  # the hub has no key: it forwards unsigned
    agent.uplink.start()
    try:
        await wait_for(lambda: agent.uplink.connected, what="connected")
        op = await Operator.connect(hub.port)
        await op.ws.send(wire.encode(wire.action("act-4", TERMINAL, "unlock")))
        ack: dict[str, Any] = await op.wait(
            lambda m: m["type"] == "actionAck" and m["status"] == "rejected")
        assert ack["error"].startswith("bad_signature: ")
        # The refusal is also reported as an actionCompleted event. (The hub treats the
        # rejected ack as final and does not relay the actionResult that follows it.)
        event = await op.wait(lambda m: m["type"] == "event"
                              and m["event"] == "actionCompleted")
        assert event["data"]["actionId"] == "act-4"
        assert event["data"]["status"] == "rejected"
        assert agent.line.commands == []
        await op.close()
    finally:
        await agent.uplink.stop()


async def test_without_an_actions_handler_every_action_is_rejected(
        hub: HubHarness, outbox: Outbox) -> None:
    agent = Agent(hub.terminal_url, outbox, with_actions=False)
    agent.uplink.start()
    try:
        await wait_for(lambda: agent.uplink.connected, what="connected")
        op = await Operator.connect(hub.port)
        await op.ws.send(wire.encode(wire.action("act-5", TERMINAL, "lock")))
        ack = await op.wait(lambda m: m["type"] == "actionAck" and m["status"] == "rejected")
        assert ack["error"].startswith("forbidden: ")
        await op.close()
    finally:
        await agent.uplink.stop()


async def test_an_action_the_parser_refuses_is_answered_rejected_with_its_code(
        outbox: Outbox) -> None:
    """A hub that forwards a frame the parser refuses (here a lone UTF-16 surrogate in the
    params, which the reference hub itself refuses) gets actionAck/actionResult rejected with
    ``bad_message``; nothing reaches the machine and the next valid action still runs."""
    answers: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        hello = json.loads(await ws.recv())
        await ws.send(wire.encode(wire.welcome(TERMINAL, hello["lastSeq"], _in(0))))
        bad = wire.encode(wire.action("bad-1", TERMINAL, "lock", {"address": 1}))
        await ws.send(bad.replace('"address":1', '"address":1,"note":"\\ud800"'))
        await ws.send('{"type":"action","id":"bad-2","terminalId":"T1"}')  # no 'action'
        await ws.send(wire.encode(wire.action("ok-1", TERMINAL, "lock", {"address": 1})))
        async for text in ws:
            msg = json.loads(text)
            if msg["type"] in ("actionAck", "actionResult"):
                answers.append(msg)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        agent = Agent(f"ws://127.0.0.1:{port}/ws/terminal", outbox)
        agent.uplink.start()
        try:
            await wait_for(lambda: sum(a["type"] == "actionResult" for a in answers) == 3,
                           what="three results")
        finally:
            await agent.uplink.stop()
    by_id = {(a["id"], a["type"]): a for a in answers}
    for action_id, field in (("bad-1", "'params.note'"), ("bad-2", "'action'")):
        ack, result = by_id[action_id, "actionAck"], by_id[action_id, "actionResult"]
        assert ack["status"] == result["status"] == "rejected"
        assert result["error"].startswith("bad_message: ") and field in result["error"]
        assert ack["terminalId"] == result["terminalId"] == TERMINAL
    assert by_id["ok-1", "actionResult"]["status"] == "succeeded"
    assert agent.line.commands == [MachineCommand(CommandKind.LOCK, 1, "ok-1", {})]
    assert outbox.action_get("bad-1") is None and outbox.action_get("bad-2") is None
