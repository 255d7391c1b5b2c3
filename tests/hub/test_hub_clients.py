"""Client connections: auth, filters, snapshots, alert acks, slow consumers."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time

import pytest
from websockets.exceptions import InvalidStatus

from api import wire
from tests.support import ROOT
from tests.support.hub import HubHarness, event_frame, http_json
from tests.support.waits import wait_for


async def test_auth_by_message_gives_auth_ok_and_a_snapshot(harness: HubHarness) -> None:
    peer = await harness.connect("/ws/client")
    await peer.send(wire.auth("tok-alice"))
    assert await peer.recv() == {"type": "authOk", "protocol": 1, "role": "operator",
                                 "name": "alice"}
    snap = await peer.recv()
    assert snap["type"] == "snapshot"
    assert [t["terminalId"] for t in snap["terminals"]] == ["T1", "T2", "T3"]
    assert all(t["online"] is False and t["since"] is None for t in snap["terminals"])
    assert len(snap["coinInPerMinute"]) == 60


async def test_refusals_after_auth_echo_the_request_id(harness: HubHarness) -> None:
    """A second auth and a client's cumulative ack are refused with the request's id in the
    error (protocol.md §6), also though neither message type declares an id field."""
    peer = await harness.connect("/ws/client", "tok-alice")
    await peer.recv_type("snapshot")
    await peer.send({**wire.auth("tok-alice"), "id": "r1"})
    assert await peer.recv() == {"type": "error", "code": "bad_message",
                                 "message": "already authenticated", "id": "r1"}
    await peer.send({**wire.ack(3), "id": "r2"})
    refused = await peer.recv()
    assert (refused["code"], refused.get("id")) == ("bad_message", "r2"), refused
    # Not an id that could be echoed: the error leaves it out (it used to echo 7, an error
    # its own schema refuses).
    await peer.send_raw(wire.encode({**wire.ack(3), "id": 7}))
    refused = await peer.recv()
    assert refused["code"] == "bad_message" and "id" not in refused, refused


async def test_auth_by_header(harness: HubHarness) -> None:
    peer = await harness.connect("/ws/client", "tok-carol")
    assert (await peer.recv())["role"] == "viewer"
    assert (await peer.recv())["type"] == "snapshot"
    with pytest.raises(InvalidStatus) as info:
        await harness.connect("/ws/client", "nope")
    assert info.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as info:
        await harness.connect("/ws/client", "tok-t1")
    assert info.value.response.status_code == 403


async def test_an_unknown_token_at_the_upgrade_is_a_refused_login(harness: HubHarness) -> None:
    """protocol.md §12 audit: `loginRefused` for an unknown token, whether in an `auth`
    message or in the `Authorization` header of the /ws/client upgrade (only the message
    was recorded)."""
    assert harness.hub is not None
    with pytest.raises(InvalidStatus):
        await harness.connect("/ws/client", "nope")
    audit = await http_json(harness.hub, "/api/audit?kind=loginRefused", "tok-alice")
    assert [(e["who"], e["role"], e["result"], e["detail"]) for e in audit["entries"]] == [
        ("(unknown token)", "none", "unauthorized", {"remote": "127.0.0.1"})]


@pytest.mark.parametrize(
    ("first", "code"),
    [
        (wire.auth("wrong-token"), "unauthorized"),
        (wire.auth("tok-t1"), "forbidden"),
        (wire.subscribe(), "unauthorized"),
    ],
)
async def test_auth_failures_get_an_error_and_close_1008(
    harness: HubHarness, first: dict[str, object], code: str,
) -> None:
    peer = await harness.connect("/ws/client")
    await peer.send(first)
    err = await peer.recv()
    assert err["type"] == "error" and err["code"] == code
    assert await peer.closed() == 1008


@pytest.mark.parametrize(
    ("first", "code", "close"),
    [
        (wire.auth("wrong-token"), "unauthorized", 1008),
        (wire.auth("tok-t1"), "forbidden", 1008),
        ({**wire.auth("tok-alice"), "protocol": 2}, "unsupported_version", 4003),
    ],
)
async def test_auth_refusals_echo_the_auth_id(
    harness: HubHarness, first: dict[str, object], code: str, close: int,
) -> None:
    """protocol.md §5 `auth`: an optional `id` is echoed in the error reply (it was dropped
    from these three refusals)."""
    peer = await harness.connect("/ws/client")
    await peer.send({**first, "id": "a1"})
    err = await peer.recv()
    assert (err["type"], err["code"], err.get("id")) == ("error", code, "a1"), err
    assert await peer.closed() == close


async def test_no_auth_in_time_closes_1008(harness: HubHarness) -> None:
    await harness.restart(auth_timeout=0.2)
    peer = await harness.connect("/ws/client")
    assert await peer.closed() == 1008


async def test_subscription_filters(harness: HubHarness) -> None:
    alerts, _ = await harness.client("tok-alice", subscribe={"channels": ["alerts"]})
    bets_t2, _ = await harness.client(
        "tok-bob", subscribe={"events": ["betPlaced"], "terminals": ["T2"]})
    everything, _ = await harness.client("tok-carol", subscribe={})
    nothing, _ = await harness.client("tok-carol")
    t1, _ = await harness.terminal("T1")
    t2, _ = await harness.terminal("T2")
    await t1.send(event_frame("T1", 1, "betPlaced"))
    await t1.send(event_frame("T1", 2, "doorOpened", data={"door": "main"}))
    await t2.send(event_frame("T2", 1, "betPlaced"))
    await t2.send(event_frame("T2", 2, "gameEnded", data={"gameNumber": 1}))
    await t1.recv_until(lambda m: m.get("upTo") == 2)
    await t2.recv_until(lambda m: m.get("upTo") == 2)

    def ids(frames: list[dict[str, object]]) -> list[object]:
        return [m["id"] for m in frames if m["type"] == "event" and m["id"] != "hub-0"
                and not str(m["id"]).startswith("hub-")]

    assert ids(await alerts.sync()) == ["T1-2"]
    assert ids(await bets_t2.sync()) == ["T2-1"]
    got = ids(await everything.sync())  # each terminal in order; terminals interleave
    assert sorted(got, key=str) == ["T1-1", "T1-2", "T2-1", "T2-2"]
    assert [i for i in got if str(i).startswith("T1")] == ["T1-1", "T1-2"]
    assert ids(await nothing.sync()) == []


async def test_subscribe_and_unsubscribe_edit_the_filter_list(harness: HubHarness) -> None:
    peer, _ = await harness.client("tok-carol")
    await peer.send(wire.subscribe(channels=["cash"], request_id="s1"))
    reply = await peer.recv()
    assert reply == {"type": "subscribed", "id": "s1", "filters": [
        {"channels": ["cash"], "events": [], "terminals": []}]}
    await peer.send(wire.subscribe(channels=["cash"]))  # equal filter: no change
    await peer.send(wire.subscribe(events=["tilt"], terminals=["T1"]))
    await peer.recv()
    assert len((await peer.recv())["filters"]) == 2
    await peer.send(wire.subscribe(channels=["cash"], unsubscribe=True))
    assert (await peer.recv())["filters"] == [
        {"channels": [], "events": ["tilt"], "terminals": ["T1"]}]
    await peer.send(wire.subscribe(unsubscribe=True))
    assert (await peer.recv())["filters"] == []
    await peer.send_raw('{"type": "subscribe", "channels": ["casino"]}')
    assert (await peer.recv())["code"] == "bad_message"


async def test_snapshot_and_terminal_state(harness: HubHarness) -> None:
    viewer, _ = await harness.client("tok-carol")
    term, _ = await harness.terminal("T1")
    now = time.time()
    frames = [
        event_frame("T1", 1, "machineLinkUp", data={}),
        event_frame("T1", 2, "betPlaced", data={"amount": 250, "credits": 250,
                                                 "denomination": 1}, timestamp=now),
        event_frame("T1", 3, "betPlaced", data={"amount": 100, "credits": 100,
                                                 "denomination": 1}, timestamp=now),
        event_frame("T1", 4, "winPaid", data={"amount": 500, "credits": 500,
                                               "kind": "machine"}, timestamp=now),
        event_frame("T1", 5, "betPlaced", data={"amount": 999}, timestamp=now - 3 * 86400),
        event_frame("T1", 6, "machineLocked", data={"by": "act-1"}),
        event_frame("T1", 7, "machineLinkDown", data={}),
    ]
    for frame in frames:
        await term.send(frame)
    await term.recv_until(lambda m: m.get("upTo") == 7)
    state_msgs = [m for m in await viewer.sync() if m["type"] == "terminal"]
    latest = state_msgs[-1]["terminal"]
    assert latest["terminalId"] == "T1"
    assert latest["online"] is True and latest["link"] == "down" and latest["locked"] is True
    assert latest["coinInToday"] == 350 and latest["coinOutToday"] == 500
    assert latest["lastEvent"]["id"] == "T1-7"
    assert latest["unackedAlerts"] == 1  # machineLinkDown (deviceOnline, machineLinkUp: all clear)
    await viewer.send(wire.get_state("g1"))
    snap = await viewer.recv_type("snapshot")
    assert snap["id"] == "g1"
    t1 = next(t for t in snap["terminals"] if t["terminalId"] == "T1")
    assert t1 == latest
    assert [e["id"] for e in snap["recent"][:3]] == ["T1-7", "T1-6", "T1-5"]
    assert [e["event"] for e in snap["alerts"]] == ["machineLinkDown"]
    series = snap["coinInPerMinute"]
    assert series[-1]["minute"] == wire.format_timestamp(int(now // 60) * 60)
    assert sum(p["amount"] for p in series) == 350
    # A fresh hub on the same database rebuilds the same state (except the connection).
    await term.close()
    hub = harness.hub
    assert hub is not None
    await wait_for(lambda: not hub.floor.terminals["T1"].online)
    await harness.restart()
    _, snap2 = await harness.client("tok-carol")
    t1_again = next(t for t in snap2["terminals"] if t["terminalId"] == "T1")
    assert t1_again["coinInToday"] == 350 and t1_again["locked"] is True
    assert t1_again["link"] == "down" and t1_again["unackedAlerts"] == 2  # + deviceOffline


async def test_alert_ack_is_stored_and_broadcast(harness: HubHarness) -> None:
    alice, _ = await harness.client("tok-alice")
    bob, _ = await harness.client("tok-bob")
    carol, _ = await harness.client("tok-carol")
    term, _ = await harness.terminal("T1")
    await term.send(event_frame("T1", 1, "doorOpened", data={"door": "main"}))
    await term.send(event_frame("T1", 2, "betPlaced"))
    await term.recv_until(lambda m: m.get("upTo") == 2)

    await carol.send(wire.ack_alert("T1-1", "r0"))
    err = await carol.recv_type("error")
    assert (err["code"], err["id"]) == ("forbidden", "r0")

    await alice.send(wire.ack_alert("T1-1", "r1"))
    for peer in (alice, bob, carol):
        msg = await peer.recv_type("alertAck")
        assert msg["eventId"] == "T1-1" and msg["by"] == "alice"
        assert msg["terminalId"] == "T1"
    state = await bob.recv_type("terminal")
    assert state["terminal"]["unackedAlerts"] == 0  # deviceOnline needs no acknowledgement

    await bob.send(wire.ack_alert("T1-1", "r2"))
    err = await bob.recv_type("error")
    assert (err["code"], err["id"]) == ("duplicate", "r2") and "alice" in err["message"]
    for event_id in ("T1-2", "T1-99"):
        await bob.send(wire.ack_alert(event_id, "r3"))
        assert (await bob.recv_type("error"))["code"] == "not_found"
    assert harness.hub is not None
    assert harness.hub.store.alert_ack("T1-1") == ("alice", msg["at"])
    await alice.send(wire.get_state())
    snap = await alice.recv_type("snapshot")
    assert "T1-1" not in {e["id"] for e in snap["alerts"]}


async def test_a_slow_consumer_is_dropped_and_others_keep_up(harness: HubHarness) -> None:
    await harness.restart(client_queue=4, max_frame_bytes=1 << 20, max_message_bytes=512 * 1024)
    fast, _ = await harness.client("tok-alice", subscribe={"channels": ["game"]})
    # A client that stops reading: its library stops after 1 frame, then TCP buffers fill.
    slow = await harness.connect("/ws/client", max_queue=1, max_size=None)
    await slow.send(wire.auth("tok-bob"))
    await slow.recv()  # authOk
    await slow.recv()  # snapshot
    await slow.send(wire.subscribe(channels=["game"]))
    term, _ = await harness.terminal("T1")
    big = base64.b64encode(os.urandom(150_000)).decode()  # incompressible (permessage-deflate)
    seq = 0
    hub = harness.hub
    while hub.stats.slow_consumers_dropped == 0:
        seq += 1
        assert seq < 400, "the slow client was never dropped"
        await term.send(event_frame("T1", seq, data={"amount": 1, "blob": big}))
        await term.recv_type("ack")
        # the fast client keeps reading everything
        got = await fast.recv_type("event")
        assert got["seq"] == seq
    assert await slow.closed(timeout=10) == 4001
    await term.send(event_frame("T1", seq + 1, data={"amount": 1}))
    assert (await fast.recv_type("event"))["seq"] == seq + 1


async def test_app_level_ping(harness: HubHarness) -> None:
    peer, _ = await harness.client("tok-carol")
    await peer.send(wire.ping("p1"))
    assert await peer.recv() == {"type": "pong", "id": "p1"}
    term, _ = await harness.terminal("T2")
    await term.send(wire.ping())
    assert await term.recv() == {"type": "pong"}


async def test_client_bad_input_keeps_the_connection(harness: HubHarness) -> None:
    peer, _ = await harness.client("tok-alice")
    for raw, code in (("nope", "bad_json"), ('"text"', "bad_message"),
                      ('{"type": "hello", "protocol": 1, "terminalId": "T1", "version": "x",'
                       ' "lastSeq": 0}', "unknown_type"),
                      ('{"type": "ack", "upTo": 3, "eventId": "T1-1"}', "bad_message"),
                      ('{"type": "action", "id": 5, "terminalId": "T1", "action": "lock"}',
                       "bad_message")):
        await peer.send_raw(raw)
        err = await peer.recv_type("error")
        assert err["code"] == code, (raw, err)
    await peer.send(wire.auth("tok-alice"))
    assert (await peer.recv_type("error"))["code"] == "bad_message"
    await peer.send(wire.ping("still-here"))
    assert (await peer.recv())["id"] == "still-here"
    await wait_for(lambda: harness.hub is not None and harness.hub.stats.errors_sent >= 6)


async def test_a_burst_larger_than_the_queues_drops_nobody(harness: HubHarness) -> None:
    """Queues bound what a peer has not read yet, not the size of a burst."""
    hub = await harness.restart(client_queue=20)
    sub, _ = await harness.client("tok-carol", subscribe={"channels": ["game"]})
    received: list[int] = []

    async def read() -> None:
        while len(received) < 200:
            msg = await sub.recv()
            if msg["type"] == "event":
                received.append(msg["seq"])

    reader = asyncio.create_task(read())
    term, _ = await harness.terminal("T1")
    for seq in range(1, 201):  # pipelined: no waiting for acks
        await term.send(event_frame("T1", seq))
    await term.recv_until(lambda m: m.get("upTo") == 200)
    async with asyncio.timeout(5):
        await reader
    assert received == list(range(1, 201))
    assert hub.stats.slow_consumers_dropped == 0


async def test_all_clear_alerts_need_no_acknowledgement(harness: HubHarness) -> None:
    alice, _ = await harness.client("tok-alice")
    term, _ = await harness.terminal("T1")
    names = ["doorOpened", "doorClosed", "powerLost", "powerRestored", "cashboxRemoved",
             "cashboxInstalled", "machineLinkDown", "machineLinkUp", "futureAlarm"]
    for seq, name in enumerate(names, start=1):
        await term.send(wire.event(event_id=f"T1-{seq}", seq=seq, channel="alerts",
                                   terminal_id="T1", name=name,
                                   timestamp=wire.format_timestamp(time.time()), data={}))
    await term.recv_until(lambda m: m.get("upTo") == len(names))
    await alice.send(wire.get_state("g"))
    snap = await alice.recv_type("snapshot")
    open_alerts = {e["event"] for e in snap["alerts"]}
    # Problems (and an alert this hub does not know) are open; "all clear" ones are not.
    assert open_alerts == {"doorOpened", "powerLost", "cashboxRemoved", "machineLinkDown",
                           "futureAlarm"}
    t1 = next(t for t in snap["terminals"] if t["terminalId"] == "T1")
    assert t1["unackedAlerts"] == 5
    assert harness.hub is not None
    online = next(e for e in harness.hub.store.events("T1") if e["event"] == "deviceOnline")
    for event_id in ("T1-2", online["id"]):  # doorClosed, the hub's deviceOnline
        await alice.send(wire.ack_alert(event_id, "r-clear"))
        err = await alice.recv_type("error")
        assert (err["code"], err["id"]) == ("not_found", "r-clear")
        assert "needs no acknowledgement" in err["message"]
    await alice.send(wire.ack_alert("T1-1", "r-door"))
    state = await alice.recv_type("terminal")
    assert state["terminal"]["unackedAlerts"] == 4
    # The count rebuilt from the database after a restart is the same.
    await harness.restart()
    _, snap2 = await harness.client("tok-carol")
    t1_again = next(t for t in snap2["terminals"] if t["terminalId"] == "T1")
    assert t1_again["unackedAlerts"] == 4  # a hub stopping emits no deviceOffline


def test_the_dashboard_knows_the_same_all_clear_alerts() -> None:
    app_js = (ROOT / "hub" / "static" / "app.js").read_text(encoding="utf-8")
    match = re.search(r"const INFORMATIONAL_ALERTS = new Set\(\[([^\]]*)\]\)", app_js)
    assert match is not None
    assert set(re.findall(r'"([A-Za-z]+)"', match.group(1))) == wire.INFORMATIONAL_ALERTS


async def test_a_snapshot_covers_the_terminals_of_the_filters_only(harness: HubHarness) -> None:
    """protocol.md §5 ``getState``: a filter naming terminals narrows the snapshot's
    ``terminals``, ``alerts`` and ``recent`` to them; a filter without ``terminals`` (here
    one by channel) covers every terminal again."""
    door = {"door": "slot", "powerOff": False}
    for terminal in ("T1", "T2"):
        term, _ = await harness.terminal(terminal)
        await term.send(event_frame(terminal, 1, "doorOpened", data=door))
        await term.recv_type("ack")
    await harness.published()
    viewer, snap = await harness.client("tok-carol")
    assert {t["terminalId"] for t in snap["terminals"]} == {"T1", "T2", "T3"}
    await viewer.send(wire.subscribe(terminals=["T1"]))
    await viewer.recv_type("subscribed")
    await viewer.send(wire.get_state("g1"))
    snap = await viewer.recv_type("snapshot")
    assert [t["terminalId"] for t in snap["terminals"]] == ["T1"]
    assert [e["id"] for e in snap["alerts"]] == ["T1-1"]
    assert {e["terminalId"] for e in snap["recent"]} == {"T1"}
    await viewer.send(wire.subscribe(channels=["cash"]))
    await viewer.recv_type("subscribed")
    await viewer.send(wire.get_state("g2"))
    snap = await viewer.recv_type("snapshot")
    assert {t["terminalId"] for t in snap["terminals"]} == {"T1", "T2", "T3"}
    assert {e["id"] for e in snap["alerts"]} == {"T1-1", "T2-1"}
