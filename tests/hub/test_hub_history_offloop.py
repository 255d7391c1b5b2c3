"""History queries run off the event loop (hub.history_runner): while a slow query runs, the
terminals are still served, and queries beyond the workers get 503 ``rate_limited``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from typing import Any

import jsonschema
import pytest

from api import wire
from hub import http_api
from tests.support import ROOT
from tests.support.hub import REGISTRY, HubHarness, event_frame, http_get, http_json, publish_all
from tests.support.waits import wait_for

ERROR_SCHEMA = json.loads((ROOT / "docs" / "schemas" / "api" / "error.json").read_text())


def check_error(body: bytes) -> str:
    """The HTTP API error body, checked against docs/schemas/api/error.json; its code."""
    error = json.loads(body)
    jsonschema.Draft202012Validator(ERROR_SCHEMA, registry=REGISTRY).validate(error)
    return str(error["error"])


class _Held:
    """Wraps a history query so that it waits, on its worker thread, until released."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.release = threading.Event()
        self._entered = 0
        self._lock = threading.Lock()

    @property
    def entered(self) -> int:
        with self._lock:
            return self._entered

    def __call__(self, db: sqlite3.Connection, *args: Any) -> Any:
        assert threading.current_thread() is not threading.main_thread()
        with self._lock:
            self._entered += 1
        assert self.release.wait(60), "never released"
        return self.real(db, *args)


async def test_terminals_are_acknowledged_while_history_queries_run(
    harness: HubHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = harness.hub
    assert hub is not None and hub.history is not None
    term, _ = await harness.terminal("T1")
    await publish_all(term, [event_frame("T1", 1)])
    held = _Held(http_api.query_events)
    monkeypatch.setattr(http_api, "query_events", held)
    workers = hub.history.workers
    # no time bound of their own: they are held until the test releases them
    slow = [asyncio.create_task(http_get(hub, "/api/history/events?terminal=T1", "tok-carol",
                                         timeout=None)) for _ in range(workers)]
    try:
        await wait_for(lambda: held.entered == workers, 20, "every worker in a query")
        # the event loop is free: a terminal's events are stored and acknowledged ...
        await publish_all(term, [event_frame("T1", seq) for seq in range(2, 42)])
        # ... and a dashboard connecting gets its snapshot
        _, snap = await harness.client("tok-carol")
        assert snap["type"] == "snapshot"
        # one more history query (of any kind) than there are workers: refused at once
        for path in ("/api/history/events?terminal=T1", "/api/summary", "/api/meters"):
            status, headers, body = await http_get(hub, path, "tok-carol")
            assert status == 503 and headers["retry-after"] == "1"
            assert check_error(body) == "rate_limited"
        assert held.entered == workers
    finally:
        held.release.set()
    for status, _, body in await asyncio.wait_for(asyncio.gather(*slow), 30):
        assert status == 200
        events = json.loads(body)["events"]
        assert [f["seq"] for f in events if f["id"].startswith("T1-")] == list(range(1, 42))
    await wait_for(lambda: hub.history is not None and hub.history.running == 0, 10,
                   "the workers free again")
    assert len((await http_json(hub, "/api/history/events?terminal=T1&limit=5"))["events"]) == 5


async def test_a_query_whose_client_went_away_still_counts_until_it_ends(
    harness: HubHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker thread cannot be interrupted: the bound holds until its query is done."""
    hub = harness.hub
    assert hub is not None and hub.history is not None
    held = _Held(http_api.latest_meters)
    monkeypatch.setattr(http_api, "latest_meters", held)
    tasks = [asyncio.create_task(http_get(hub, "/api/meters", "tok-carol", timeout=None))
             for _ in range(hub.history.workers)]
    try:
        await wait_for(lambda: held.entered == len(tasks), 20, "every worker in a query")
        for task in tasks:
            task.cancel()  # the clients disconnect
        await asyncio.gather(*tasks, return_exceptions=True)
        status, _, body = await http_get(hub, "/api/audit", "tok-alice")
        assert status == 503 and check_error(body) == "rate_limited"
    finally:
        held.release.set()
    await wait_for(lambda: hub.history is not None and hub.history.running == 0, 10,
                   "the workers free again")
    status, _, body = await http_get(hub, "/api/audit", "tok-alice")
    assert status == 200 and "entries" in json.loads(body)


async def test_a_query_running_too_long_is_stopped_and_frees_its_worker(
    harness: HubHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past ``query_limit_s`` SQLite's progress handler stops it: 504 ``timeout`` over HTTP,
    ``too_large`` over the WebSocket; the worker serves the next query."""
    import hub.store

    monkeypatch.setattr(hub.store, "_PROGRESS_STEPS", 1)  # look at the clock every step
    await harness.restart()  # fresh workers, with the handler at that rate
    hub = harness.hub
    assert hub is not None and hub.history is not None
    term, _ = await harness.terminal("T1")
    await publish_all(term, [event_frame("T1", seq) for seq in range(1, 11)])
    hub.history.query_limit_s = 0.0  # every query is over time at its first step
    status, _, body = await http_get(hub, "/api/history/events?terminal=T1", "tok-carol")
    assert status == 504 and check_error(body) == "timeout"
    alice, _ = await harness.client("tok-alice")
    await alice.send(wire.history(terminals=["T1"], request_id="slow"))
    error = await alice.recv_type("error")
    assert (error["code"], error["id"]) == ("too_large", "slow")
    await wait_for(lambda: hub.history is not None and hub.history.running == 0, 10,
                   "the workers free again")
    hub.history.query_limit_s = 60.0
    body = await http_json(hub, "/api/history/events?terminal=T1")
    assert [f["seq"] for f in body["events"] if f["id"].startswith("T1-")] == list(
        range(1, 11))
