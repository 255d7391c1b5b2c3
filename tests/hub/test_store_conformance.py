"""Both stores, SQLite (hub/store.py) and PostgreSQL (hub/store_pg.py), held to the same
behaviour: every test runs against each (hub/store_api.py is the interface)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api import wire
from hub.store_api import EventWrite, Store
from tests.support.hub import event_frame

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.fixture
def store(either_store: Store) -> Store:
    """Each test runs on SQLite, then on PostgreSQL (tests/hub/conftest.py)."""
    return either_store


def _ev(tid: str, seq: int, name: str = "betPlaced", *, at: float = T0,
        data: dict[str, Any] | None = None) -> dict[str, Any]:
    return event_frame(tid, seq, name, data=data, timestamp=at)


def _write(store: Store, writes: list[EventWrite], at: float = T0) -> list[bool]:
    async def go() -> list[bool]:
        return await store.write_events(writes, at)
    return asyncio.run(go())


def test_a_batch_is_stored_in_order_and_duplicates_are_refused(store: Store) -> None:
    first = [EventWrite(_ev("T1", s), "T1", acked_seq=s) for s in (1, 2, 3)]
    assert _write(store, first) == [True, True, True]
    # Resent after a lost ack, mixed with new ones, and a copy inside the same batch.
    again = [EventWrite(_ev("T1", 3), "T1"), EventWrite(_ev("T1", 4), "T1", acked_seq=4),
             EventWrite(_ev("T1", 4), "T1"), EventWrite(_ev("T2", 1), "T2", acked_seq=1)]
    assert _write(store, again) == [False, True, False, True]
    assert [e["id"] for e in store.events()] == ["T1-1", "T1-2", "T1-3", "T1-4", "T2-1"]
    assert [e["id"] for e in store.events("T2")] == ["T2-1"]
    assert store.acked_seq("T1") == 4 and store.acked_seq("T2") == 1
    assert store.acked_seq("T9") == 0
    assert sorted(store.known_terminals()) == ["T1", "T2"]
    got = store.get_event("T1-2")
    assert got is not None and got == _ev("T1", 2) | {"cursor": got["cursor"]}
    assert store.get_event("T1-99") is None
    # Cursors: the row ids, increasing in storage order, also set on the written frames.
    assert all("cursor" not in e for e in store.events())  # as the terminals sent them
    cursors = [e["cursor"] for e in reversed(store.recent(10, None))]
    assert cursors == sorted(cursors) and len(set(cursors)) == 5
    assert [w.frame["cursor"] for w in first] == cursors[:3]


def test_data_reads_back_as_it_was_sent(store: Store) -> None:
    data = {"text": "Ünïcødé \u0000 \"quoted\"", "nested": {"list": [1, 2.5, None, True]},
            "big": 2**62}
    assert store.insert_event(_ev("T1", 1, "doorOpened", data=data), source="T1",
                              received_at=T0, acked_seq=1)
    got = store.get_event("T1-1")
    assert got is not None and got == _ev("T1", 1, "doorOpened", data=data) | {"cursor": 1}
    assert not store.insert_event(_ev("T1", 1, "doorOpened", data=data), source="T1",
                                  received_at=T0)


def test_an_empty_batch_stores_nothing_and_fails_nothing(store: Store) -> None:
    """The ingest may hand a store a batch of no events (tests/support/hub.py ``published``
    waits behind one); before, PostgreSQL's insert raised on the count of nothing."""
    assert _write(store, []) == []
    _write(store, [EventWrite(_ev("T1", 1), "T1", acked_seq=1)])
    assert _write(store, []) == []
    assert [e["id"] for e in store.events()] == ["T1-1"]
    assert store.acked_seq("T1") == 1


def test_the_acknowledged_seq_never_goes_back(store: Store) -> None:
    store.set_acked_seq("T1", 10)
    store.set_acked_seq("T1", 4)
    assert store.acked_seq("T1") == 10
    _write(store, [EventWrite(_ev("T1", 3), "T1", acked_seq=3)])
    assert store.acked_seq("T1") == 10


