"""Terminal connections: hello/welcome, storage, cumulative acks, resume, roles, bad input."""

from __future__ import annotations

from dataclasses import replace

import pytest
from websockets.exceptions import InvalidStatus

from api import wire
from tests.support.event_data import assert_documented
from tests.support.hub import HubHarness, event_frame
from tests.support.waits import wait_for


async def test_hello_welcome_events_are_stored_and_acked(harness: HubHarness) -> None:
    term, welcome = await harness.terminal("T1")
    assert welcome["ackedSeq"] == 0 and welcome["terminalId"] == "T1"
    for seq in (1, 2, 3):
        await term.send(event_frame("T1", seq))
        assert await term.recv() == {"type": "ack", "upTo": seq}
    assert harness.hub is not None
    stored = harness.hub.store.events("T1")
    terminal_events = [e["id"] for e in stored if e["event"] == "betPlaced"]
    assert terminal_events == ["T1-1", "T1-2", "T1-3"]


async def test_resume_after_hub_restart_on_the_same_database(harness: HubHarness) -> None:
    term, _ = await harness.terminal("T1")
    for seq in range(1, 6):
        await term.send(event_frame("T1", seq))
    ack, _ = await term.recv_until(lambda m: m.get("upTo") == 5)
    assert ack["type"] == "ack"
    await harness.restart()
    term2, welcome = await harness.terminal("T1", last_seq=5)
    assert welcome["ackedSeq"] == 5
    await term2.send(event_frame("T1", 6))
    assert await term2.recv() == {"type": "ack", "upTo": 6}


async def test_duplicates_are_acked_but_stored_and_fanned_out_once(
    harness: HubHarness,
) -> None:
    viewer, _ = await harness.client("tok-carol", subscribe={"channels": ["game"]})
    term, _ = await harness.terminal("T1")
    for seq in (1, 2):
        await term.send(event_frame("T1", seq))
        await term.recv_type("ack")
    await term.close()
    # The terminal did not see the acks (say): it resends 1 and 2, then 3.
    term2, welcome = await harness.terminal("T1", last_seq=3)
    assert welcome["ackedSeq"] == 2
    for seq in (1, 2, 3):
        await term2.send(event_frame("T1", seq))
    # Cumulative acks, one per stored batch: never past what is stored, never going down.
    last, before = await term2.recv_until(lambda m: m.get("upTo") == 3)
    acks = [m["upTo"] for m in before if m["type"] == "ack"] + [last["upTo"]]
    assert acks == sorted(acks) and set(acks) <= {2, 3}
    last, before = await viewer.recv_until(lambda m: m.get("id") == "T1-3")
    ids = [m["id"] for m in before if m["type"] == "event"] + [last["id"]]
    assert ids == ["T1-1", "T1-2", "T1-3"]
    assert harness.hub is not None
    assert harness.hub.stats.duplicates == 2
    assert [e["seq"] for e in harness.hub.store.events("T1") if e["event"] == "betPlaced"] == [
        1, 2, 3]


async def test_a_skipped_seq_does_not_stall_the_cumulative_ack(harness: HubHarness) -> None:
    term, _ = await harness.terminal("T1")
    await term.send(event_frame("T1", 1))
    assert (await term.recv())["upTo"] == 1
    await term.send(event_frame("T1", 4))  # 2 and 3 were dropped by the terminal's outbox cap
    assert (await term.recv())["upTo"] == 4


async def test_unknown_or_missing_token_is_refused_before_the_upgrade(
    harness: HubHarness,
) -> None:
    for token, status in (("wrong", 401), (None, 401), ("tok-alice", 403)):
        with pytest.raises(InvalidStatus) as info:
            await harness.connect("/ws/terminal", token)
        assert info.value.response.status_code == status


async def test_hello_as_another_terminal_is_forbidden(harness: HubHarness) -> None:
    peer = await harness.connect("/ws/terminal", "tok-t1")
    await peer.send(wire.hello("T2", "test", 0))
    err = await peer.recv()
    assert err["type"] == "error" and err["code"] == "forbidden"
    assert await peer.closed() == 1008


async def test_publishing_as_another_terminal_is_refused(harness: HubHarness) -> None:
    term, _ = await harness.terminal("T1")
    await term.send(event_frame("T2", 1))
    err = await term.recv()
    assert err == {"type": "error", "code": "forbidden", "message": err["message"],
                   "id": "T2-1"}
    assert harness.hub is not None
    assert harness.hub.store.events("T2") == []
    await term.send(event_frame("T1", 1))  # the connection keeps serving
    assert (await term.recv())["upTo"] == 1


@pytest.mark.parametrize("name", ["deviceOnline", "deviceOffline"])
async def test_the_hubs_own_events_are_refused_from_a_terminal(harness: HubHarness,
                                                               name: str) -> None:
    term, _ = await harness.terminal("T1")
    await term.send(event_frame("T1", 1, name, data={"terminalId": "T1", "lostAt": "x"}))
    err = await term.recv()
    assert err == {"type": "error", "code": "forbidden", "message": err["message"],
                   "id": "T1-1"}
    await term.send(event_frame("T1", 2))  # the connection keeps serving
    assert (await term.recv())["upTo"] == 2
    assert harness.hub is not None
    stored = harness.hub.store.events("T1")
    assert [e["id"] for e in stored if e["event"] == name and e["id"].startswith("T1-")] == []
    assert [e["id"] for e in stored if e["event"] == "betPlaced"] == ["T1-2"]


