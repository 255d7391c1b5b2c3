"""Operator actions: routing, queueing for offline terminals, expiry, refusals, signatures."""

from __future__ import annotations

import time
from pathlib import Path

from api import wire
from tests.support.hub import HubHarness


def _in(seconds: float) -> str:
    return wire.format_timestamp(time.time() + seconds)


async def test_action_to_a_connected_terminal_and_its_result(harness: HubHarness) -> None:
    alice, _ = await harness.client("tok-alice")
    bob, _ = await harness.client("tok-bob")
    term, _ = await harness.terminal("T1")
    # T1's state (online, not locked) is broadcast once its deviceOnline is stored, which
    # may be after everything below on a busy machine: wait for it, so that the last check
    # (nothing more relayed) sees only what the actions caused.
    for peer in (alice, bob):
        assert (await peer.recv_terminal("T1", online=True))["lockReasons"] == []
    await alice.send(wire.action("a1", "T1", "lock", {"reason": "audit"}, expires_at=_in(60)))
    ack = await alice.recv_type("actionAck")
    assert ack == {"type": "actionAck", "id": "a1", "terminalId": "T1", "action": "lock",
                   "status": "sent"}
    assert (await bob.recv_type("actionAck"))["status"] == "sent"
    forwarded = await term.recv_type("action")
    assert forwarded["id"] == "a1" and forwarded["action"] == "lock"
    assert forwarded["params"] == {"reason": "audit"} and forwarded["from"] == "alice"
    assert "signature" not in forwarded  # this hub holds no action key

    await term.send(wire.action_ack("a1", "T1", wire.ActionAckStatus.ACCEPTED))
    await term.send(wire.action_result("a1", "T1", wire.ActionStatus.SUCCEEDED,
                                       result={"locked": True}))
    for peer in (alice, bob):
        relayed = await peer.recv_type("actionAck")
        assert (relayed["status"], relayed["action"]) == ("accepted", "lock")
        # A succeeded lock is the host lock state at once, broadcast before its result.
        assert (await peer.recv_terminal("T1", locked=True))["lockReasons"] == ["host"]
        result = await peer.recv()
        # The terminal did not name the action; the hub does, for its clients.
        assert result == {"type": "actionResult", "id": "a1", "terminalId": "T1",
                          "action": "lock", "status": "succeeded", "result": {"locked": True}}
    assert harness.hub is not None
    stored = harness.hub.store.get_action("a1")
    assert stored is not None and stored.status == "succeeded" and stored.sender == "alice"
    # A re-sent result (after a reconnect) is not relayed twice; a reply for an unknown
    # action or from another terminal is refused.
    await term.send(wire.action_result("a1", "T1", wire.ActionStatus.SUCCEEDED))
    await term.send(wire.action_result("zzz", "T1", wire.ActionStatus.FAILED, error="x"))
    assert (await term.recv_type("error"))["code"] == "not_found"
    await term.send(wire.action_ack("a1", "T2", wire.ActionAckStatus.ACCEPTED))
    assert (await term.recv_type("error"))["code"] == "forbidden"
    assert [m["type"] for m in await alice.sync()] == []


async def test_a_rejected_ack_is_followed_by_its_result(harness: HubHarness) -> None:
    """A terminal that refuses an action acks "rejected" and still sends one actionResult;
    the operator must get both (the ack status is not the settled result)."""
    alice, _ = await harness.client("tok-alice")
    term, _ = await harness.terminal("T1")
    await alice.send(wire.action("r1", "T1", "lock", expires_at=_in(60)))
    assert (await alice.recv_type("actionAck"))["status"] == "sent"
    await term.recv_type("action")
    await term.send(wire.action_ack("r1", "T1", wire.ActionAckStatus.REJECTED,
                                    "bad_message: unknown parameter"))
    await term.send(wire.action_result("r1", "T1", wire.ActionStatus.REJECTED,
                                       error="bad_message: unknown parameter"))
    assert (await alice.recv_type("actionAck"))["status"] == "rejected"
    result = await alice.recv_type("actionResult")
    assert (result["id"], result["status"]) == ("r1", "rejected")
    assert result["error"] == "bad_message: unknown parameter"
    assert harness.hub is not None
    stored = harness.hub.store.get_action("r1")
    assert stored is not None and stored.result is not None


