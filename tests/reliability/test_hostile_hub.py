"""Hostile input at the hub over real connections: fuzzed frames on both paths and the
security cases. Each bad frame gets an ``error`` with a code from the closed list (never
``internal``, which would mean a handler broke); nothing is stored, forwarded or executed;
the connection and the hub keep serving."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from api import wire
from tests.reliability.hostile_frames import NOW, mutate, templates
from tests.reliability.reliability_kit import long_or_short
from tests.support.hub import HubHarness
from tests.support.tokens import ACTION_KEY, OPERATOR, VIEWER

CODES = {c.value for c in wire.ErrorCode}


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with HubHarness(tmp_path, action_key=ACTION_KEY, max_message_bytes=64 * 1024,
                          max_frame_bytes=256 * 1024) as r:
        yield r


def errors_in(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == "error"]


async def still_serving(rig: HubHarness) -> None:
    """A fresh client is served and a terminal's valid event is stored and acked."""
    # A terminal's connection is broadcast once its deviceOnline is stored: maybe only
    # after the viewer below connected, on a busy machine, and it would get that state.
    await rig.published()
    viewer, _ = await rig.client(VIEWER, header=True)
    assert await viewer.sync() == []
    await viewer.close()
    assert rig.hub is not None
    t2, welcome = await rig.terminal("T2")
    seq = int(welcome["ackedSeq"]) + 1
    await t2.send(wire.event(event_id=f"T2-{seq}", seq=seq, channel="game", terminal_id="T2",
                             name="gameStarted", timestamp=NOW, data={}))
    ack = await t2.recv_type("ack")
    assert ack["upTo"] == seq
    await t2.close()


async def test_fuzzed_terminal_frames_get_codes_and_the_connection_keeps_serving(
        rig: HubHarness) -> None:
    rng = random.Random(7)
    peer, _ = await rig.terminal("T1")
    seeds = templates("T1")["terminal"]
    codes: set[str] = set()
    for _ in range(long_or_short(3000, 250)):
        await peer.send_raw(mutate(rng, rng.choice(seeds)))
        for err in errors_in(await peer.sync()):
            assert err["code"] in CODES and err["code"] != "internal", err
            codes.add(err["code"])
    assert {"bad_json", "bad_message", "unknown_type"} <= codes
    assert rig.hub is not None
    # Whatever the mutations named as terminalId, only T1's own events were stored from this
    # connection: every stored event, hub-made ones (deviceOnline, id hub-<n>) aside, is
    # T1's and carries a T1 id.
    stored = [f for f in rig.hub.store.events() if not f["id"].startswith("hub-")]
    assert stored, "the valid mutations stored nothing: the check below would prove nothing"
    assert {f["terminalId"] for f in stored} == {"T1"}
    assert all(f["id"].startswith("T1-") for f in stored), [f["id"] for f in stored]
    await still_serving(rig)


async def test_fuzzed_client_frames_get_codes_and_the_connection_keeps_serving(
        rig: HubHarness) -> None:
    rng = random.Random(11)
    terminal_peer, _ = await rig.terminal("T1")
    op, _ = await rig.client(OPERATOR, header=True)
    seeds = templates("T1")["client"]
    for _ in range(long_or_short(3000, 250)):
        await op.send_raw(mutate(rng, rng.choice(seeds)))
        for err in errors_in(await op.sync()):
            assert err["code"] in CODES and err["code"] != "internal", err
    # Every action that reached the terminal carries a signature that verifies.
    for frame in await terminal_peer.sync():
        if frame["type"] == "action":
            wire.verify_action(ACTION_KEY, frame, wire.parse_timestamp(frame["issuedAt"]))
    await still_serving(rig)


async def test_wrong_token_is_refused_before_the_upgrade(rig: HubHarness) -> None:
    for path, token in (("/ws/terminal", "nope"), ("/ws/terminal", None),
                        ("/ws/terminal", VIEWER), ("/ws/client", "tok-t1")):
        with pytest.raises(InvalidStatus) as info:
            await rig.connect(path, token)
        assert info.value.response.status_code in (401, 403)
    await still_serving(rig)


async def test_wrong_token_in_the_auth_message_is_unauthorized(rig: HubHarness) -> None:
    peer = await rig.connect("/ws/client")
    await peer.send(wire.auth("not-a-token"))
    err = await peer.recv()
    assert (err["type"], err["code"]) == ("error", "unauthorized")
    assert await peer.closed() == wire.CloseCode.POLICY_VIOLATION
    await still_serving(rig)


async def test_a_terminal_may_not_publish_as_another(rig: HubHarness) -> None:
    watcher, _ = await rig.client(OPERATOR, header=True, subscribe={"terminals": ["T2"]})
    peer, _ = await rig.terminal("T1")
    await peer.send(wire.event(event_id="T2-1", seq=1, channel="cash", terminal_id="T2",
                               name="billAccepted", timestamp=NOW, data={"amount": 10000}))
    err = await peer.recv_type("error")
    assert err["code"] == "forbidden"
    assert rig.hub is not None and rig.hub.store.events("T2") == []
    assert [f for f in await watcher.sync() if f["type"] == "event"
            and f["event"] == "billAccepted"] == []
    # Nor say hello as another.
    other = await rig.connect("/ws/terminal", "tok-t1")
    await other.send(wire.hello("T2", "x", 0))
    assert (await other.recv())["code"] == "forbidden"
    assert await other.closed() == wire.CloseCode.POLICY_VIOLATION
    await still_serving(rig)