def test_recent_and_last_event_newest_first_with_scopes(store: Store) -> None:
    _write(store, [EventWrite(_ev("T1", 1, "machineLocked"), "T1"),
                   EventWrite(_ev("T2", 1), "T2"),
                   EventWrite(_ev("T1", 2), "T1"),
                   EventWrite(_ev("T1", 3, "machineUnlocked"), "T1")])
    assert [e["id"] for e in store.recent(3, None)] == ["T1-3", "T1-2", "T2-1"]
    assert [e["id"] for e in store.recent(10, ["T2"])] == ["T2-1"]
    assert store.recent(10, []) == []
    last = store.last_event("T1")
    assert last is not None and last["id"] == "T1-3"
    lock = store.last_event("T1", ["machineLocked"])
    assert lock is not None and lock["id"] == "T1-1"
    assert store.last_event("T2", ["machineLocked"]) is None


def test_alerts_needing_ack_and_acknowledgements(store: Store) -> None:
    _write(store, [EventWrite(_ev("T1", 1, "doorOpened"), "T1"),
                   EventWrite(_ev("T1", 2, "betPlaced"), "T1"),
                   EventWrite(_ev("T2", 1, "doorOpened"), "T2")])
    assert wire.needs_ack("alerts", "doorOpened")
    assert [e["id"] for e in store.unacked_alerts(10, None)] == ["T2-1", "T1-1"]
    assert [e["id"] for e in store.unacked_alerts(10, ["T1"])] == ["T1-1"]
    assert store.count_unacked_alerts("T1") == 1
    assert store.alert_ack("T1-1") is None
    assert store.add_alert_ack("T1-1", "T1", "alice", "2023-11-14T22:14:00.000Z")
    assert not store.add_alert_ack("T1-1", "T1", "bob", "2023-11-14T22:15:00.000Z")
    assert store.alert_ack("T1-1") == ("alice", "2023-11-14T22:14:00.000Z")
    assert store.count_unacked_alerts("T1") == 0
    assert [e["id"] for e in store.unacked_alerts(10, None)] == ["T2-1"]


def test_money_sums_by_day_and_by_minute(store: Store) -> None:
    bets = [(1, T0, 100), (2, T0 + 30, 250), (3, T0 + 61, 5), (4, T0 + 86400, 7)]
    _write(store, [EventWrite(_ev("T1", s, data={"amount": a, "credits": a,
                                                 "denomination": 1}, at=at), "T1")
                   for s, at, a in bets]
           + [EventWrite(_ev("T2", 1, data={"amount": 1000}), "T2"),
              EventWrite(_ev("T1", 5, "winPaid", data={"amount": 40}), "T1"),
              EventWrite(_ev("T1", 6, data={"amount": "lots"}), "T1")])
    day = wire.format_timestamp(T0)[:10]
    assert store.amount_sum("T1", "betPlaced", day, "2023-11-15") == 355
    assert store.amount_sum("T1", "winPaid", day, "2023-11-15") == 40
    assert store.amount_sum("T3", "betPlaced", day, "2023-11-15") == 0
    minutes = store.amounts_by_minute("betPlaced", wire.format_timestamp(T0 - 60), None)
    assert minutes == {"2023-11-14T22:13": 1350, "2023-11-14T22:14": 5,
                       "2023-11-15T22:13": 7}
    only_t2 = store.amounts_by_minute("betPlaced", wire.format_timestamp(T0 - 60), ["T2"])
    assert only_t2 == {"2023-11-14T22:13": 1000}


def test_hub_seqs_are_never_handed_out_twice(store: Store) -> None:
    assert store.next_hub_seq() == 1
    first = store.reserve_hub_seqs(10)
    second = store.reserve_hub_seqs(10)
    assert first >= 1 and second >= first + 10
    frame = wire.event(event_id=f"hub-{second + 3}", seq=second + 3, channel="alerts",
                       terminal_id="T1", name="deviceOnline",
                       timestamp=wire.format_timestamp(T0), data={"terminalId": "T1"})
    store.insert_event(frame, source="hub", received_at=T0, acked_seq=second + 3)
    assert store.reserve_hub_seqs(5) >= second + 10
    assert store.next_hub_seq() >= second + 4


