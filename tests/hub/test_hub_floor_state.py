"""What the floor needs: handpays as alerts, the real lock state, bulk acknowledgement, the
machine's state in the terminal table, actions with a reason, and the audit trail."""

from __future__ import annotations

from typing import Any

from api import wire
from tests.support.hub import HubHarness, event_frame, http_json, publish_all


def _terminal(snap: dict[str, Any], tid: str) -> dict[str, Any]:
    return next(t for t in snap["terminals"] if t["terminalId"] == tid)


async def test_a_handpay_is_an_alert_with_its_amount_and_locks_the_machine(
    harness: HubHarness,
) -> None:
    alice, _ = await harness.client("tok-alice", subscribe={})
    term, _ = await harness.terminal("T1")
    await publish_all(term, [event_frame("T1", 1, "handpayPending", data={
        "amount": 360000, "kind": "jackpot", "level": 64})])
    state = (await alice.recv_until(lambda m: m["type"] == "terminal"
                                    and m["terminal"]["handpay"] is not None))[0]["terminal"]
    assert state["locked"] is True and state["lockReasons"] == ["handpay"]
    assert state["handpay"]["amount"] == 360000 and state["handpay"]["kind"] == "jackpot"
    assert state["unackedAlerts"] == 1  # the handpay (deviceOnline needs none)
    _, snap = await harness.client("tok-carol")
    assert [a["event"] for a in snap["alerts"]] == ["handpayPending"]
    assert snap["alerts"][0]["data"]["amount"] == 360000
    await alice.send(wire.ack_alert("T1-1", "r1"))
    ack = await alice.recv_type("alertAck")
    assert (ack["eventId"], ack["by"]) == ("T1-1", "alice")
    await publish_all(term, [event_frame("T1", 2, "handpayReset", data={
        "amount": 360000, "kind": "jackpot", "method": "standard"})])
    state = (await alice.recv_until(lambda m: m["type"] == "terminal"
                                    and m["terminal"]["handpay"] is None))[0]["terminal"]
    assert state["locked"] is False and state["lockReasons"] == []


async def test_lock_state_is_known_for_a_connected_terminal_and_survives_restarts(
    harness: HubHarness,
) -> None:
    _, snap = await harness.client("tok-carol")
    assert _terminal(snap, "T1")["locked"] is None  # never seen: not known
    term, _ = await harness.terminal("T1")
    _, snap = await harness.client("tok-carol")
    assert _terminal(snap, "T1")["locked"] is False  # connected, never host-locked
    alice, _ = await harness.client("tok-alice")
    await alice.send(wire.action("a1", "T1", "lock", reason="cash audit"))
    action = await term.recv_type("action")
    assert action["reason"] == "cash audit" and action["from"] == "alice"
    await term.send(wire.action_ack("a1", "T1", wire.ActionAckStatus.ACCEPTED))
    await term.send(wire.action_result("a1", "T1", wire.ActionStatus.SUCCEEDED,
                                       result={"locked": True}))
    # the result alone locks the row, before any machineLocked event arrives
    state = (await alice.recv_until(lambda m: m["type"] == "terminal"
                                    and m["terminal"]["locked"] is True))[0]["terminal"]
    assert state["lockReasons"] == ["host"]
    await publish_all(term, [event_frame("T1", 1, "machineLocked", data={"by": "a1"})])
    await term.close()
    await harness.restart()
    _, snap = await harness.client("tok-carol")
    assert _terminal(snap, "T1")["locked"] is True


async def test_the_agent_reports_the_host_lock_in_hello(harness: HubHarness) -> None:
    """Locked by the agent before this hub saw any event: locked from the first moment."""
    alice, _ = await harness.client("tok-alice", subscribe={})
    term = await harness.connect("/ws/terminal", "tok-t1")
    await term.send(wire.hello("T1", "test", 0, {"hostLocked": True}))
    assert (await term.recv())["type"] == "welcome"
    state = (await alice.recv_until(lambda m: m["type"] == "terminal"
                                    and m["terminal"]["terminalId"] == "T1"))[0]["terminal"]
    assert (state["locked"], state["lockReasons"]) == (True, ["host"])
    await term.send_raw(wire.encode({**wire.hello("T1", "test", 0), "machine": {}}))
    assert (await term.recv_type("error"))["code"] == "bad_message"


