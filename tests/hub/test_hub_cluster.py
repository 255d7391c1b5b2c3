"""Several hub instances serving one floor from one PostgreSQL database (hub/cluster.py):
events, actions, alert acknowledgements, lock and online state cross instances; a terminal
moves from one instance to another with no loss and no duplicate. Real WebSocket peers,
instances on port 0 in this process, a throwaway PostgreSQL (tests/support/postgres.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from api import wire
from hub.server import Hub
from tests.support.hub import (
    HubHarness,
    Peer,
    Traffic,
    event_frame,
    publish_all,
    validate_frame,
)
from tests.support.waits import wait_for


@pytest.fixture
async def hubs(tmp_path: Path, pg_url: str, traffic: Traffic
               ) -> AsyncIterator[list[HubHarness]]:
    """Three instances (A, B, C) on one database."""
    harnesses = []
    for name in "abc":
        folder = tmp_path / name
        folder.mkdir()
        h = HubHarness(folder, traffic)
        await h.start(store=pg_url, database=None)
        harnesses.append(h)
    try:
        yield harnesses
    finally:
        for h in harnesses:
            await h.close()
    for msg in traffic.frames:
        validate_frame(msg)


def _hub(h: HubHarness) -> Hub:
    assert h.hub is not None
    return h.hub


async def _online_everywhere(hubs: list[HubHarness], terminal_id: str,
                             online: bool = True) -> None:
    await wait_for(lambda: all(
        (s := _hub(h).floor.terminals.get(terminal_id)) is not None and s.online == online
        for h in hubs))


async def _agree(hubs: list[HubHarness], value: Callable[[Hub], object],
                 expected: object) -> None:
    """Wait until every instance shows ``expected``; on timeout, say what each shows."""
    await wait_for(lambda: all(value(_hub(h)) == expected for h in hubs),
                   what=lambda: f"expected {expected!r} on every instance, got "
                                f"{[value(_hub(h)) for h in hubs]!r}")


async def _events(peer: Peer, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < count:
        got.append(await peer.recv_type("event"))
    return got


async def test_an_event_on_one_instance_reaches_dashboards_on_the_others(
        hubs: list[HubHarness]) -> None:
    a, b, c = hubs
    viewer_b, _ = await b.client("tok-carol", subscribe={"terminals": ["T1"]})
    viewer_c, _ = await c.client("tok-carol", subscribe={"channels": ["game"]})
    term, welcome = await a.terminal("T1")
    assert welcome["ackedSeq"] == 0
    for seq in (1, 2, 3):
        await term.send(event_frame("T1", seq))
    assert (await term.recv_type("ack"))["upTo"] in (1, 2, 3)
    on_b = [e for e in await _events(viewer_b, 4) if e["id"].startswith("T1-")]
    on_c = await _events(viewer_c, 3)
    # B also gets the hub's deviceOnline; the events themselves in the order stored.
    assert [e["id"] for e in on_b] == ["T1-1", "T1-2", "T1-3"]
    assert [e["id"] for e in on_c] == ["T1-1", "T1-2", "T1-3"]
    assert on_c[0] == event_frame("T1", 1) | {"timestamp": on_c[0]["timestamp"],
                                              "cursor": on_c[0]["cursor"]}
    # The same cursors (row ids) on every instance.
    assert [e["cursor"] for e in on_b] == [e["cursor"] for e in on_c]
    await _online_everywhere(hubs, "T1")
    # The floor state agrees: the money and the last event, on every instance.
    await _agree(hubs, lambda h: h.floor.terminals["T1"].coin_in, 300)
    state, _ = await viewer_c.recv_until(
        lambda m: m["type"] == "terminal" and m["terminal"]["lastEvent"] is not None
        and m["terminal"]["lastEvent"]["id"] == "T1-3")
    assert state["terminal"]["online"] is True and state["terminal"]["coinInToday"] == 300


async def test_an_action_from_b_reaches_the_terminal_on_a_and_its_answers_come_back(
        hubs: list[HubHarness]) -> None:
    a, b, _ = hubs
    term, _ = await a.terminal("T1")
    await _online_everywhere(hubs, "T1")
    alice, _ = await b.client("tok-alice")
    await alice.send(wire.action("act-1", "T1", "lock", {"reason": "audit"}))
    queued = await alice.recv_type("actionAck")
    assert (queued["id"], queued["status"]) == ("act-1", "queued")

    action = await term.recv_type("action")
    assert (action["id"], action["action"], action["params"]) == ("act-1", "lock",
                                                                {"reason": "audit"})
    sent = await alice.recv_type("actionAck")
    assert sent["status"] == "sent"

    await term.send(wire.action_ack("act-1", "T1", wire.ActionAckStatus.ACCEPTED))
    await term.send(wire.action_result("act-1", "T1", wire.ActionStatus.SUCCEEDED,
                                       result={"locked": True}))
    accepted = await alice.recv_type("actionAck")
    assert accepted["status"] == "accepted"
    result = await alice.recv_type("actionResult")
    assert result["status"] == "succeeded" and result["result"] == {"locked": True}
    stored = _hub(b).store.get_action("act-1")
    assert stored is not None and stored.status == "succeeded"

    # The lock itself is an event: every instance's floor agrees.
    await term.send(event_frame("T1", 1, "machineLocked"))
    await _agree(hubs, lambda h: h.floor.terminals["T1"].locked, True)
    _, snap = await hubs[2].client("tok-carol")
    assert [t["locked"] for t in snap["terminals"] if t["terminalId"] == "T1"] == [True]


async def test_an_action_is_sent_once_when_the_terminal_comes_back_to_any_instance(
        hubs: list[HubHarness]) -> None:
    a, b, c = hubs
    alice, _ = await a.client("tok-alice")
    await alice.send(wire.action("act-2", "T2", "unlock", None))
    assert (await alice.recv_type("actionAck"))["status"] == "queued"
    term, _ = await c.terminal("T2")
    action = await term.recv_type("action")
    assert action["id"] == "act-2"
    sent = await alice.recv_type("actionAck")
    assert sent["status"] == "sent"
    # Nobody else sends it: another connection of T2 (on B) gets no action.
    await term.close()
    await _online_everywhere(hubs, "T2", online=False)
    again, _ = await b.terminal("T2")
    before = await again.sync()
    assert [m for m in before if m["type"] == "action"] == []


async def test_an_alert_is_acknowledged_once_and_every_instance_agrees(
        hubs: list[HubHarness]) -> None:
    a, b, c = hubs
    term, _ = await a.terminal("T1")
    await term.send(event_frame("T1", 1, "doorOpened"))
    await term.recv_type("ack")
    await _agree(hubs, lambda h: h.floor.terminals["T1"].unacked_alerts, 1)
    alice, _ = await b.client("tok-alice")
    bob, _ = await c.client("tok-bob")
    viewer, _ = await a.client("tok-carol")
    # Both operators acknowledge it at once, on two instances: one wins.
    await alice.send(wire.ack_alert("T1-1", "a1"))
    await bob.send(wire.ack_alert("T1-1", "b1"))
    await wait_for(lambda: _hub(a).store.alert_ack("T1-1") is not None)
    winner = _hub(a).store.alert_ack("T1-1")
    assert winner is not None and winner[0] in ("alice", "bob")
    for op, name in ((alice, "alice"), (bob, "bob")):
        acks, before = await op.recv_until(lambda m: m["type"] == "alertAck")
        assert acks["eventId"] == "T1-1" and acks["by"] == winner[0]
        rest = before + await op.sync()
        errors = [m["code"] for m in rest if m["type"] == "error"]
        assert errors == ([] if name == winner[0] else ["duplicate"])
        assert [m for m in rest if m["type"] == "alertAck"] == []  # one acknowledgement
    acked = await viewer.recv_type("alertAck")
    assert acked["eventId"] == "T1-1" and acked["by"] == winner[0]
    await _agree(hubs, lambda h: h.floor.terminals["T1"].unacked_alerts, 0)
    _, snap = await c.client("tok-carol")
    assert snap["alerts"] == []


async def test_alerts_acknowledged_at_once_are_acknowledged_on_every_instance(
        hubs: list[HubHarness]) -> None:
    """protocol.md §5 ack with terminalId / all, §11: every client sees the acknowledgements,
    whichever instance it is connected to: one alertAck each (a fresh snapshot beyond 100),
    and every instance's open-alert count. The other instances heard of neither."""
    a, b, _ = hubs
    term, _ = await a.terminal("T1")
    await publish_all(term, [event_frame("T1", i, "doorOpened") for i in range(1, 4)])
    await _agree(hubs, lambda h: h.floor.terminals["T1"].unacked_alerts, 3)
    viewer, _ = await a.client("tok-carol")
    alice, _ = await b.client("tok-alice")
    await alice.send({"type": "ack", "id": "r1", "terminalId": "T1"})
    acks = [await viewer.recv_type("alertAck") for _ in range(3)]
    assert [m["eventId"] for m in acks] == ["T1-1", "T1-2", "T1-3"]
    assert {m["by"] for m in acks} == {"alice"}
    await _agree(hubs, lambda h: h.floor.terminals["T1"].unacked_alerts, 0)
    await publish_all(term, [event_frame("T1", i, "doorOpened") for i in range(4, 106)])
    await _agree(hubs, lambda h: h.floor.terminals["T1"].unacked_alerts, 102)
    await viewer.sync()
    await alice.send({"type": "ack", "id": "r2", "all": True})
    snap, before = await viewer.recv_until(lambda m: m["type"] == "snapshot")
    assert [m for m in before if m["type"] == "alertAck"] == []
    assert snap["alerts"] == [] and all(t["unackedAlerts"] == 0 for t in snap["terminals"])
    await _agree(hubs, lambda h: h.floor.terminals["T1"].unacked_alerts, 0)