async def test_unsupported_protocol_version(harness: HubHarness) -> None:
    peer = await harness.connect("/ws/terminal", "tok-t1")
    hello = wire.hello("T1", "test", 0) | {"protocol": 2}
    await peer.send(hello)
    err = await peer.recv()
    assert err["code"] == "unsupported_version"
    assert await peer.closed() == 4003


async def test_messages_before_hello_get_an_error(harness: HubHarness) -> None:
    peer = await harness.connect("/ws/terminal", "tok-t1")
    await peer.send(event_frame("T1", 1))
    assert (await peer.recv())["code"] == "bad_message"
    await peer.send(wire.hello("T1", "test", 0))
    assert (await peer.recv())["type"] == "welcome"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('{"type": "launchMissiles"}', "unknown_type"),
        ('{"type": "subscribe"}', "unknown_type"),  # a client message on the terminal path
        ('{"type": "event", "id": "T1-1", "seq": "1", "channel": "game", "terminalId": "T1",'
         ' "event": "betPlaced", "timestamp": "2026-01-01T00:00:00.000Z", "data": {}}',
         "bad_message"),
        ('{"type": "event", "id": "T1-1", "seq": 1, "channel": "cash", "terminalId": "T1",'
         ' "event": "betPlaced", "timestamp": "2026-01-01T00:00:00.000Z", "data": {}}',
         "bad_message"),
        ('{"type": "event", "id": "T1-1", "seq": 1, "channel": "game", "terminalId": "T1",'
         ' "event": "betPlaced", "timestamp": "yesterday", "data": {}}', "bad_message"),
        (b"\x00\x01", "bad_message"),
        ('{"type": "ping", "pad": "' + "x" * 5000 + '"}', "too_large"),
    ],
)
async def test_malformed_input_gets_an_error_and_changes_nothing(
    harness: HubHarness, raw: str | bytes, code: str,
) -> None:
    assert harness.hub is not None
    term, _ = await harness.terminal("T1")
    harness.hub.config = replace(harness.hub.config, max_message_bytes=4096)
    await term.send_raw(raw)
    err = await term.recv()
    assert err["type"] == "error" and err["code"] == code, err
    assert [e for e in harness.hub.store.events("T1") if e["event"] == "betPlaced"] == []
    await term.send(event_frame("T1", 1))
    assert (await term.recv())["upTo"] == 1


async def test_a_frame_above_max_frame_bytes_closes_with_1009(harness: HubHarness) -> None:
    await harness.restart(max_frame_bytes=64 * 1024, max_message_bytes=32 * 1024)
    term, _ = await harness.terminal("T1")
    await term.send_raw('{"type": "ping", "pad": "' + "x" * 100_000 + '"}')
    assert await term.closed() == 1009


async def test_device_offline_and_online_events(harness: HubHarness) -> None:
    watcher, _ = await harness.client("tok-carol", subscribe={"channels": ["alerts"]})
    term, _ = await harness.terminal("T1")
    online = await watcher.recv_until(lambda m: m.get("event") == "deviceOnline")
    frame = online[0]
    assert frame["terminalId"] == "T1" and frame["data"]["terminalId"] == "T1"
    assert frame["id"] == f"hub-{frame['seq']}"
    await term.close()
    offline, _ = await watcher.recv_until(lambda m: m.get("event") == "deviceOffline")
    assert offline["data"]["terminalId"] == "T1"
    wire.parse_timestamp(offline["data"]["lostAt"])
    assert offline["seq"] > frame["seq"]
    assert_documented([frame, offline])  # docs/schemas/events/data.json
    assert harness.hub is not None
    names = [e["event"] for e in harness.hub.store.events("T1")]
    assert names == ["deviceOnline", "deviceOffline"]
    state = harness.hub.floor.terminals["T1"]
    assert state.online is False


async def test_a_newer_connection_replaces_the_old_one_without_offline_event(
    harness: HubHarness,
) -> None:
    watcher, _ = await harness.client("tok-carol", subscribe={"channels": ["alerts"]})
    old, _ = await harness.terminal("T1")
    new, _ = await harness.terminal("T1")
    assert await old.closed() == 4002
    await new.send(event_frame("T1", 1, "doorOpened", data={"door": "slot"}))
    _, before = await watcher.recv_until(lambda m: m.get("event") == "doorOpened")
    assert [m["event"] for m in before if m["type"] == "event"] == ["deviceOnline"]
    assert harness.hub is not None
    await wait_for(lambda: harness.hub is not None and harness.hub.floor.terminals["T1"].online)


async def test_a_terminal_may_not_use_hub_event_ids(harness: HubHarness) -> None:
    term, _ = await harness.terminal("T1")
    frame = event_frame("T1", 1) | {"id": "hub-1"}
    await term.send(frame)
    err = await term.recv()
    assert (err["code"], err["id"]) == ("bad_message", "hub-1")


async def test_stopping_the_hub_closes_connections_with_1001(harness: HubHarness) -> None:
    term, _ = await harness.terminal("T1")
    viewer, _ = await harness.client("tok-carol")
    await harness.stop()
    assert await term.closed() == 1001
    assert await viewer.closed() == 1001