async def test_refused_actions(harness: HubHarness) -> None:
    carol, _ = await harness.client("tok-carol")
    alice, _ = await harness.client("tok-alice")
    await carol.send(wire.action("v1", "T1", "lock"))
    assert await carol.recv_type("error") == {
        "type": "error", "code": "forbidden", "id": "v1",
        "message": "only an operator may send actions"}
    await alice.send(wire.action("u1", "T9", "lock"))
    err = await alice.recv_type("error")
    assert (err["code"], err["id"]) == ("unknown_terminal", "u1")
    await alice.send(wire.action("e1", "T1", "lock", expires_at=_in(-5)))
    assert (await alice.recv_type("error"))["code"] == "expired"
    await alice.send(wire.action("d1", "T1", "lock", expires_at=_in(60)))
    assert (await alice.recv_type("actionAck"))["status"] == "queued"
    await alice.send(wire.action("d1", "T1", "unlock"))
    err = await alice.recv_type("error")
    assert (err["code"], err["id"]) == ("duplicate", "d1")
    assert harness.hub is not None
    assert harness.hub.store.get_action("v1") is None
    assert harness.hub.store.get_action("e1") is None


async def test_queued_action_is_delivered_when_the_terminal_connects(
    harness: HubHarness,
) -> None:
    alice, _ = await harness.client("tok-alice")
    await alice.send(wire.action("q1", "T3", "unlock", expires_at=_in(60)))
    queued = await alice.recv_type("actionAck")
    assert (queued["status"], queued["action"]) == ("queued", "unlock")
    term, _ = await harness.terminal("T3")
    forwarded = await term.recv_type("action")
    assert forwarded["id"] == "q1" and forwarded["action"] == "unlock"
    sent = await alice.recv_type("actionAck")
    assert (sent["status"], sent["action"]) == ("sent", "unlock")
    await term.send(wire.action_result("q1", "T3", wire.ActionStatus.FAILED,
                                       error="machine not responding"))
    result = await alice.recv_type("actionResult")
    assert result["status"] == "failed" and result["error"] == "machine not responding"
    assert result["action"] == "unlock"


async def test_queued_action_expires_with_a_result_to_the_operator(
    harness: HubHarness,
) -> None:
    alice, _ = await harness.client("tok-alice")
    await alice.send(wire.action("x1", "T3", "lock", expires_at=_in(0.3)))
    assert (await alice.recv_type("actionAck"))["status"] == "queued"
    result = await alice.recv_type("actionResult", timeout=5)
    assert result["id"] == "x1" and result["status"] == "expired" and result["action"] == "lock"
    assert harness.hub is not None
    stored = harness.hub.store.get_action("x1")
    assert stored is not None and stored.status == "expired"
    term, _ = await harness.terminal("T3")  # nothing is delivered after expiry
    assert [m["type"] for m in await term.sync()] == []


async def test_queued_action_survives_a_hub_restart(harness: HubHarness) -> None:
    alice, _ = await harness.client("tok-alice")
    await alice.send(wire.action("r1", "T3", "lock"))  # no expiresAt: the queue TTL applies
    assert (await alice.recv_type("actionAck"))["status"] == "queued"
    await harness.restart()
    term, _ = await harness.terminal("T3")
    assert (await term.recv_type("action"))["id"] == "r1"


async def test_hub_signs_forwarded_actions_when_it_holds_the_key(
    harness: HubHarness, tmp_path: Path,
) -> None:
    key_file = tmp_path / "action.key"
    key_file.write_text("shared-secret\n")
    await harness.restart(action_key_file=key_file)
    alice, _ = await harness.client("tok-alice")
    term, _ = await harness.terminal("T1")
    await alice.send(wire.action("s1", "T1", "lock", {"n": 1}))
    forwarded = await term.recv_type("action")
    wire.verify_action(b"shared-secret", forwarded, time.time(), 300)
    # An action signed with another key is refused by the hub.
    forged = wire.sign_action(b"other", wire.action("s2", "T1", "unlock",
                                                    issued_at=_in(0)))
    await alice.send(forged)
    err = await alice.recv_type("error")
    assert (err["code"], err["id"]) == ("bad_signature", "s2")
    # One signed with the right key is forwarded unchanged.
    good = wire.sign_action(b"shared-secret", wire.action("s3", "T1", "unlock",
                                                          issued_at=_in(0)))
    await alice.send(good)
    forwarded = await term.recv_type("action")
    assert forwarded["signature"] == good["signature"]