async def test_a_terminal_moves_to_another_instance_with_no_loss_and_no_duplicate(
        hubs: list[HubHarness]) -> None:
    a, b, c = hubs
    viewer, _ = await c.client("tok-carol", subscribe={"terminals": ["T1"], "channels": ["game"]})
    term, _ = await a.terminal("T1")
    for seq in range(1, 6):
        await term.send(event_frame("T1", seq))
    await term.recv_until(lambda m: m["type"] == "ack" and m["upTo"] == 5)
    # Instance A goes away; seqs 6..8 were sent to it and never acknowledged.
    for seq in (6, 7, 8):
        await term.send(event_frame("T1", seq))
    await _hub(a).stop()  # its connections end with 1001; the terminal's go on elsewhere
    a.hub = None
    assert await term.closed() == 1001
    moved, welcome = await b.terminal("T1", last_seq=8)
    assert 5 <= welcome["ackedSeq"] <= 8
    for seq in range(welcome["ackedSeq"] + 1, 11):
        await moved.send(event_frame("T1", seq))
    await moved.recv_until(lambda m: m["type"] == "ack" and m["upTo"] == 10)
    got = [e["id"] for e in await _events(viewer, 10)]
    assert got == [f"T1-{n}" for n in range(1, 11)]  # each once, in order
    stored = [e["seq"] for e in _hub(b).store.events("T1") if e["id"].startswith("T1-")]
    assert stored == list(range(1, 11))
    assert [m for m in await viewer.sync() if m["type"] == "event"] == []  # no second copy


