"""``history`` on /ws/client against a real hub: the HTTP history API's filters and cursor
paging over the WebSocket, answered by ``historyPage`` (docs/protocol.md §5)."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import pytest

from api import wire
from hub import client_sessions
from tests.support.hub import (
    HubHarness,
    event_frame,
    http_json,
    publish_all,
    publish_history_floor,
)
from tests.support.waits import wait_for


async def _page(client: Any, **query: Any) -> dict[str, Any]:
    request_id = f"h{id(query)}"
    await client.send(wire.history(request_id=request_id, **query))
    page, _ = await client.recv_until(
        lambda m: m["type"] in ("historyPage", "error") and m.get("id") == request_id)
    return page


async def test_history_pages_forward_and_back_with_the_http_filters(
    harness: HubHarness,
) -> None:
    hub = harness.hub
    assert hub is not None
    await publish_history_floor(harness)
    carol, _ = await harness.client("tok-carol")  # a viewer may read history
    # forward, 7 per page, by terminal and event name
    seqs: list[int] = []
    after: int | None = None
    pages = 0
    while True:
        page = await _page(carol, terminals=["T1"], events=["betPlaced"], limit=7,
                           after=after)
        assert page["type"] == "historyPage" and page["order"] == "oldest-first"
        assert all(f["terminalId"] == "T1" and f["event"] == "betPlaced"
                   for f in page["events"])
        seqs += [f["seq"] for f in page["events"]]
        pages += 1
        if page["next"] is None:
            break
        after = page["next"]
    assert seqs == [i for i in range(1, 31) if i % 3] and pages == 3
    # back from the present, by channel and time range: the same as the HTTP API
    query = {"channels": ["cash"], "terminals": ["T1"], "since": "2026-05-11T10:06:00Z",
             "until": "2026-05-11T10:21:00Z", "before": 999999, "limit": 2}
    page = await _page(carol, **query)
    assert page["order"] == "newest-first" and [f["seq"] for f in page["events"]] == [18, 15]
    http = await http_json(hub, "/api/history/events?channel=cash&terminal=T1"
                                "&since=2026-05-11T10:06:00Z&until=2026-05-11T10:21:00Z"
                                "&before=999999&limit=2")
    assert page["events"] == http["events"] and page["next"] == http["next"]
    page = await _page(carol, **{**query, "before": page["next"]})
    assert [f["seq"] for f in page["events"]] == [12, 9]
    # several terminals; every frame carries its cursor, in increasing order
    page = await _page(carol, terminals=["T2", "T1"], events=["betPlaced"], limit=200)
    assert len(page["events"]) == 20 + 5 and page["next"] is None
    cursors = [f["cursor"] for f in page["events"]]
    assert cursors == sorted(cursors)


async def test_bad_history_requests_get_an_error_with_a_code(harness: HubHarness) -> None:
    alice, _ = await harness.client("tok-alice")
    for bad in ({"limit": 201}, {"limit": 0}, {"channels": ["casino"]},
                {"since": "yesterday"}, {"before": 0}, {"after": -1}):
        await alice.send_raw(wire.encode({"type": "history", "id": "bad", **bad}))
        error = await alice.recv_type("error")
        assert (error["code"], error["id"]) == ("bad_message", "bad")
    await alice.send(wire.ping("still"))
    assert (await alice.recv_type("pong"))["id"] == "still"  # the connection keeps serving


async def test_history_beyond_the_workers_is_rate_limited_and_the_loop_stays_free(
    harness: HubHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = harness.hub
    assert hub is not None and hub.history is not None
    release = threading.Event()
    entered: list[int] = []
    real = client_sessions.query_events

    def held(db: sqlite3.Connection, q: Any) -> Any:
        entered.append(1)
        assert release.wait(60), "never released"
        return real(db, q)

    monkeypatch.setattr(client_sessions, "query_events", held)
    alice, _ = await harness.client("tok-alice")
    term, _ = await harness.terminal("T1")
    workers = hub.history.workers
    try:
        for n in range(workers):
            await alice.send(wire.history(request_id=f"slow{n}"))
        await wait_for(lambda: len(entered) == workers, 20, "every worker in a query")
        await publish_all(term, [event_frame("T1", seq) for seq in range(1, 21)])
        page = await _page(alice, terminals=["T1"])
        assert (page["type"], page["code"]) == ("error", "rate_limited")
    finally:
        release.set()
    answered: dict[str, str] = {}  # in whatever order their queries finish

    def both(m: dict[str, Any]) -> bool:
        if str(m.get("id", "")).startswith("slow"):
            answered[m["id"]] = m["type"]
        return len(answered) == workers

    await alice.recv_until(both, 30)
    assert answered == {f"slow{n}": "historyPage" for n in range(workers)}
