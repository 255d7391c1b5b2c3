"""Real traffic of every message type, captured on live connections, against docs/schemas."""

from __future__ import annotations

import jsonschema
import pytest

from api import wire
from tests.support.hub import HubHarness, Traffic, event_frame, validate_frame


async def test_one_session_exercises_every_message_type(
    harness: HubHarness, traffic: Traffic,
) -> None:
    alice, _ = await harness.client("tok-alice", subscribe={})
    term, _ = await harness.terminal("T1")
    await term.send(event_frame("T1", 1, "doorOpened", data={"door": "main"}))
    await term.recv_type("ack")
    await alice.recv_until(lambda m: m.get("id") == "T1-1")
    await alice.send(wire.ack_alert("T1-1"))
    await alice.recv_type("alertAck")
    await alice.send(wire.action("a1", "T1", "lock"))
    await term.recv_type("action")
    await term.send(wire.action_ack("a1", "T1", wire.ActionAckStatus.ACCEPTED))
    await term.send(wire.action_result("a1", "T1", wire.ActionStatus.SUCCEEDED))
    await alice.recv_type("actionResult")
    await alice.send(wire.get_state())
    await alice.recv_type("snapshot")
    await alice.send(wire.subscribe(unsubscribe=True))
    await alice.recv_type("subscribed")
    await alice.send(wire.subscribe(channels=["alerts"], start=0))
    assert (await alice.recv_type("replayed"))["count"] == 2  # deviceOnline, doorOpened
    await alice.send(wire.history(channels=["alerts"], limit=1, request_id="h1"))
    assert (await alice.recv_type("historyPage"))["id"] == "h1"
    await alice.send_raw("{oops")
    await alice.recv_type("error")
    await alice.sync()
    expected = {m.value for m in wire.MessageType}
    assert traffic.types() == expected
    # The fixture validates every captured frame at teardown; do it here too, visibly.
    for msg in traffic.frames:
        validate_frame(msg)


def test_the_schemas_reject_what_the_protocol_forbids() -> None:
    bad = [
        {"type": "ack", "upTo": 1, "eventId": "T1-1"},
        {"type": "action", "id": "a", "terminalId": "T1", "action": "lock",
         "signature": "0" * 64},
        {"type": "event", "id": "T1-1", "seq": 0, "channel": "game", "terminalId": "T1",
         "event": "betPlaced", "timestamp": "2026-01-01T00:00:00Z", "data": {}},
        {"type": "error", "code": "teapot", "message": "x"},
        {"type": "subscribe", "channels": ["casino"]},
        {"type": "history", "limit": 201},
        {"type": "historyPage", "events": [], "next": 0, "order": "oldest-first"},
    ]
    for msg in bad:
        with pytest.raises(jsonschema.ValidationError):
            validate_frame(msg)