async def test_a_second_connection_on_another_instance_replaces_the_first(
        hubs: list[HubHarness]) -> None:
    a, b, _ = hubs
    first, _ = await a.terminal("T3")
    await _online_everywhere(hubs, "T3")
    second, _ = await b.terminal("T3")
    assert await first.closed() == wire.CloseCode.REPLACED
    await second.send(event_frame("T3", 1))
    await second.recv_type("ack")
    # The old connection's end does not mark T3 offline anywhere.
    await wait_for(lambda: all(_hub(h).floor.terminals["T3"].online for h in hubs))
    _, snap = await hubs[2].client("tok-carol")
    assert [t["online"] for t in snap["terminals"] if t["terminalId"] == "T3"] == [True]


async def test_hub_event_ids_are_unique_across_instances(hubs: list[HubHarness]) -> None:
    for h, tid in zip(hubs, ("T1", "T2", "T3"), strict=True):
        await h.terminal(tid)
    await wait_for(lambda: len([e for e in _hub(hubs[0]).store.events()
                                if e["event"] == "deviceOnline"]) == 3)
    ids = [e["id"] for e in _hub(hubs[0]).store.events() if e["id"].startswith("hub-")]
    assert len(ids) == len(set(ids)) == 3


async def test_instances_carry_on_when_their_database_connections_are_cut(
        hubs: list[HubHarness], pg_url: str) -> None:
    import psycopg

    a, b, _ = hubs
    viewer, _ = await b.client("tok-carol", subscribe={"terminals": ["T1"], "channels": ["game"]})
    term, _ = await a.terminal("T1")
    await term.send(event_frame("T1", 1))
    assert (await viewer.recv_type("event"))["id"] == "T1-1"
    # Every connection of every instance is cut (as by a database server restart).
    with psycopg.connect(pg_url, autocommit=True) as admin:
        cut = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                            ).fetchone()
    assert cut is not None and cut[0] >= 3 * 3  # loop, writer and listener, reader...
    cluster_b = _hub(b).cluster
    assert cluster_b is not None
    await wait_for(lambda: cluster_b.reconnects >= 1 and cluster_b.listening)
    # The writer connects again for the next batch: stored, acknowledged, forwarded.
    await term.send(event_frame("T1", 2))
    await term.recv_until(lambda m: m["type"] == "ack" and m["upTo"] == 2)
    assert (await viewer.recv_type("event"))["id"] == "T1-2"
    # The loop connections too: an operator's request on B reads the store.
    _, snap = await b.client("tok-alice")
    assert [e["id"] for e in snap["recent"] if e["id"].startswith("T1-")] == ["T1-2", "T1-1"]