async def test_a_game_lock_locks_the_row_until_game_unlocked_and_survives_restarts(
    harness: HubHarness,
) -> None:
    """``gameLocked`` / ``gameUnlocked`` (LP 74 after 6F) are the machine's lock, reason
    ``game``, kept apart from the host lock; ``hello`` may carry ``gameLocked``."""
    alice, _ = await harness.client("tok-alice", subscribe={})
    term, _ = await harness.terminal("T1")
    await publish_all(term, [event_frame("T1", 1, "gameLocked", data={"lockStatus": "0x00"}),
                          event_frame("T1", 2, "machineLocked", data={"by": "a1"})])
    state = (await alice.recv_until(lambda m: m["type"] == "terminal"
                                    and m["terminal"]["lockReasons"] == ["host", "game"])
             )[0]["terminal"]
    assert state["locked"] is True
    await term.close()
    await harness.restart()
    _, snap = await harness.client("tok-carol")
    assert _terminal(snap, "T1")["lockReasons"] == ["host", "game"]  # from the store
    alice, _ = await harness.client("tok-alice", subscribe={})
    term, _ = await harness.terminal("T1", last_seq=2)
    await publish_all(term, [event_frame("T1", 3, "machineUnlocked", data={"by": "a2"}),
                          event_frame("T1", 4, "gameUnlocked", data={"lockStatus": "0xFF"})])
    state = (await alice.recv_until(lambda m: m["type"] == "terminal"
                                    and m["terminal"]["lockReasons"] == []))[0]["terminal"]
    assert state["locked"] is False
    await term.close()
    term = await harness.connect("/ws/terminal", "tok-t1")
    await term.send(wire.hello("T1", "test", 4, {"hostLocked": False, "gameLocked": True}))
    assert (await term.recv())["type"] == "welcome"
    state = (await alice.recv_until(lambda m: m["type"] == "terminal"
                                    and m["terminal"]["lockReasons"] == ["game"]))[0]["terminal"]
    assert state["locked"] is True
    await term.send_raw(wire.encode({**wire.hello("T1", "test", 4),
                                     "machine": {"hostLocked": False, "gameLocked": "yes"}}))
    assert (await term.recv_type("error"))["code"] == "bad_message"


async def test_acknowledge_all_and_per_terminal_with_who_and_when(
    harness: HubHarness,
) -> None:
    hub = harness.hub
    assert hub is not None
    alice, _ = await harness.client("tok-alice", subscribe={"channels": ["alerts"]})
    bob, _ = await harness.client("tok-bob")
    t1, _ = await harness.terminal("T1")
    t2, _ = await harness.terminal("T2")
    await publish_all(t1, [event_frame("T1", i, "doorOpened", data={"door": "main"})
                        for i in range(1, 34)])
    await publish_all(t2, [event_frame("T2", i, "tilt", data={"kind": "general"})
                        for i in range(1, 4)])
    await bob.send({"type": "ack", "id": "b1", "terminalId": "T2"})
    acks = [await bob.recv_type("alertAck") for _ in range(3)]
    assert {a["eventId"] for a in acks} == {"T2-1", "T2-2", "T2-3"}
    assert all(a["by"] == "bob" for a in acks)
    await bob.sync()
    await bob.close()  # a peer that stops reading could not read the close frame either
    carol, snap = await harness.client("tok-carol")
    await carol.close()
    assert _terminal(snap, "T2")["unackedAlerts"] == 0
    assert _terminal(snap, "T1")["unackedAlerts"] == 33
    await alice.sync()  # past bob's acknowledgements (every client gets them)
    await alice.send({"type": "ack", "id": "all", "all": True})
    acks = [await alice.recv_type("alertAck") for _ in range(33)]
    assert len({a["eventId"] for a in acks}) == 33 and {a["by"] for a in acks} == {"alice"}
    _, snap = await harness.client("tok-carol")
    assert snap["alerts"] == [] and all(t["unackedAlerts"] == 0 for t in snap["terminals"])
    audit = await http_json(hub, "/api/audit?kind=alertAck&limit=1000", "tok-alice")
    by = {e["subject"]: e["who"] for e in audit["entries"]}
    assert by["T2-1"] == "bob" and by["T1-33"] == "alice" and len(by) == 36
    carol, _ = await harness.client("tok-carol")
    await carol.send({"type": "ack", "all": True})
    assert (await carol.recv_type("error"))["code"] == "forbidden"
    await alice.send({"type": "ack", "id": "x", "terminalId": "T9"})
    assert (await alice.recv_type("error"))["code"] == "unknown_terminal"