def test_actions_queue_claim_and_settle(store: Store) -> None:
    def action(aid: str, tid: str) -> dict[str, Any]:
        return wire.action(aid, tid, "lock", None, sender="alice")

    assert store.add_action(action("a1", "T1"), sender="alice", status="queued",
                            deadline=T0 + 300, created_at=T0)
    assert store.add_action(action("a2", "T1"), sender="alice", status="queued",
                            deadline=None, created_at=T0)
    assert store.add_action(action("a3", "T2"), sender="bob", status="sent",
                            deadline=None, created_at=T0 - 1)
    assert not store.add_action(action("a1", "T1"), sender="bob", status="sent",
                                deadline=None, created_at=T0)
    assert [a.id for a in store.queued_actions()] == ["a1", "a2"]
    assert [a.id for a in store.queued_actions("T2")] == []
    got = store.get_action("a1")
    assert got is not None and got.name == "lock" and got.deadline == T0 + 300
    assert got.message == action("a1", "T1") and got.sender == "alice" and got.result is None
    # Two instances race for the same queued action: one wins.
    assert store.claim_action("a1", "queued", "sent")
    assert not store.claim_action("a1", "queued", "sent")
    result = wire.action_result("a2", "T1", wire.ActionStatus.EXPIRED, error="expired",
                                action="lock")
    assert store.claim_action("a2", "queued", "expired", result)
    settled = store.get_action("a2")
    assert settled is not None and settled.status == "expired" and settled.result == result
    store.set_action_status("a3", "accepted")
    store.set_action_status("a3", "succeeded", {"type": "actionResult"})
    done = store.get_action("a3")
    assert done is not None and done.status == "succeeded"
    assert done.result == {"type": "actionResult"}
    assert store.get_action("nope") is None


def test_prune_deletes_old_events_their_acks_and_settled_actions(store: Store) -> None:
    _write(store, [EventWrite(_ev("T1", s, "doorOpened"), "T1", acked_seq=s)
                   for s in (1, 2, 3)], at=T0)
    _write(store, [EventWrite(_ev("T1", 4, "doorOpened"), "T1", acked_seq=4)], at=T0 + 100)
    store.add_alert_ack("T1-1", "T1", "alice", "x")
    store.add_alert_ack("T1-4", "T1", "alice", "x")
    store.add_action(wire.action("old", "T1", "lock", None, sender="a"), sender="a",
                     status="succeeded", deadline=None, created_at=T0)
    store.add_action(wire.action("waiting", "T1", "lock", None, sender="a"), sender="a",
                     status="queued", deadline=None, created_at=T0)

    async def go() -> int:
        return await store.prune(T0 + 50, ["succeeded", "failed"], chunk=2)
    assert asyncio.run(go()) == 3
    assert [e["id"] for e in store.events()] == ["T1-4"]
    assert store.alert_ack("T1-1") is None and store.alert_ack("T1-4") is not None
    assert store.get_action("old") is None and store.get_action("waiting") is not None
    assert store.acked_seq("T1") == 4  # terminals resume where they were


def test_the_floor_reads_doors_and_the_days_money(store: Store) -> None:
    _write(store, [
        EventWrite(_ev("T1", 1, "doorOpened", data={"door": "main"}), "T1"),
        EventWrite(_ev("T1", 2, "doorOpened", data={"door": "cashBox"}), "T1"),
        EventWrite(_ev("T1", 3, "doorClosed", data={"door": "main"}), "T1"),
        EventWrite(_ev("T1", 4, "doorOpened", data={"door": "logic", "powerOff": True}), "T1"),
        EventWrite(_ev("T1", 5, data={"amount": 100, "games": 2}), "T1"),
        EventWrite(_ev("T1", 6, data={"amount": 50}), "T1"),
        EventWrite(_ev("T1", 7, "winPaid", data={"amount": 30}), "T1"),
        EventWrite(_ev("T1", 8, data={"amount": 999}, at=T0 + 86400), "T1")])
    doors = {(e["data"]["door"], e["event"]) for e in store.last_door_events("T1")}
    assert doors == {("main", "doorClosed"), ("cashBox", "doorOpened")}
    assert store.last_door_events("T2") == []
    day = wire.format_timestamp(T0)[:10]
    assert store.day_money("T1", day, "2023-11-15") == (150, 30, 3)
    assert store.day_money("T2", day, "2023-11-15") == (0, 0, 0)