async def test_a_row_that_cannot_be_read_does_not_stop_the_others(
        hubs: list[HubHarness], pg_url: str) -> None:
    import psycopg

    from hub.pg_notify import EVENTS_CHANNEL

    a = hubs[0]
    viewer, _ = await a.client("tok-carol", subscribe={"terminals": ["T2"]})
    good = event_frame("T2", 2)
    # As another instance would, but one of the two rows is damaged.
    with psycopg.connect(pg_url) as other:
        rows = other.execute(
            "INSERT INTO events (source, seq, id, terminal_id, channel, event, timestamp,"
            " data, received_at) VALUES ('T2', 1, 'T2-1', 'T2', 'game', 'betPlaced',"
            " %s, '{\"amount\": [[[', 0), ('T2', 2, 'T2-2', 'T2', 'game', 'betPlaced',"
            " %s, %s, 0) RETURNING n",
            (good["timestamp"], good["timestamp"], wire.encode(good["data"]))).fetchall()
        ids = sorted(r[0] for r in rows)
        other.execute("SELECT pg_notify(%s, %s)",
                      (EVENTS_CHANNEL, f"elsewhere {ids[0]}-{ids[1]}"))
        other.commit()
    got = await viewer.recv_type("event")
    assert got == good | {"cursor": ids[1]}
    assert [m for m in await viewer.sync() if m["type"] == "event"] == []


@pytest.fixture
def fast_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    import hub.cluster

    monkeypatch.setattr(hub.cluster, "HEARTBEAT_INTERVAL", 0.05)
    monkeypatch.setattr(hub.cluster, "DEAD_AFTER", 0.5)


async def test_terminals_of_an_instance_that_dies_are_reported_offline_once(
        fast_heartbeat: None, hubs: list[HubHarness], tmp_path: Path, pg_url: str,
        traffic: Traffic) -> None:
    a, b, c = hubs
    await a.terminal("T1")
    await b.terminal("T2")
    await _online_everywhere(hubs, "T1")
    await _online_everywhere(hubs, "T2")
    # An instance started now knows who is connected to the others.
    (tmp_path / "d").mkdir()
    d = HubHarness(tmp_path / "d", traffic)
    await d.start(store=pg_url, database=None)
    try:
        _, snap = await d.client("tok-carol")
        online = {t["terminalId"]: t["online"] for t in snap["terminals"]}
        assert (online["T1"], online["T2"], online["T3"]) == (True, True, False)
    finally:
        await d.close()
    # A goes silent (as if its machine died): no heartbeat, no deviceOffline of its own.
    cluster_a = _hub(a).cluster
    assert cluster_a is not None
    await cluster_a.stop()
    await wait_for(lambda: not _hub(b).floor.terminals["T1"].online
                   and not _hub(c).floor.terminals["T1"].online)
    offline = [e for e in _hub(b).store.events("T1") if e["event"] == "deviceOffline"]
    assert len(offline) == 1 and offline[0]["id"].startswith("hub-")
    # T2, on a live instance, stays online everywhere.
    assert _hub(b).floor.terminals["T2"].online and _hub(c).floor.terminals["T2"].online


