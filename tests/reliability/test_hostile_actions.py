"""Hostile remote actions at the agent: forged, replayed, expired, misaddressed, malformed.

Every refusal answers ``actionAck`` rejected and ``actionResult`` with a code at the start of
``error``; nothing reaches the line owner; the handler keeps serving the next frame.
"""

from __future__ import annotations

import random
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from agent.line.commands import CommandResult, MachineCommand
from agent.observations import Observation
from agent.store.outbox import Outbox
from agent.uplink.actions import Actions
from api import decode, messages, wire
from api.events import Event
from tests.reliability.hostile_frames import mutate
from tests.reliability.reliability_kit import long_or_short

TERMINAL = "T1"
KEY = b"k" * 32
NOW = 1_778_497_800.0  # 2026-05-11T11:10:00Z
ISSUED = wire.format_timestamp(NOW)


class Line:
    """Stands in for LineOwner.submit: records what would have reached the machine."""

    def __init__(self) -> None:
        self.commands: list[MachineCommand] = []

    def submit(self, command: MachineCommand) -> Future[CommandResult]:
        self.commands.append(command)
        future: Future[CommandResult] = Future()
        future.set_result(CommandResult(True))
        return future


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.outbox = Outbox.open(tmp_path / "outbox.db", terminal_id=TERMINAL)
        self.line = Line()
        self.events: list[Event] = []
        self.observations: list[Observation] = []
        self.now = NOW
        self.actions = Actions(
            terminal_id=TERMINAL, store=self.outbox, submit=self.line.submit,
            emit=self.events.append, observe=self.observations.append,
            diagnostics_report=lambda: {"ok": True}, addresses=[1], hmac_key=KEY,
            replay_window_s=300.0, clock=lambda: self.now,
        )

    async def send(self, msg: dict[str, Any]) -> list[dict[str, Any]]:
        """Parse as the uplink does, then handle; return every frame sent back."""
        parsed = decode.from_hub_to_terminal(wire.encode(msg), max_bytes=1 << 20)
        assert isinstance(parsed, messages.Action)
        replies: list[dict[str, Any]] = []
        await self.actions.handle(parsed, replies.append)
        return replies


@pytest.fixture
def rig(tmp_path: Path) -> Any:
    r = Rig(tmp_path)
    yield r
    r.outbox.close()


def signed(action_id: str, name: str = "lock", *, terminal: str = TERMINAL,
           key: bytes = KEY, issued: str = ISSUED, **extra: Any) -> dict[str, Any]:
    msg = wire.action(action_id, terminal, name, {"address": 1}, issued_at=issued, **extra)
    return wire.sign_action(key, msg)


def result_of(replies: list[dict[str, Any]]) -> dict[str, Any]:
    results = [r for r in replies if r["type"] == "actionResult"]
    assert len(results) == 1, replies
    return results[0]


def refused(replies: list[dict[str, Any]], status: str, code: str) -> None:
    acks = [r for r in replies if r["type"] == "actionAck"]
    assert [a["status"] for a in acks] == ["rejected"], replies
    result = result_of(replies)
    assert result["status"] == status
    assert str(result["error"]).startswith(f"{code}:"), result


async def test_forged_signature_is_refused_and_not_executed(rig: Rig) -> None:
    replies = await rig.send(signed("a-1", key=b"x" * 32))
    refused(replies, "rejected", "bad_signature")
    assert rig.line.commands == []
    # A forged frame does not burn the id: the genuine action with that id still runs.
    ok = await rig.send(signed("a-1"))
    assert result_of(ok)["status"] == "succeeded"
    assert len(rig.line.commands) == 1


async def test_unsigned_action_is_refused_when_a_key_is_configured(rig: Rig) -> None:
    msg = wire.action("a-2", TERMINAL, "lock", {"address": 1})
    refused(await rig.send(msg), "rejected", "bad_signature")
    assert rig.line.commands == []


async def test_tampered_params_break_the_signature(rig: Rig) -> None:
    msg = signed("a-3", "unlock")
    msg["action"] = "lock"
    refused(await rig.send(msg), "rejected", "bad_signature")
    assert rig.line.commands == []


async def test_captured_action_replayed_after_the_window_is_refused(rig: Rig) -> None:
    msg = signed("a-4")
    rig.now = NOW + 301.0  # issuedAt now outside the 300 s window
    refused(await rig.send(msg), "rejected", "bad_signature")
    assert rig.line.commands == []


