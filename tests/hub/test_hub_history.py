"""The HTTP history API against a real hub: events with cursor paging, day summaries in the
casino's gaming day, meters, CSV, and the token roles (docs/protocol.md §12)."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from api import wire
from tests.support import ROOT
from tests.support.hub import (
    REGISTRY,
    HubHarness,
    event_frame,
    http_get,
    http_json,
    publish_all,
    publish_history_floor,
)

API_SCHEMAS = {p.stem: json.loads(p.read_text())
               for p in (ROOT / "docs" / "schemas" / "api").glob("*.json")}


def check(schema: str, body: Any) -> None:
    """``body`` is valid, and has no key its schema does not name: the schemas leave objects
    open (forward compatibility), so validation alone would let a field go undocumented."""
    jsonschema.Draft202012Validator(API_SCHEMAS[schema], registry=REGISTRY).validate(body)
    assert _undocumented(API_SCHEMAS[schema], body, schema) == []


def _undocumented(node: dict[str, Any], value: Any, where: str) -> list[str]:
    if isinstance(value, dict) and "properties" in node:
        extra = [f"{where}.{key}" for key in value if key not in node["properties"]]
        return extra + [found for key, sub in node["properties"].items() if key in value
                        for found in _undocumented(sub, value[key], f"{where}.{key}")]
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [found for item in value for found in _undocumented(node["items"], item, where)]
    return []  # a $ref (common.json, held to the message classes) or a leaf


def at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def test_events_by_terminal_name_channel_and_time_with_cursor_paging(
    harness: HubHarness,
) -> None:
    hub = harness.hub
    assert hub is not None
    await publish_history_floor(harness)
    # every T1 betPlaced, 7 per page, forward
    pages, after = [], ""
    while True:
        body = await http_json(hub, f"/api/history/events?terminal=T1&event=betPlaced"
                                    f"&limit=7{after}")
        check("historyEvents", body)
        pages.append(body["events"])
        if body["next"] is None:
            break
        after = f"&after={body['next']}"
    seqs = [f["seq"] for page in pages for f in page]
    assert seqs == [i for i in range(1, 31) if i % 3] and len(pages) == 3
    assert all(f["terminalId"] == "T1" and f["event"] == "betPlaced" for p in pages for f in p)
    # backward from the newest, by channel and time range (since inclusive, until exclusive)
    body = await http_json(hub, "/api/history/events?channel=cash&terminal=T1"
                                "&since=2026-05-11T10:06:00Z&until=2026-05-11T10:21:00Z"
                                "&before=999999&limit=2")
    assert body["order"] == "newest-first"
    assert [f["seq"] for f in body["events"]] == [18, 15]  # 10:21 itself is excluded
    body = await http_json(hub, "/api/history/events?channel=cash&terminal=T1"
                                "&since=2026-05-11T10:06:00Z&until=2026-05-11T10:21:00Z"
                                f"&before={body['next']}&limit=2")
    assert [f["seq"] for f in body["events"]] == [12, 9]
    # several terminals at once, CSV
    status, headers, raw = await http_get(
        hub, "/api/history/events?terminal=T2,T1&event=betPlaced&limit=1000&format=csv",
        "tok-alice")
    assert status == 200 and headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert len(rows) == 20 + 5
    assert rows[0].keys() == {"cursor", "id", "terminalId", "seq", "channel", "event",
                              "timestamp", "amount", "data"}
    assert sum(int(r["amount"]) for r in rows if r["terminalId"] == "T1") == sum(
        100 * i for i in range(1, 31) if i % 3)


async def test_the_api_has_the_token_roles_of_the_websocket_paths(harness: HubHarness) -> None:
    hub = harness.hub
    assert hub is not None
    status, headers, _ = await http_get(hub, "/api/history/events")
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert (await http_get(hub, "/api/history/events", "nope"))[0] == 401
    assert (await http_get(hub, "/api/history/events", "tok-t1"))[0] == 403
    assert (await http_get(hub, "/api/audit", "tok-carol"))[0] == 403  # operators only
    assert (await http_get(hub, "/api/audit", "tok-alice"))[0] == 200
    for bad in ("/api/history/events?limit=x", "/api/history/events?since=today",
                "/api/history/events?channel=casino", "/api/summary?day=2026-13-45",
                "/api/history/events?format=xml",
                # §12: limit is 1 to 1000; more is malformed, not quietly cut to 1000
                "/api/history/events?limit=1001", "/api/history/events?limit=0",
                "/api/audit?limit=1001"):
        status, _, body = await http_get(hub, bad, "tok-alice")
        assert status == 400 and json.loads(body)["error"] == "bad_request", bad
    assert (await http_get(hub, "/api/nothing", "tok-carol"))[0] == 404


@pytest.mark.parametrize("tz", ["America/Los_Angeles", "Europe/Berlin"])
async def test_a_day_summary_follows_the_casinos_gaming_day(
    harness: HubHarness, tmp_path: Path, tz: str,
) -> None:
    """Gaming day 2026-05-11 from 06:00 local: what happened at 05:59 local belongs to the
    day before, what happened at 05:59 local the next morning to this one."""
    hub = await harness.restart(timezone=tz, gaming_day_start=6)
    start, end = hub.gaming_day.bounds("2026-05-11")
    term, _ = await harness.terminal("T1")
    frames = [
        event_frame("T1", 1, "betPlaced", data={"amount": 999, "games": 1},
                    timestamp=start - 60),  # the day before
        event_frame("T1", 2, "betPlaced", data={"amount": 1000, "games": 2}, timestamp=start),
        event_frame("T1", 3, "winPaid", data={"amount": 400, "kind": "machine"},
                    timestamp=start + 10),
        event_frame("T1", 4, "billAccepted", data={"amount": 5000, "count": 2},
                    timestamp=start + 20),
        event_frame("T1", 5, "billAccepted", data={"amount": 2000}, timestamp=start + 30),
        event_frame("T1", 6, "ticketRedeemed", data={"amount": 1500}, timestamp=start + 40),
        event_frame("T1", 7, "ticketPrinted", data={"amount": 700}, timestamp=start + 50),
        event_frame("T1", 8, "handpayPending", data={"amount": 360000, "kind": "jackpot"},
                    timestamp=start + 60),
        event_frame("T1", 9, "betPlaced", data={"amount": 1000, "games": None},
                    timestamp=end - 60),
        event_frame("T1", 10, "betPlaced", data={"amount": 77}, timestamp=end),  # next day
    ]
    await publish_all(term, frames)
    body = await http_json(hub, "/api/summary?day=2026-05-11&terminal=T1,T2")
    check("summary", body)
    assert (body["timezone"], body["gamingDayStart"]) == (tz, 6)
    assert (body["from"], body["until"]) == (wire.format_timestamp(start),
                                             wire.format_timestamp(end))
    t1, t2 = body["terminals"]
    assert (t1["terminalId"], t1["bank"], t1["area"]) == ("T1", "B1", "Main floor")
    assert (t1["coinIn"], t1["coinOut"], t1["netWin"]) == (2000, 400, 1600)
    assert t1["holdPercent"] == 80.0 and t1["games"] == 3
    assert t1["bills"] == {"count": 3, "amount": 7000}
    assert t1["ticketsIn"] == {"count": 1, "amount": 1500}
    assert t1["ticketsOut"] == {"count": 1, "amount": 700}
    assert t1["handpays"] == {"count": 1, "amount": 360000}
    assert t2["coinIn"] == 0 and t2["holdPercent"] is None
    assert body["totals"]["coinIn"] == 2000 and body["totals"]["holdPercent"] == 80.0
    status, _, raw = await http_get(hub, "/api/summary?day=2026-05-11&format=csv", "tok-carol")
    rows = {r["terminalId"]: r for r in csv.DictReader(io.StringIO(raw.decode()))}
    assert status == 200 and rows["T1"]["netWin"] == "1600" and rows["T1"]["holdPercent"] == "80.0"
    before = await http_json(hub, "/api/summary?day=2026-05-10&terminal=T1")
    assert before["terminals"][0]["coinIn"] == 999


async def test_today_on_the_floor_is_the_gaming_day(harness: HubHarness) -> None:
    """The terminals' *Today figures start at the gaming day's hour, not at UTC midnight."""
    now = time.time()
    hour = datetime.fromtimestamp(now, tz=UTC).hour
    if (now % 3600) < 5 or (now % 3600) > 3595:
        pytest.skip("too close to the top of the hour for a stable boundary")
    hub = await harness.restart(timezone="UTC", gaming_day_start=hour)
    start, _ = hub.gaming_day.bounds(hub.gaming_day.day_of(now))
    term, _ = await harness.terminal("T1")
    await publish_all(term, [
        event_frame("T1", 1, "betPlaced", data={"amount": 500, "games": 1},
                    timestamp=start - 1),
        event_frame("T1", 2, "betPlaced", data={"amount": 300, "games": 1}, timestamp=now),
        event_frame("T1", 3, "winPaid", data={"amount": 100}, timestamp=now)])
    _, snap = await harness.client("tok-carol")
    t1 = next(t for t in snap["terminals"] if t["terminalId"] == "T1")
    assert (t1["coinInToday"], t1["coinOutToday"], t1["netWinToday"]) == (300, 100, 200)
    assert t1["gamesToday"] == 1 and t1["holdPercentToday"] == pytest.approx(66.67)
    assert t1["day"] == hub.gaming_day.day_of(now) == snap["gamingDay"]
    assert snap["timezone"] == "UTC" and snap["gamingDayStart"] == hour


async def test_meters_are_the_last_snapshot_of_each_terminal(harness: HubHarness) -> None:
    hub = harness.hub
    assert hub is not None
    term, _ = await harness.terminal("T1")
    await publish_all(term, [
        event_frame("T1", 1, "meterSnapshot", data={"reason": "discovery", "first": True,
                                                      "meters": {"coinIn": 10}}),
        event_frame("T1", 2, "meterSnapshot", data={"reason": "snapshot", "first": False,
                                                      "meters": {"coinIn": 25}})])
    body = await http_json(hub, "/api/meters")
    check("meters", body)
    by_id = {t["terminalId"]: t for t in body["terminals"]}
    assert by_id["T1"]["meters"] == {"coinIn": 25} and by_id["T2"]["meters"] is None


@pytest.mark.parametrize(("path", "after"), [
    ("/api/history/events?format=csv", "CSV columns: `"),
    ("/api/summary?format=csv", "CSV: one row per terminal, `"),
    ("/api/audit?format=csv", "CSV columns: `cursor, at"),
])
async def test_each_csv_header_is_the_one_section_12_lists(
        harness: HubHarness, path: str, after: str) -> None:
    """A BI import is written from §12's column lists: each CSV's header row is its list."""
    hub = harness.hub
    assert hub is not None
    doc = " ".join((ROOT / "docs" / "protocol.md").read_text().split("## 12.")[1].split())
    start = doc.index("`", doc.index(after)) + 1  # the list in backticks after the marker
    listed = doc[start:doc.index("`", start)].split(", ")
    status, _, raw = await http_get(hub, path, "tok-alice")
    assert status == 200
    assert next(csv.reader(io.StringIO(raw.decode()))) == listed


async def test_after_and_before_together_give_the_events_between_oldest_first(
        harness: HubHarness) -> None:
    """§12 ``before``: with ``after`` as well, the events strictly between the two cursors,
    oldest first (a window, not a page back)."""
    hub = harness.hub
    assert hub is not None
    await publish_history_floor(harness)
    every = await http_json(hub, "/api/history/events?terminal=T1&limit=1000")
    cursors = [f["cursor"] for f in every["events"]]
    low, high = cursors[3], cursors[9]
    body = await http_json(hub, f"/api/history/events?terminal=T1&after={low}&before={high}")
    assert body["order"] == "oldest-first"
    assert [f["cursor"] for f in body["events"]] == cursors[4:9]


async def test_the_audit_and_error_answers_are_their_schemas_with_no_other_field(
        harness: HubHarness) -> None:
    """Every kind of audit entry, and an error answer, hold what docs/schemas/api/ says and
    no field it does not name (§12)."""
    hub = harness.hub
    assert hub is not None
    alice, _ = await harness.client("tok-alice")
    refused = await harness.connect("/ws/client")
    await refused.send(wire.auth("wrong"))
    assert (await refused.recv())["code"] == "unauthorized"
    term, _ = await harness.terminal("T1")
    await term.send(event_frame("T1", 1, "doorOpened", data={"door": "slot",
                                                             "powerOff": False}))
    await term.recv_type("ack")
    await harness.published()
    await alice.send(wire.ack_alert("T1-1"))
    await alice.recv_type("alertAck")
    await alice.send(wire.action("a1", "T3", "lock", reason="audit check"))
    await alice.recv_type("actionAck")
    body = await http_json(hub, "/api/audit", "tok-alice")
    check("audit", body)
    assert {e["kind"] for e in body["entries"]} == {"login", "loginRefused", "action",
                                                    "alertAck"}
    status, _, raw = await http_get(hub, "/api/history/events?limit=x", "tok-alice")
    assert status == 400
    check("error", json.loads(raw))