async def test_history_audit_and_replay_answer_alike_on_every_instance(
        hubs: list[HubHarness]) -> None:
    import json

    import jsonschema

    from tests.support.hub import REGISTRY, SCHEMA_DIR, http_json

    schema = json.loads((SCHEMA_DIR / "api" / "historyEvents.json").read_text())
    a, b, c = hubs
    term, _ = await a.terminal("T1")
    await term.send(event_frame("T1", 1, "doorOpened", data={"door": "main"}))
    await term.send(event_frame("T1", 2))
    await term.send(event_frame("T1", 3, "meterSnapshot", data={"meters": {"coinIn": 100}}))
    await term.recv_until(lambda m: m["type"] == "ack" and m["upTo"] == 3)
    await _agree(hubs, lambda h: h.floor.terminals["T1"].unacked_alerts, 1)
    alice, _ = await b.client("tok-alice")
    await alice.send(wire.ack_alert("T1-1", "a1"))
    await alice.recv_type("alertAck")
    # The audit trail is in the shared database: every instance answers with it.
    audit = await http_json(_hub(a), "/api/audit?kind=alertAck", "tok-alice")
    assert [(e["who"], e["subject"]) for e in audit["entries"]] == [("alice", "T1-1")]
    # History, summary and meters: the same answer from each instance.
    answers = []
    for h in hubs:
        events = await http_json(_hub(h), "/api/history/events?terminal=T1", "tok-carol")
        jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(events)
        summary = await http_json(_hub(h), "/api/summary?terminal=T1", "tok-carol")
        meters = await http_json(_hub(h), "/api/meters?terminal=T1", "tok-carol")
        answers.append((events, summary["terminals"], meters))
    assert answers[0] == answers[1] == answers[2]
    events, summary, meters = answers[0]
    assert [e["id"] for e in events["events"] if e["id"].startswith("T1-")] == [
        "T1-1", "T1-2", "T1-3"]
    assert summary[0]["coinIn"] == 100 and summary[0]["games"] == 1
    assert meters["terminals"][0]["meters"] == {"coinIn": 100}
    # subscribe with from, on an instance the terminal is not connected to.
    viewer, _ = await c.client("tok-carol")
    await viewer.send(wire.subscribe(terminals=["T1"], start=0, request_id="s1"))
    done, replayed = await viewer.recv_until(lambda m: m["type"] == "replayed")
    assert [e["id"] for e in replayed if e["type"] == "event"] == [
        e["id"] for e in events["events"]]
    assert done["cursor"] == events["events"][-1]["cursor"]
    # The WebSocket history request, on the history workers of that instance.
    await viewer.send(wire.history(terminals=["T1"], request_id="h1"))
    page = await viewer.recv_type("historyPage")
    assert page["events"] == events["events"] and page["id"] == "h1"
    # The doors: the door opened is seen by a new instance's floor from the store.
    assert _hub(b).floor.terminals["T1"].doors_open == {"main"}


async def test_cursors_are_handed_out_in_commit_order(hubs: list[HubHarness],
                                                      pg_url: str) -> None:
    """While one instance's transaction holds an uncommitted cursor, no other instance can
    take a higher one: resuming after a cursor never skips a row committed later."""
    import psycopg

    from hub.store_pg import CURSOR_LOCK

    a = hubs[0]
    with psycopg.connect(pg_url) as other:  # as another instance, mid-transaction
        other.execute("SELECT pg_advisory_xact_lock(%s)", (CURSOR_LOCK,))
        held = other.execute(
            "INSERT INTO events (source, seq, id, terminal_id, channel, event, timestamp,"
            " data, received_at) VALUES ('T2', 1, 'T2-1', 'T2', 'game', 'betPlaced',"
            " '2023-11-14T22:13:20.000Z', '{}', 0) RETURNING n").fetchone()
        assert held is not None
        term, _ = await a.terminal("T1")  # its deviceOnline waits for the lock
        await term.send(event_frame("T1", 1))
        with psycopg.connect(pg_url, autocommit=True) as watch:
            await wait_for(lambda: watch.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone() == (1,), what="the instance's transaction waiting for the lock")
        other.commit()
    await term.recv_type("ack")
    stored = {e["id"]: e["cursor"] for e in _hub(a).store.recent(10, None)}
    assert stored["T1-1"] > held[0] and min(stored.values()) == held[0]