async def test_replayed_action_id_executes_once(rig: Rig) -> None:
    msg = signed("a-5")
    first = result_of(await rig.send(msg))
    again = result_of(await rig.send(msg))
    assert first["status"] == again["status"] == "succeeded"
    assert len(rig.line.commands) == 1
    # Even after a restart: the id is in the outbox.
    assert rig.outbox.action_get("a-5") is not None


async def test_expired_action_is_reported_expired_and_not_executed(rig: Rig) -> None:
    msg = signed("a-6", expires_at=wire.format_timestamp(NOW - 1))
    refused(await rig.send(msg), "expired", "expired")
    assert rig.line.commands == []


async def test_action_for_another_terminal_is_forbidden(rig: Rig) -> None:
    msg = signed("a-7", terminal="T2")
    refused(await rig.send(msg), "rejected", "forbidden")
    assert rig.line.commands == []


@pytest.mark.parametrize(("name", "params", "code"), [
    ("selfDestruct", {"address": 1}, "unknown_action"),
    ("lock", {"address": 9}, "bad_params"),
    ("lock", {"address": "1"}, "bad_params"),
    ("lock", {"address": True}, "bad_params"),
    ("lock", {"address": 1, "force": True}, "bad_params"),
    ("startPlayerSession", {"address": 1}, "bad_params"),
    ("startPlayerSession", {"address": 1, "playerId": "p" * 65}, "bad_params"),
])
async def test_malformed_actions_get_a_code(rig: Rig, name: str, params: dict[str, Any],
                                            code: str) -> None:
    msg = wire.sign_action(KEY, wire.action(f"m-{name}-{len(params)}-{code}", TERMINAL, name,
                                            params, issued_at=ISSUED))
    refused(await rig.send(msg), "rejected", code)
    assert rig.line.commands == []
    assert rig.observations == []


async def test_mutated_action_frames_never_execute_twice_and_keep_serving(rig: Rig) -> None:
    """Seeded mutations of a signed action: each is refused by the parser with a code, or
    handled with exactly one actionResult; no id ever executes twice; a genuine action still
    works at the end."""
    rng = random.Random(20260511)
    executed_ids: list[str | None] = []
    for i in range(long_or_short(5000, 300)):
        base = signed(f"f-{i % 40}", rng.choice(["lock", "unlock", "soundOff", "readMeters"]))
        frame = mutate(rng, base)
        try:
            parsed = decode.from_hub_to_terminal(frame, max_bytes=1 << 16)
        except wire.WireError as exc:
            assert exc.code in set(wire.ErrorCode)
            continue
        if not isinstance(parsed, messages.Action):
            continue
        before = len(rig.line.commands)
        replies: list[dict[str, Any]] = []
        await rig.actions.handle(parsed, replies.append)
        results = [r for r in replies if r["type"] == "actionResult"]
        assert len(results) <= 1
        if len(rig.line.commands) > before:
            executed_ids.append(rig.line.commands[-1].action_id)
            assert results and results[0]["status"] == "succeeded"
        for r in results:
            if r["status"] != "succeeded":
                assert ":" in str(r.get("error")), r
    assert len(executed_ids) == len(set(executed_ids)), "an action id executed twice"
    ok = result_of(await rig.send(signed("final")))
    assert ok["status"] == "succeeded"


@pytest.mark.parametrize("escape", ["\\ud800", "\\uDFFF", "\\udbff"])
async def test_lone_surrogate_in_params_is_refused_with_a_code(rig: Rig, escape: str) -> None:
    """A lone UTF-16 surrogate (a JSON escape without its pair) is not text: the parser
    refuses the frame with bad_message naming the field, before anything tries to check its
    signature; the uplink answers such an action rejected (test_uplink_actions.py)."""
    text = wire.encode(signed("s-1"))
    text = text.replace('"address":1', f'"address":1,"note":"{escape}"')
    with pytest.raises(wire.WireError) as info:
        wire.parse_message(text, max_bytes=1 << 16, accept=wire.HUB_TO_TERMINAL)
    assert info.value.code == wire.ErrorCode.BAD_MESSAGE
    assert "'params.note'" in info.value.message and "surrogate" in info.value.message
    assert info.value.ref_id == "s-1"
    # The same action without the bad field is genuine and runs, once.
    ok = await rig.send(signed("s-1"))
    assert result_of(ok)["status"] == "succeeded"
    assert len(rig.line.commands) == 1