# ---------------------------------------------------------------- history (hub.history)


def _floor_day(store: Store) -> list[EventWrite]:
    """Two terminals over two days, each batch received 10 s after the one before."""
    writes = [
        [EventWrite(_ev("T1", 1, data={"amount": 100, "games": 2}), "T1"),
         EventWrite(_ev("T2", 1, "doorOpened", data={"door": "main"}), "T2")],
        [EventWrite(_ev("T1", 2, "winPaid", data={"amount": 40}, at=T0 + 60), "T1"),
         EventWrite(_ev("T1", 3, "billAccepted", data={"amount": 2000, "count": 2},
                        at=T0 + 70), "T1")],
        [EventWrite(_ev("T2", 2, data={"amount": "lots"}, at=T0 + 80), "T2"),
         EventWrite(_ev("T1", 4, "meterSnapshot", data={"meters": {"coinIn": 100}},
                        at=T0 + 90), "T1"),
         EventWrite(_ev("T2", 3, data={"amount": 7}, at=T0 + 86400), "T2")],
    ]
    for i, batch in enumerate(writes):
        assert all(_write(store, batch, at=T0 + 10 * i))
    return [w for batch in writes for w in batch]


def test_history_pages_by_cursor_both_ways_with_filters(store: Store) -> None:
    from hub.history import EventQuery, head_cursor, query_events

    db = store.reader
    assert head_cursor(db) == 0 and query_events(db, EventQuery()) == ([], None)
    writes = _floor_day(store)
    cursors = [w.frame["cursor"] for w in writes]
    assert cursors == sorted(cursors) and head_cursor(db) == cursors[-1]
    frames, nxt = query_events(db, EventQuery(limit=3))
    assert frames == [w.frame for w in writes[:3]] and nxt == cursors[2]
    frames, nxt = query_events(db, EventQuery(after=nxt, limit=4))
    assert [f["id"] for f in frames] == ["T1-3", "T2-2", "T1-4", "T2-3"] and nxt is None
    # Newest first with ``before``; every filter at once; time bounds on the timestamp.
    frames, nxt = query_events(db, EventQuery(before=cursors[-1], limit=2))
    assert [f["id"] for f in frames] == ["T1-4", "T2-2"] and nxt == cursors[-3]
    frames, _ = query_events(db, EventQuery(terminals=["T1"], channels=["game", "cash"]))
    assert [f["id"] for f in frames] == ["T1-1", "T1-2", "T1-3"]
    frames, _ = query_events(db, EventQuery(events=["betPlaced"], since=wire.format_timestamp(
        T0 + 1), until=wire.format_timestamp(T0 + 86400)))
    assert [f["id"] for f in frames] == ["T2-2"]
    assert query_events(db, EventQuery(terminals=["T9"])) == ([], None)


def test_time_to_cursor_summary_and_meters(store: Store) -> None:
    from hub.gaming_day import GamingDay
    from hub.history import cursor_before_time, day_summary, latest_meters

    db = store.reader
    assert cursor_before_time(db, T0) == 0
    writes = _floor_day(store)
    cursors = [w.frame["cursor"] for w in writes]
    assert cursor_before_time(db, T0 - 1) == cursors[0] - 1
    assert cursor_before_time(db, T0 + 5) == cursors[1]
    assert cursor_before_time(db, T0 + 10) == cursors[1]
    assert cursor_before_time(db, T0 + 100) == cursors[-1]
    day = wire.format_timestamp(T0)[:10]
    body = day_summary(db, GamingDay(), day, ["T1", "T2", "T3"], {"T1": {"bank": "B1"}})
    t1, t2, t3 = body["terminals"]
    assert (t1["bank"], t1["coinIn"], t1["coinOut"], t1["games"], t1["netWin"],
            t1["holdPercent"]) == ("B1", 100, 40, 2, 60, 60.0)
    assert t1["bills"] == {"count": 2, "amount": 2000}
    # A bet whose amount is not a number counts as a game of nothing, on both engines.
    assert (t2["coinIn"], t2["games"]) == (0, 1)
    assert t3 == {"terminalId": "T3", "coinIn": 0, "coinOut": 0, "netWin": 0,
                  "holdPercent": None, "games": 0, "bills": {"count": 0, "amount": 0},
                  "ticketsIn": {"count": 0, "amount": 0},
                  "ticketsOut": {"count": 0, "amount": 0},
                  "handpays": {"count": 0, "amount": 0}}
    assert body["totals"]["coinIn"] == 100 and body["totals"]["games"] == 3
    meters = latest_meters(db, ["T2", "T1"])
    assert meters == [{"terminalId": "T1", "at": wire.format_timestamp(T0 + 90),
                       "cursor": cursors[5], "meters": {"coinIn": 100}},
                      {"terminalId": "T2", "at": None, "cursor": None, "meters": None}]