async def test_a_client_resumes_on_another_instance_with_no_gap_and_no_duplicate(
        hubs: list[HubHarness]) -> None:
    """Terminals on A and B send at once (their transactions interleave); a viewer on A
    leaves midway and resumes on B from its last cursor: every event exactly once."""
    a, b, _ = hubs
    per_terminal, burst = 300, 20
    viewer, _ = await a.client("tok-carol", subscribe={"channels": ["game"]})
    terms = [(await a.terminal("T1"))[0], (await b.terminal("T2"))[0],
             (await b.terminal("T3"))[0]]

    async def send_all(term: Peer, tid: str) -> None:
        for first in range(1, per_terminal + 1, burst):
            for seq in range(first, first + burst):
                await term.send(event_frame(tid, seq))
            last = first + burst - 1
            await term.recv_until(lambda m, last=last: m["type"] == "ack"
                                  and m["upTo"] == last, timeout=20)

    senders = [asyncio.create_task(send_all(t, tid))
               for t, tid in zip(terms, ("T1", "T2", "T3"), strict=True)]
    before = await _events(viewer, per_terminal)  # a third of them, then away
    viewer.ws.transport.abort()  # gone, as with a network cut (no closing handshake)
    cursors = [e["cursor"] for e in before]
    assert cursors == sorted(set(cursors))  # delivered in cursor order
    back, _ = await b.client("tok-carol")
    await back.send(wire.subscribe(channels=["game"], start=cursors[-1], request_id="r"))
    after: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        while len(before) + len(after) < 3 * per_terminal:
            msg = await back.recv(10)
            if msg["type"] == "event":
                after.append(msg)
    await asyncio.gather(*senders)
    ids = [e["id"] for e in before + after]
    assert len(ids) == len(set(ids)) == 3 * per_terminal
    assert [e["cursor"] for e in after] == sorted({e["cursor"] for e in after})
    assert after[0]["cursor"] > cursors[-1]
    assert [m for m in await back.sync() if m["type"] == "event"] == []


async def test_an_instance_that_lost_its_listener_reads_what_it_missed_in_order(
        hubs: list[HubHarness], pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    a, b, _ = hubs
    viewer, _ = await b.client("tok-carol", subscribe={"terminals": ["T1"], "channels": ["game"]})
    term, _ = await a.terminal("T1")
    await term.send(event_frame("T1", 1))
    assert (await viewer.recv_type("event"))["id"] == "T1-1"
    cluster_b = _hub(b).cluster
    assert cluster_b is not None
    gate = asyncio.Event()
    connect = cluster_b._connect

    async def held() -> None:
        await gate.wait()
        await connect()

    monkeypatch.setattr(cluster_b, "_connect", held)
    # B's listening connection is cut, and stays away while A stores three events.
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE application_name = %s", (f"slot-hub {cluster_b.origin} listen",))
    await wait_for(lambda: not cluster_b.listening, what="B's listener gone")
    for seq in (2, 3, 4):
        await term.send(event_frame("T1", seq))
    await term.recv_until(lambda m: m["type"] == "ack" and m["upTo"] == 4)
    assert [m for m in await viewer.sync() if m["type"] == "event"] == []
    gate.set()
    got = [await viewer.recv_type("event") for _ in range(3)]
    assert [e["id"] for e in got] == ["T1-2", "T1-3", "T1-4"]
    assert [e["cursor"] for e in got] == sorted({e["cursor"] for e in got})
    assert cluster_b.caught_up >= 3
    # Live again: the next event arrives once.
    await term.send(event_frame("T1", 5))
    assert (await viewer.recv_type("event"))["id"] == "T1-5"
    assert [m for m in await viewer.sync() if m["type"] == "event"] == []