async def test_an_unsigned_action_s_issued_at_is_held_to_the_window(
    harness: HubHarness, tmp_path: Path,
) -> None:
    """protocol.md §5 `action`: with the key, the hub signs an unsigned action with the
    operator's `issuedAt`; one outside `signature_window` is refused (`bad_signature`), as
    it is when signed, instead of being forwarded for the terminal to refuse."""
    key_file = tmp_path / "action.key"
    key_file.write_text("shared-secret\n")
    await harness.restart(action_key_file=key_file, signature_window=60)
    alice, _ = await harness.client("tok-alice")
    term, _ = await harness.terminal("T1")
    await alice.send(wire.action("w1", "T1", "lock", issued_at=_in(-3600)))
    err = await alice.recv_type("error")
    assert (err["code"], err.get("id")) == ("bad_signature", "w1")
    assert harness.hub is not None and harness.hub.store.get_action("w1") is None
    issued = _in(-10)
    await alice.send(wire.action("w2", "T1", "lock", issued_at=issued))
    forwarded = await term.recv_type("action")
    assert (forwarded["id"], forwarded["issuedAt"]) == ("w2", issued)
    wire.verify_action(b"shared-secret", forwarded, time.time(), 60)


async def test_a_float_in_params_the_hub_must_sign_is_refused_with_the_action_id(
    harness: HubHarness, tmp_path: Path,
) -> None:
    """Canonical JSON holds integers only (protocol.md §7): a hub that signs refuses a
    float in ``params`` with ``bad_message``, and like every refusal of an action (§5, §6)
    the error carries the action's id; nothing is stored under it."""
    key_file = tmp_path / "action.key"
    key_file.write_text("shared-secret\n")
    await harness.restart(action_key_file=key_file)
    alice, _ = await harness.client("tok-alice")
    await alice.send(wire.action("f1", "T3", "lock", {"level": 1.5}))
    err = await alice.recv_type("error")
    assert (err["code"], err.get("id")) == ("bad_message", "f1")
    assert harness.hub is not None and harness.hub.store.get_action("f1") is None


async def test_an_answer_that_is_not_a_success_must_say_why(harness: HubHarness) -> None:
    """``actionAck`` ``rejected`` and an ``actionResult`` other than ``succeeded`` carry an
    ``error`` (protocol.md §4): without it the terminal's answer is ``bad_message``, with the
    action's id, and nothing is relayed to the operators."""
    alice, _ = await harness.client("tok-alice")
    term, _ = await harness.terminal("T1")
    await alice.send(wire.action("w1", "T1", "lock", expires_at=_in(60)))
    assert (await alice.recv_type("actionAck"))["status"] == "sent"
    await term.recv_type("action")
    # send_raw: frames the schemas refuse are not recorded for the traffic check
    await term.send_raw(wire.encode({"type": "actionAck", "id": "w1", "terminalId": "T1",
                                     "status": "rejected"}))
    err = await term.recv_type("error")
    assert (err["code"], err.get("id")) == ("bad_message", "w1")
    await term.send_raw(wire.encode({"type": "actionResult", "id": "w1", "terminalId": "T1",
                                     "status": "failed"}))
    err = await term.recv_type("error")
    assert (err["code"], err.get("id")) == ("bad_message", "w1")
    assert [m["type"] for m in await alice.sync()
            if m["type"] in ("actionAck", "actionResult")] == []
    await term.send(wire.action_result("w1", "T1", wire.ActionStatus.FAILED,
                                       error="machine not responding"))
    assert (await alice.recv_type("actionResult"))["error"] == "machine not responding"


async def test_a_terminal_acking_with_the_hubs_own_status_is_a_bad_message(
    harness: HubHarness,
) -> None:
    """A terminal's ``actionAck`` is ``accepted`` or ``rejected`` (protocol.md §4): ``sent``
    or ``queued`` is ``bad_message`` whatever the id (an unknown id was ``not_found``)."""
    term, _ = await harness.terminal("T1")
    for status in ("sent", "queued"):
        await term.send_raw(wire.encode({"type": "actionAck", "id": "nope",
                                         "terminalId": "T1", "status": status}))
        err = await term.recv_type("error")
        assert (err["code"], err.get("id")) == ("bad_message", "nope")