def test_the_audit_trail_records_updates_and_pages(store: Store) -> None:
    from hub.audit import AuditQuery
    from hub.store_api import open_audit

    audit = open_audit(store)
    first = audit.record(at="2023-11-14T22:13:20.000Z", who="alice", role="operator",
                         kind="login")
    second = audit.record(at="2023-11-14T22:14:00.000Z", who="alice", role="operator",
                          kind="action", terminal_id="T1", subject="act-1", what="lock",
                          reason="audit", result="sent", detail={"params": {"x": 1}})
    audit.record(at="2023-11-14T22:15:00.000Z", who="bob", role="viewer",
                 kind="loginRefused", result="unauthorized")
    assert 0 < first < second
    audit.action_status("act-1", "succeeded", {"result": {"locked": True}})
    entries, nxt = audit.query(AuditQuery(limit=2))
    assert [e["kind"] for e in entries] == ["login", "action"] and nxt == second
    action = entries[1]
    assert (action["result"], action["detail"]) == (
        "succeeded", {"params": {"x": 1}, "result": {"locked": True}})
    assert action["terminalId"] == "T1" and action["reason"] == "audit"
    entries, nxt = audit.query(AuditQuery(after=second))
    assert [e["who"] for e in entries] == ["bob"] and nxt is None
    entries, _ = audit.query(AuditQuery(kinds=["login", "action"], who=["alice"],
                                        terminals=["T1"], since="2023-11-14T22:14:00.000Z"))
    assert [e["cursor"] for e in entries] == [second]


def test_a_row_that_is_not_json_is_left_out_of_every_query(store: Store) -> None:
    """A damaged row (not JSON: written by hand, or damaged on disk) costs only itself:
    sums, doors, summaries and pages go on with the others."""
    from hub.gaming_day import GamingDay
    from hub.history import EventQuery, day_summary, query_events

    _write(store, [EventWrite(_ev("T1", 1, data={"amount": 100}), "T1"),
                   EventWrite(_ev("T1", 2, "doorOpened", data={"door": "main"}), "T1")])
    for seq, name in ((3, "betPlaced"), (4, "doorOpened")):
        store.reader.run(
            "INSERT INTO events (source, seq, id, terminal_id, channel, event, timestamp,"
            " data, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("T1", seq, f"T1-{seq}", "T1", "game" if seq == 3 else "alerts", name,
             wire.format_timestamp(T0), '{"amount": [[[', T0))
    day = wire.format_timestamp(T0)[:10]
    assert store.day_money("T1", day, "2023-11-15") == (100, 0, 1)
    assert store.amount_sum("T1", "betPlaced", day, "2023-11-15") == 100
    assert store.amounts_by_minute("betPlaced", day, None) == {"2023-11-14T22:13": 100}
    assert [e["id"] for e in store.last_door_events("T1")] == ["T1-2"]
    assert [e["id"] for e in store.recent(10, None)] == ["T1-2", "T1-1"]
    summary = day_summary(store.reader, GamingDay(), day, ["T1"], {})
    assert (summary["totals"]["coinIn"], summary["totals"]["games"]) == (100, 1)
    frames, _ = query_events(store.reader, EventQuery())
    assert [f["id"] for f in frames] == ["T1-1", "T1-2"]