async def test_a_viewer_may_not_act_or_acknowledge(rig: HubHarness) -> None:
    t1, _ = await rig.terminal("T1")
    await t1.send(wire.event(event_id="T1-1", seq=1, channel="alerts", terminal_id="T1",
                             name="doorOpened", timestamp=NOW, data={"door": "slot"}))
    await t1.recv_type("ack")
    viewer, _ = await rig.client(VIEWER, header=True)
    await viewer.send(wire.action("v-1", "T1", "unlock", {"address": 1}, issued_at=NOW))
    await viewer.send(wire.ack_alert("T1-1", request_id="v-ack"))
    codes = [e["code"] for e in errors_in(await viewer.sync())]
    assert codes == ["forbidden", "forbidden"]
    assert [f for f in await t1.sync() if f["type"] == "action"] == []
    assert rig.hub is not None and rig.hub.store.get_action("v-1") is None
    await still_serving(rig)


async def test_forged_expired_and_replayed_actions_are_refused_at_the_hub(rig: HubHarness) -> None:
    t1, _ = await rig.terminal("T1")
    op, _ = await rig.client(OPERATOR, header=True)
    now = wire.format_timestamp(__import__("time").time())
    forged = wire.sign_action(b"wrong-key", wire.action("x-1", "T1", "unlock", {"address": 1},
                                                         issued_at=now))
    await op.send(forged)
    expired = wire.action("x-2", "T1", "unlock", {"address": 1},
                          expires_at="2020-01-01T00:00:00.000Z")
    await op.send(expired)
    good = wire.action("x-3", "T1", "lock", {"address": 1})
    await op.send(good)
    await op.send(good)  # replayed id
    await op.send(wire.action("x-4", "T9", "lock", {"address": 1}))  # no such terminal
    codes = [e["code"] for e in errors_in(await op.sync())]
    assert codes == ["bad_signature", "expired", "duplicate", "unknown_terminal"]
    actions = [f for f in await t1.sync() if f["type"] == "action"]
    assert [a["id"] for a in actions] == ["x-3"]  # once, signed by the hub
    wire.verify_action(ACTION_KEY, actions[0], wire.parse_timestamp(actions[0]["issuedAt"]))
    await still_serving(rig)


async def test_oversized_messages(rig: HubHarness) -> None:
    op, _ = await rig.client(OPERATOR, header=True)
    big = wire.encode(wire.ping("p"))[:-1] + ', "pad": "' + "x" * (70 * 1024) + '"}'
    await op.send_raw(big)  # over max_message_bytes, within the frame limit
    assert [e["code"] for e in errors_in(await op.sync())] == ["too_large"]
    huge = wire.encode(wire.ping("p"))[:-1] + ', "pad": "' + "x" * (300 * 1024) + '"}'
    await op.send_raw(huge)  # over max_frame_bytes: the library closes with 1009
    assert await op.closed() == wire.CloseCode.MESSAGE_TOO_BIG
    await still_serving(rig)


async def test_lone_surrogate_in_action_params_is_refused_with_a_code(rig: HubHarness) -> None:
    t1, _ = await rig.terminal("T1")
    op, _ = await rig.client(OPERATOR, header=True)
    text = wire.encode(wire.action("u-1", "T1", "lock", {"address": 1}))
    await op.send_raw(text.replace('"address":1', '"address":1,"n":"\\ud800"'))
    errors = errors_in(await op.sync())
    assert [(e["code"], e.get("id")) for e in errors] == [("bad_message", "u-1")]
    assert "'params.n'" in errors[0]["message"]
    # Nothing was forwarded or recorded: the id is still free for a genuine action.
    assert [f for f in await t1.sync() if f["type"] == "action"] == []
    await op.send(wire.action("u-1", "T1", "lock", {"address": 1}))
    assert errors_in(await op.sync()) == []
    assert [f["id"] for f in await t1.sync() if f["type"] == "action"] == ["u-1"]
    await still_serving(rig)


async def test_lone_surrogate_in_event_data_is_refused_and_later_events_are_stored(
        rig: HubHarness) -> None:
    t1, welcome = await rig.terminal("T1")
    seq = int(welcome["ackedSeq"]) + 1
    bad = wire.encode(wire.event(event_id=f"T1-{seq}", seq=seq, channel="game",
                                 terminal_id="T1", name="gameStarted", timestamp=NOW,
                                 data={"paytable": "x"}))
    await t1.send_raw(bad.replace('"x"', '"\\udc00"'))
    errors = errors_in(await t1.sync())
    assert [(e["code"], e.get("id")) for e in errors] == [("bad_message", f"T1-{seq}")]
    assert "'data.paytable'" in errors[0]["message"]
    await t1.send(wire.event(event_id=f"T1-{seq + 1}", seq=seq + 1, channel="game",
                             terminal_id="T1", name="gameStarted", timestamp=NOW, data={}))
    assert (await t1.recv_type("ack"))["upTo"] == seq + 1
    assert rig.hub is not None
    assert [f["seq"] for f in rig.hub.store.events("T1") if f["id"].startswith("T1-")] == [
        seq + 1]
    await still_serving(rig)