async def test_the_terminal_table_has_the_machines_state(harness: HubHarness) -> None:
    alice, _ = await harness.client("tok-alice")
    term, _ = await harness.terminal("T1")
    await publish_all(term, [
        event_frame("T1", 1, "balanceChanged", data={"credits": 2500, "amount": 2500,
                                                     "denomination": 1}),
        event_frame("T1", 2, "doorOpened", data={"door": "main", "powerOff": False}),
        event_frame("T1", 3, "doorOpened", data={"door": "cashbox", "powerOff": False}),
        event_frame("T1", 4, "doorClosed", data={"door": "cashbox", "powerOff": False}),
        event_frame("T1", 5, "tilt", data={"kind": "reel", "code": "0x40"}),
    ])
    _, snap = await harness.client("tok-carol")
    t1 = _terminal(snap, "T1")
    assert t1["balance"] == 2500 and t1["doorsOpen"] == ["main"]
    assert t1["tilt"]["kind"] == "reel" and (t1["bank"], t1["area"]) == ("B1", "Main floor")
    assert _terminal(snap, "T3")["bank"] is None
    await publish_all(term, [event_frame("T1", 6, "betPlaced", data={"amount": 100, "games": 1})])
    _, snap = await harness.client("tok-carol")
    assert _terminal(snap, "T1")["tilt"] is None  # playing again: the tilt has cleared
    await term.close()
    await harness.restart()  # the same state, rebuilt from the store
    _, snap = await harness.client("tok-carol")
    t1 = _terminal(snap, "T1")
    assert (t1["balance"], t1["doorsOpen"], t1["tilt"]) == (2500, ["main"], None)
    del alice


async def test_actions_logins_and_results_are_in_the_audit_trail(harness: HubHarness) -> None:
    hub = harness.hub
    assert hub is not None
    term, _ = await harness.terminal("T1")
    alice, _ = await harness.client("tok-alice")
    await alice.send(wire.action("a1", "T1", "unlock", reason="attendant checked the door"))
    await term.recv_type("action")
    await term.send(wire.action_ack("a1", "T1", wire.ActionAckStatus.ACCEPTED))
    await term.send(wire.action_result("a1", "T1", wire.ActionStatus.FAILED, error="jammed"))
    await alice.recv_type("actionResult")
    await alice.send(wire.action("a2", "T2", "lock", reason="offline lock"))  # queued
    await alice.recv_until(lambda m: m["type"] == "actionAck" and m["id"] == "a2")
    bad = await harness.connect("/ws/client")
    await bad.send_raw(wire.encode(wire.auth("wrong")))
    await bad.closed()
    audit = await http_json(hub, "/api/audit", "tok-alice")
    kinds = [e["kind"] for e in audit["entries"]]
    assert kinds.count("login") == 1 and kinds.count("loginRefused") == 1
    actions = {e["subject"]: e for e in audit["entries"] if e["kind"] == "action"}
    a1, a2 = actions["a1"], actions["a2"]
    assert (a1["who"], a1["what"], a1["terminalId"]) == ("alice", "unlock", "T1")
    assert a1["reason"] == "attendant checked the door"
    assert a1["result"] == "failed" and a1["detail"]["error"] == "jammed"
    assert (a2["result"], a2["reason"]) == ("queued", "offline lock")
    status = await http_json(hub, "/api/audit?kind=action&terminal=T2", "tok-alice")
    assert [e["subject"] for e in status["entries"]] == ["a2"]
