"""Remote actions with a fake line owner: every action, validation, idempotency, expiry,
signatures, and what is reported (frames, stored results, actionCompleted events)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from agent.line.commands import (
    CommandKind,
    CommandRejectedError,
    CommandResult,
    MachineCommand,
)
from agent.observations import SessionCommand
from agent.ops.metrics import AgentMetrics
from agent.store.outbox import Outbox
from agent.uplink import actions as actions_module
from agent.uplink.actions import ACTION_NAMES, Actions
from api import decode, messages, wire
from api.events import StoredEvent
from tests.agent.uplink_kit import TERMINAL, FakeLine, Sinks
from tests.support.event_data import assert_documented
from tests.support.waits import wait_for

KEY = b"0123456789abcdef-terminal-key"
NOW = 1_780_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox.open(tmp_path / "outbox.db", terminal_id=TERMINAL)
    yield box
    box.close()


class Rig:
    def __init__(self, outbox: Outbox, *, key: bytes | None = None, hold: bool = False,
                 addresses: tuple[int, ...] = (1, 3)) -> None:
        self.outbox = outbox
        self.line = FakeLine(hold=hold)
        self.sinks = Sinks()
        self.clock = Clock()
        self.metrics = AgentMetrics()
        self.frames: list[dict[str, Any]] = []
        self.actions = self.make(key=key, addresses=addresses)

    def make(self, *, key: bytes | None = None, addresses: tuple[int, ...] = (1, 3)
             ) -> Actions:
        return Actions(
            terminal_id=TERMINAL, store=self.outbox, submit=self.line.submit,
            emit=self.sinks.events.append, observe=self.sinks.observations.append,
            diagnostics_report=lambda: {"link": {"1": "up"}, "outbox": {"depth": 0}},
            addresses=addresses, hmac_key=key, replay_window_s=300.0, default_ttl_s=60.0,
            metrics=self.metrics, clock=self.clock,
        )

    def action(self, action_id: str, name: str, params: Mapping[str, Any] | None = None,
               **extra: Any) -> dict[str, Any]:
        msg = wire.action(action_id, TERMINAL, name, params or {},
                          expires_at=wire.format_timestamp(self.clock.now + 30))
        msg.update(extra)
        return msg

    async def run(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        # Exactly what the uplink would receive and hand over.
        parsed = decode.from_hub_to_terminal(wire.encode(msg), max_bytes=1 << 20)
        assert isinstance(parsed, messages.Action)
        return await self.actions.handle(parsed, self.frames.append)

    def of(self, action_id: str) -> list[tuple[str, str]]:
        return [(f["type"], f["status"]) for f in self.frames if f["id"] == action_id]

    def completed(self) -> list[dict[str, Any]]:
        """The actionCompleted events, each checked against docs/schemas/events/data.json."""
        events = [e for e in self.sinks.events if e.name == "actionCompleted"]
        assert_documented(StoredEvent(1, TERMINAL, e).to_wire() for e in events)
        return [dict(e.data) for e in events]

    def metric(self, action: str, status: str) -> float:
        needle = f'slot_agent_actions_total{{action="{action}",status="{status}"}} '
        for line in generate_latest(self.metrics.registry).decode().splitlines():
            if line.startswith(needle):
                return float(line.split()[-1])
        return 0.0


# --------------------------------------------------------------------------- each action

MACHINE_ACTIONS = {
    "lock": CommandKind.LOCK,
    "unlock": CommandKind.UNLOCK,
    "enableBillAcceptor": CommandKind.ENABLE_BILL_ACCEPTOR,
    "disableBillAcceptor": CommandKind.DISABLE_BILL_ACCEPTOR,
    "soundOn": CommandKind.SOUND_ON,
    "soundOff": CommandKind.SOUND_OFF,
    "handpayReset": CommandKind.HANDPAY_RESET,
    "syncClock": CommandKind.SYNC_CLOCK,
    "readMeters": CommandKind.READ_METERS,
    "machineInfo": CommandKind.MACHINE_INFO,
}


def test_every_action_name_is_covered_here() -> None:
    assert set(ACTION_NAMES) == set(MACHINE_ACTIONS) | {
        "startPlayerSession", "endPlayerSession", "diagnostics"}


@pytest.mark.parametrize("name", sorted(MACHINE_ACTIONS))
async def test_machine_actions_go_through_the_line_owner(outbox: Outbox, name: str) -> None:
    rig = Rig(outbox)
    data = {"meters": {"0": 1520100}} if name == "readMeters" else {}
    rig.line.answer = lambda c: CommandResult(True, data=data)
    result = await rig.run(rig.action("a1", name, {"address": 3}))
    assert rig.line.commands == [MachineCommand(MACHINE_ACTIONS[name], 3, "a1", {})]
    assert rig.of("a1") == [("actionAck", "accepted"), ("actionResult", "succeeded")]
    assert result == rig.frames[-1]
    expected: dict[str, Any] = dict(data)
    if name in ("lock", "unlock"):
        expected["locked"] = name == "lock"
    assert result["result"] == expected
    assert "error" not in result
    # Reported as an event too, and stored under the id.
    assert rig.completed() == [{"actionId": "a1", "action": name, "status": "succeeded",
                                "error": None, "result": expected}]
    record = outbox.action_get("a1")
    assert record is not None and record.result is not None
    assert record.result["status"] == "succeeded"
    assert rig.metric(name, "ok") == 1.0
    # The lock observation comes from the line owner when the machine ACKs (one source,
    # so machineLocked is emitted once); machine commands produce no observation here.
    assert rig.sinks.observations == []


async def test_address_defaults_to_the_first_configured_machine(outbox: Outbox) -> None:
    rig = Rig(outbox, addresses=(7, 8))
    await rig.run(rig.action("a1", "soundOff"))
    assert rig.line.commands[0].address == 7


async def test_player_sessions_become_observations_not_commands(outbox: Outbox) -> None:
    rig = Rig(outbox)
    start = await rig.run(rig.action("s1", "startPlayerSession", {"playerId": "P123"}))
    end = await rig.run(rig.action("s2", "endPlayerSession", {}))
    assert rig.line.commands == []
    assert rig.sinks.observations == [
        SessionCommand(at=NOW, address=1, start=True, player_id="P123", action_id="s1"),
        SessionCommand(at=NOW, address=1, start=False, player_id=None, action_id="s2"),
    ]
    assert start is not None and start["status"] == "succeeded"
    assert start["result"] == {"session": "started", "playerId": "P123"}
    assert end is not None and end["result"] == {"session": "ended"}


async def test_diagnostics_returns_the_injected_report(outbox: Outbox) -> None:
    rig = Rig(outbox)
    result = await rig.run(rig.action("d1", "diagnostics"))
    assert result is not None and result["status"] == "succeeded"
    assert result["result"] == {"link": {"1": "up"}, "outbox": {"depth": 0}}
    assert rig.line.commands == []


async def test_a_large_result_is_left_out_of_the_event_but_not_the_reply(
        outbox: Outbox) -> None:
    rig = Rig(outbox)
    report = {"frames": ["01 02 03 04"] * 2000, "when": object()}  # not JSON as such
    rig.actions = Actions(
        terminal_id=TERMINAL, store=outbox, submit=rig.line.submit,
        emit=rig.sinks.events.append, observe=rig.sinks.observations.append,
        diagnostics_report=lambda: report, addresses=[1], clock=rig.clock)
    result = await rig.run(rig.action("d2", "diagnostics"))
    assert result is not None and result["status"] == "succeeded"
    assert result["result"]["frames"] == report["frames"]
    assert isinstance(result["result"]["when"], str)  # made JSON, not an error
    event = rig.completed()[0]
    assert event["resultOmitted"] is True and "result" not in event
    # every key of the event is one docs/events.md gives actionCompleted
    doc = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    section = doc[doc.index("### `actionCompleted`"):]
    section = section[:section.index("\n#")]
    assert all(f"`{key}`" in section for key in event), event.keys()
    record = outbox.action_get("d2")
    assert record is not None and record.result is not None
    assert record.result["result"]["frames"] == report["frames"]


async def test_machine_failure_and_a_full_queue_are_failed_results(outbox: Outbox) -> None:
    rig = Rig(outbox)
    rig.line.answer = lambda c: CommandResult(False, "no reply from the machine")
    result = await rig.run(rig.action("f1", "lock"))
    assert result is not None and result["status"] == "failed"
    assert result["error"] == "machine_error: no reply from the machine"
    assert rig.of("f1") == [("actionAck", "accepted"), ("actionResult", "failed")]
    assert rig.sinks.observations == []  # the lock did not happen

    def refuse(command: MachineCommand) -> Any:
        raise CommandRejectedError("line owner queue is full")

    rig.actions = Actions(
        terminal_id=TERMINAL, store=outbox, submit=refuse, emit=rig.sinks.events.append,
        observe=rig.sinks.observations.append, diagnostics_report=dict, addresses=[1],
        clock=rig.clock)
    result = await rig.run(rig.action("f2", "unlock"))
    assert result is not None and result["status"] == "failed"
    assert result["error"] == "busy: line owner queue is full"
    assert [e["status"] for e in rig.completed()] == ["failed", "failed"]
    assert rig.completed()[1]["error"] == "busy: line owner queue is full"


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("name", "params", "error"), [
    ("selfDestruct", {}, "unknown_action: unknown action 'selfDestruct'"),
    ("lock", {"adress": 1}, "bad_params: unknown parameter(s) 'adress' for lock"),
    ("lock", {"address": 2}, "bad_params: address must be a configured machine address"),
    ("lock", {"address": True}, "bad_params: address must be a configured machine address"),
    ("lock", {"address": "1"}, "bad_params: address must be a configured machine address"),
    ("startPlayerSession", {}, "bad_params: startPlayerSession needs 'playerId'"),
    ("startPlayerSession", {"playerId": ""}, "bad_params: playerId must be a non-empty"),
    ("endPlayerSession", {"playerId": 12}, "bad_params: playerId must be a non-empty"),
    ("diagnostics", {"address": 1}, "bad_params: unknown parameter(s) 'address'"),
])
async def test_invalid_actions_are_rejected_and_change_nothing(
        outbox: Outbox, name: str, params: dict[str, Any], error: str) -> None:
    rig = Rig(outbox)
    result = await rig.run(rig.action("v1", name, params))
    assert rig.of("v1") == [("actionAck", "rejected"), ("actionResult", "rejected")]
    assert result is not None
    assert result["error"].startswith(error), result["error"]
    assert rig.frames[0]["error"] == result["error"]
    assert rig.line.commands == [] and rig.sinks.observations == []
    assert rig.completed()[0]["status"] == "rejected"
    record = outbox.action_get("v1")
    assert record is not None and record.result is not None
    assert record.result["status"] == "rejected"
    assert rig.metric(name if name in ACTION_NAMES else "unknown", "rejected") == 1.0


async def test_an_action_for_another_terminal_is_refused(outbox: Outbox) -> None:
    rig = Rig(outbox)
    msg = rig.action("x1", "lock")
    msg["terminalId"] = "T2"
    result = await rig.run(msg)
    assert result is not None and result["status"] == "rejected"
    assert result["error"].startswith("forbidden: ")
    assert result["terminalId"] == TERMINAL and rig.line.commands == []


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(
    st.sampled_from(["address", "playerId", "foo", "meters", ""]),
    st.one_of(st.integers(-2, 10), st.text(max_size=5), st.booleans(), st.none()),
    max_size=3),
    name=st.sampled_from([*ACTION_NAMES, "nope"]))
def test_any_params_either_execute_once_or_are_rejected_without_effect(
        tmp_path_factory: pytest.TempPathFactory, params: dict[str, Any], name: str) -> None:
    box = Outbox.open(tmp_path_factory.mktemp("p") / "o.db", terminal_id=TERMINAL)
    try:
        rig = Rig(box)
        result = asyncio.run(rig.run(rig.action("p1", name, params)))
        assert result is not None
        effects = len(rig.line.commands) + len(rig.sinks.observations)
        if result["status"] == "succeeded":
            assert name != "nope" and set(params) <= {"address", "playerId"}
            assert effects == (0 if name == "diagnostics" else 1)
        else:
            assert result["status"] == "rejected" and effects == 0
            assert result["error"].split(":")[0] in ("bad_params", "unknown_action")
        assert len(rig.completed()) == 1 and rig.completed()[0]["status"] == result["status"]
    finally:
        box.close()


# --------------------------------------------------------------------------- idempotency


async def test_a_repeated_id_is_answered_from_the_stored_result(outbox: Outbox) -> None:
    rig = Rig(outbox)
    rig.line.answer = lambda c: CommandResult(True, data={"meters": {"0": 5}})
    first = await rig.run(rig.action("r1", "readMeters"))
    again = await rig.run(rig.action("r1", "readMeters"))
    assert len(rig.line.commands) == 1
    assert again == first
    assert rig.of("r1") == [("actionAck", "accepted"), ("actionResult", "succeeded")] * 2
    assert len(rig.completed()) == 1  # one execution, one event
    assert rig.metric("readMeters", "duplicate") == 1.0
    # Another agent process on the same outbox (a restart) answers the same way.
    later = Rig(outbox)
    assert await later.run(later.action("r1", "readMeters")) == first
    assert later.line.commands == []


async def test_a_repeated_rejected_id_is_rejected_again(outbox: Outbox) -> None:
    rig = Rig(outbox)
    first = await rig.run(rig.action("r2", "lock", {"bogus": 1}))
    again = await rig.run(rig.action("r2", "lock", {}))  # same id, now valid: still refused
    assert again == first and rig.line.commands == []
    assert rig.of("r2") == [("actionAck", "rejected"), ("actionResult", "rejected")] * 2


async def test_a_repeat_while_running_gets_accepted_and_one_result(outbox: Outbox) -> None:
    rig = Rig(outbox, hold=True)
    first = asyncio.create_task(rig.run(rig.action("r3", "lock")))
    await wait_for(lambda: len(rig.line.futures) == 1, what="submitted")
    assert await rig.run(rig.action("r3", "lock")) is None
    assert rig.of("r3") == [("actionAck", "accepted"), ("actionAck", "accepted")]
    future = rig.line.futures[0]
    assert future.set_running_or_notify_cancel()
    future.set_result(CommandResult(True))
    result = await asyncio.wait_for(first, 5)
    assert result is not None and result["status"] == "succeeded"
    assert [t for t, _ in rig.of("r3")].count("actionResult") == 1
    assert len(rig.line.commands) == 1


async def test_unfinished_actions_of_a_previous_run_are_closed_at_start(
        outbox: Outbox) -> None:
    outbox.action_begin("u1", NOW - 10)
    rig = Rig(outbox)
    assert await asyncio.to_thread(rig.actions.recover_unfinished) == 1
    record = outbox.action_get("u1")
    assert record is not None and record.result is not None
    assert record.result["status"] == "failed"
    assert record.result["error"].startswith("interrupted: ")
    assert rig.completed()[0]["actionId"] == "u1"
    again = await rig.run(rig.action("u1", "lock"))
    assert again is not None and again["status"] == "failed" and rig.line.commands == []


# --------------------------------------------------------------------------- expiry


async def test_an_expired_action_is_not_executed(outbox: Outbox) -> None:
    rig = Rig(outbox)
    msg = rig.action("e1", "unlock")
    msg["expiresAt"] = wire.format_timestamp(NOW - 1)
    result = await rig.run(msg)
    assert result is not None and result["status"] == "expired"
    assert result["error"].startswith("expired: ")
    assert rig.of("e1") == [("actionAck", "rejected"), ("actionResult", "expired")]
    assert rig.line.commands == [] and rig.metric("unlock", "expired") == 1.0
    assert rig.completed()[0]["status"] == "expired"


async def test_a_command_still_queued_at_the_deadline_is_cancelled(outbox: Outbox) -> None:
    rig = Rig(outbox, hold=True)
    msg = rig.action("e2", "lock")
    msg["expiresAt"] = wire.format_timestamp(NOW + 0.05)  # the clock is fixed at NOW
    result = await rig.run(msg)
    assert result is not None and result["status"] == "expired"
    assert result["error"].startswith("expired: still queued")
    future = rig.line.futures[0]
    assert future.cancelled()
    assert not future.set_running_or_notify_cancel()  # the line owner will skip it
    assert rig.sinks.observations == []


async def test_a_command_running_past_the_deadline_is_a_timeout(
        outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(actions_module, "RUNNING_GRACE_S", 0.05)
    rig = Rig(outbox, hold=True)
    msg = rig.action("e3", "lock")
    msg["expiresAt"] = wire.format_timestamp(NOW + 0.05)
    task = asyncio.create_task(rig.run(msg))
    await wait_for(lambda: len(rig.line.futures) == 1, what="submitted")
    assert rig.line.futures[0].set_running_or_notify_cancel()  # it started on the line
    result = await asyncio.wait_for(task, 5)
    assert result is not None and result["status"] == "failed"
    assert result["error"].startswith("timeout: ")


# --------------------------------------------------------------------------- signatures


def signed(rig: Rig, action_id: str, name: str, *, issued: float,
           key: bytes = KEY) -> dict[str, Any]:
    msg = rig.action(action_id, name, issuedAt=wire.format_timestamp(issued))
    return wire.sign_action(key, msg)


async def test_a_good_signature_executes(outbox: Outbox) -> None:
    rig = Rig(outbox, key=KEY)
    result = await rig.run(signed(rig, "h1", "lock", issued=NOW - 5))
    assert result is not None and result["status"] == "succeeded"
    assert len(rig.line.commands) == 1


@pytest.mark.parametrize("case", ["unsigned", "wrong_key", "tampered", "too_old", "future"])
async def test_bad_signatures_are_refused(outbox: Outbox, case: str) -> None:
    rig = Rig(outbox, key=KEY)
    if case == "unsigned":
        msg = rig.action("h2", "unlock")
    elif case == "wrong_key":
        msg = signed(rig, "h2", "unlock", issued=NOW, key=b"another-key-of-16+bytes")
    elif case == "tampered":
        msg = signed(rig, "h2", "lock", issued=NOW)
        msg["action"] = "unlock"
    elif case == "too_old":
        msg = signed(rig, "h2", "unlock", issued=NOW - 301)
    else:
        msg = signed(rig, "h2", "unlock", issued=NOW + 301)
    result = await rig.run(msg)
    assert result is not None and result["status"] == "rejected"
    assert result["error"].startswith("bad_signature: ")
    assert rig.of("h2") == [("actionAck", "rejected"), ("actionResult", "rejected")]
    assert rig.line.commands == []
    # Not recorded under the id: a forged frame cannot burn a genuine action's id.
    assert outbox.action_get("h2") is None
    genuine = await rig.run(signed(rig, "h2", "unlock", issued=NOW))
    assert genuine is not None and genuine["status"] == "succeeded"


async def test_a_replayed_signed_action_is_not_executed_twice(outbox: Outbox) -> None:
    rig = Rig(outbox, key=KEY)
    msg = signed(rig, "h3", "lock", issued=NOW)
    first = await rig.run(msg)
    rig.clock.now += 10  # inside the window: the id makes it a repeat
    assert await rig.run(dict(msg)) == first
    rig.clock.now += 400  # outside the window: refused before the id is looked at
    late = await rig.run(dict(msg))
    assert late is not None and late["error"].startswith("bad_signature: ")
    assert len(rig.line.commands) == 1


def test_the_actions_table_of_uplink_md_is_the_agents() -> None:
    """docs/uplink.md "Remote actions": each action, its params (``?``: optional; ``none``),
    and the closed list of error codes, as an operator's tool reads them."""
    import re

    from agent.uplink.actions import ActionError

    doc = (Path(__file__).resolve().parents[2] / "docs" / "uplink.md").read_text()
    section = doc[doc.index("## Remote actions"):]
    table: dict[str, tuple[set[str], set[str]]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            params = re.findall(r"`([A-Za-z]+)`(\??)", cells[1])
            for name in re.findall(r"`([A-Za-z]+)`", cells[0]):
                table[name] = ({p for p, _ in params}, {p for p, opt in params if not opt})
    assert set(table) == set(ACTION_NAMES)
    for name, (params, required) in table.items():
        spec = actions_module._SPECS[name]
        assert (params, required) == (set(spec.params), set(spec.required)), name
    codes = section[section.index("Errors are strings that start with a code"):]
    codes = codes[:codes.index("\n\n")]
    listed = set(re.findall(r"`([a-z_]+)`", codes))
    assert listed == {e.value for e in ActionError} | {"bad_message"}
