"""The floor monitor in headless Chromium at desk (1440 px) and phone (390 px) widths.

A handpay alert with its amount, a lock with a confirmed reason (in the audit trail),
acknowledge-all, a reconnect that resumes with no gap and no duplicate, a history query and
the scroll into older events. Every test saves screenshots under tests/artifacts/dashboard/
(ignored by git) and checks that nothing on the page is wider than the screen.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from api import wire
from api.events import CATALOG
from hub.store import HubStore
from tests.hub.dashboard.pages import BROWSER_MARKS, WAIT_MS, expect, field, sign_in
from tests.hub.dashboard.scripted_terminal import ScriptedTerminal
from tests.support import ROOT
from tests.support.hub import HubHarness, http_get
from tests.support.tokens import (
    DASHBOARD_OPERATOR,
    DASHBOARD_SILENT,
    DASHBOARD_TERMINAL,
    DASHBOARD_VIEWER,
)

pytestmark = [*BROWSER_MARKS, pytest.mark.timeout(120),
              pytest.mark.parametrize("page", ["desk", "phone"], indirect=True)]

ARTIFACTS = ROOT / "tests" / "artifacts" / "dashboard"
TERMINAL, OTHER = DASHBOARD_TERMINAL, DASHBOARD_SILENT
OPERATOR, VIEWER = DASHBOARD_OPERATOR, DASHBOARD_VIEWER


async def shot(page: Any, name: str) -> None:
    """Keep a screenshot, and check nothing is wider than the screen (no cut-off column)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{page.label}-{name}.png"), full_page=True)
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{name}: the page is {overflow} px wider than the screen"
    clipped = await page.evaluate("""() => [...document.querySelectorAll(
        '#dashboard button, #dashboard td, #dashboard th, #confirm-dialog button')]
        .filter((e) => e.offsetParent !== null)
        .filter((e) => { const r = e.getBoundingClientRect();
                         return r.width > 0 && (r.left < -1 || r.right > innerWidth + 1); })
        .map((e) => e.textContent.trim().slice(0, 30))""")
    assert clipped == [], f"{name}: cut off at the screen's edge: {clipped}"


async def test_a_handpay_is_an_attendant_alert_with_its_amount(
    hub: HubHarness, terminal: ScriptedTerminal, page: Any,
) -> None:
    await sign_in(page, hub, OPERATOR)
    await expect(page.locator("#casino-clock")).to_have_attribute(
        "data-timezone", "America/Los_Angeles", timeout=WAIT_MS)
    handpay = await terminal.publish("handpayPending", {
        "amount": 360000, "kind": "jackpot", "level": 64, "progressiveGroup": 0,
        "partialPayCredits": 0, "resetId": 0, "playerId": None})
    alert = page.locator(f'#alerts li[data-alert-id="{handpay["id"]}"]')
    await expect(alert).to_be_visible(timeout=WAIT_MS)
    await expect(alert).to_have_attribute("data-severity", "attendant")
    await expect(alert.locator(".alert-title")).to_have_text(
        f"{TERMINAL} · Handpay pending (jackpot) 3,600.00")
    await expect(page.locator("#alerts-count")).to_have_text("1")
    await expect(field(page, TERMINAL, "condition")).to_have_text("handpay 3,600.00")
    await expect(field(page, TERMINAL, "locked")).to_have_text("locked (handpay)")
    await expect(field(page, TERMINAL, "unackedAlerts")).to_contain_text("Ack 1")
    # bank and area from the token file; the table filters to what needs an attendant
    await expect(field(page, TERMINAL, "terminalId")).to_contain_text("bank 12 · Main floor")
    await page.locator("#terminal-filter").select_option("handpay")
    await expect(page.locator(f'#terminals-body tr[data-terminal="{OTHER}"]')).to_be_hidden()
    await expect(page.locator(f'#terminals-body tr[data-terminal="{TERMINAL}"]')).to_be_visible()
    await shot(page, "handpay")
    await page.locator("#terminal-filter").select_option("all")
    await page.locator("#terminal-search").fill("high limit")
    await expect(page.locator(f'#terminals-body tr[data-terminal="{TERMINAL}"]')).to_be_hidden()
    await expect(page.locator(f'#terminals-body tr[data-terminal="{OTHER}"]')).to_be_visible()
    await page.locator("#terminal-search").fill("")
    # Paid: the lockup ends, the row reads unlocked again
    await terminal.publish("handpayReset", {"amount": 360000, "kind": "jackpot",
                                            "method": "standard", "playerId": None})
    await expect(field(page, TERMINAL, "locked")).to_have_text("unlocked", timeout=WAIT_MS)
    await expect(field(page, TERMINAL, "condition")).to_have_text("ok")


async def test_a_lock_needs_a_confirmed_reason_and_lands_in_the_audit_trail(
    hub: HubHarness, terminal: ScriptedTerminal, page: Any,
) -> None:
    await sign_in(page, hub, OPERATOR)
    await expect(field(page, TERMINAL, "locked")).to_have_text("unlocked", timeout=WAIT_MS)
    await page.get_by_role("button", name=f"Lock {TERMINAL}", exact=True).click()
    dialog = page.locator("#confirm-dialog")
    await expect(dialog).to_be_visible(timeout=WAIT_MS)
    await page.locator("#confirm-ok").click()  # no reason: refused by the page
    await expect(page.locator("#confirm-error")).to_contain_text("Give a reason")
    assert terminal.actions == []
    await dialog.get_by_label("Reason").fill("player dispute, table 4 camera")
    await shot(page, "lock-dialog")
    await page.locator("#confirm-ok").click()
    await expect(field(page, TERMINAL, "locked")).to_have_text("locked (host)", timeout=WAIT_MS)
    assert [(a["action"], a["reason"]) for a in terminal.actions] == [
        ("lock", "player dispute, table 4 camera")]
    assert hub.hub is not None
    status, _, body = await http_get(hub.hub, "/api/audit?kind=action", OPERATOR)
    entries = json.loads(body)["entries"]
    assert status == 200 and [(e["who"], e["what"], e["reason"], e["result"])
                              for e in entries] == [
        ("floor-supervisor", "lock", "player dispute, table 4 camera", "succeeded")]
    # The audit trail in the page's reports
    await page.locator("#report-kind").select_option("audit")
    await page.locator("#report-run").click()
    audit_rows = page.locator("#report-body tr")
    await expect(audit_rows.filter(has_text="player dispute")).to_have_count(1, timeout=WAIT_MS)
    await shot(page, "locked-audit")


async def test_acknowledge_all_clears_every_open_alert(
    hub: HubHarness, terminal: ScriptedTerminal, page: Any,
) -> None:
    await sign_in(page, hub, OPERATOR)
    frames = await terminal.publish_many(
        [("doorOpened", {"door": "main", "powerOff": False})] * 12
        + [("tilt", {"kind": "reel", "code": "0x40"})] * 3)
    await expect(page.locator("#alerts-count")).to_have_text("15", timeout=WAIT_MS)
    await shot(page, "alerts")
    await page.get_by_role("button", name="Acknowledge all").click()
    await expect(page.locator("#confirm-text")).to_contain_text("15 open alerts")
    await page.locator("#confirm-ok").click()
    await expect(page.locator("#alerts-count")).to_have_text("0", timeout=WAIT_MS)
    await expect(field(page, TERMINAL, "unackedAlerts")).to_contain_text("none")
    assert hub.hub is not None
    acks = [hub.hub.store.alert_ack(f["id"]) for f in frames]
    assert all(a is not None and a[0] == "floor-supervisor" for a in acks)
    await shot(page, "acknowledged")


async def test_a_reconnect_resumes_with_no_gap_and_no_duplicate(
    hub: HubHarness, terminal: ScriptedTerminal, page: Any,
) -> None:
    """While the page is away, 80 events are stored (more than a snapshot's 50 recent ones):
    after the reconnect each shows exactly once, the older ones replayed from its cursor."""
    await sign_in(page, hub, OPERATOR)
    before = await terminal.publish("billAccepted", {"amount": 2000, "count": 1})
    await expect(page.locator(f'#feed-body tr[data-event-id="{before["id"]}"]')).to_be_visible(
        timeout=WAIT_MS)
    await terminal.close()
    await hub.stop()
    await expect(page.locator("#conn-state")).to_have_attribute(
        "data-state", "reconnecting", timeout=WAIT_MS)
    assert hub.config.database is not None
    store = HubStore(hub.config.database)  # what the terminal delivered meanwhile (to a hub peer)
    try:
        first = store.acked_seq(TERMINAL) + 1
        missed = []
        for seq in range(first, first + 80):
            frame = wire.event(event_id=f"{TERMINAL}-{seq}", seq=seq,
                               channel=CATALOG["billAccepted"].value, terminal_id=TERMINAL,
                               name="billAccepted", timestamp=wire.format_timestamp(time.time()),
                               data={"amount": 500, "count": 1})
            assert store.insert_event(frame, source=TERMINAL, received_at=time.time(),
                                      acked_seq=seq)
            missed.append(frame["id"])
    finally:
        store.close()
    await hub.start()
    await expect(page.locator("#conn-state")).to_have_attribute(
        "data-state", "connected", timeout=30_000)
    await expect(page.locator("#feed")).to_have_attribute("data-resumed-from", re.compile(r"^\d+$"))
    for event_id in (missed[0], missed[29], missed[-1]):
        await expect(page.locator(f'#feed-body tr[data-events~="{event_id}"]')).to_have_count(
            1, timeout=WAIT_MS)
    bills = page.locator('#feed-body tr[data-event="billAccepted"]')
    await expect(bills).to_have_count(81, timeout=WAIT_MS)  # no gap, no duplicate
    ids = await bills.evaluate_all("rows => rows.map((r) => r.dataset.eventId)")
    assert sorted(ids) == sorted([before["id"], *missed])
    # newest first, in the hub's order
    cursors = await page.locator("#feed-body tr:not(.details)").evaluate_all(
        "rows => rows.map((r) => Number(r.dataset.cursor))")
    assert cursors == sorted(cursors, reverse=True)
    await shot(page, "resumed")


async def test_history_query_and_scrolling_into_older_events(
    hub: HubHarness, terminal: ScriptedTerminal, page: Any,
) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    for game in range(1, 61):
        events += [("gameStarted", {"gameNumber": 1}),
                   ("betPlaced", {"amount": 100, "credits": 100, "denomination": 1,
                                  "games": 1, "gameNumber": 1}),
                   ("gameEnded", {"gameNumber": 1})]
        if game % 4 == 0:
            events.append(("winPaid", {"amount": 300, "credits": 300, "denomination": 1,
                                       "kind": "machine", "gameNumber": 1}))
        events.append(("balanceChanged", {"credits": 5000 + game, "amount": 5000 + game,
                                          "denomination": 1}))
    await terminal.publish_many(events)
    await sign_in(page, hub, VIEWER)
    games = page.locator('#feed-body tr[data-event="game"]')
    await expect(games.first).to_be_visible(timeout=WAIT_MS)
    first_count = await games.count()
    assert first_count < 60  # a snapshot holds the 50 newest events only
    newest = games.first
    await expect(newest.locator('[data-field="what"]')).to_have_text("Game 1")
    await expect(newest.locator('[data-field="amount"]')).to_have_text("1.00")
    await expect(newest.locator('[data-field="win"]')).to_have_text("3.00")
    await expect(newest.locator('[data-field="credits"]')).to_have_text("50.60")
    await newest.get_by_role("button", name="Details").click()
    await expect(page.locator("#feed-body tr.details").first).to_contain_text("Bet")
    # Scrolling to the bottom of the feed pages back through the history API, 100 events a
    # page (about 255 stored), until the start of the stored history.
    feed = page.locator("#feed")
    for pages in range(1, 6):
        await page.locator("#feed-wrap").evaluate("(w) => { w.scrollTop = w.scrollHeight; }")
        await expect(feed).to_have_attribute("data-history-pages", str(pages), timeout=WAIT_MS)
        if await page.locator("#feed-more").text_content() == "The start of the stored history.":
            break
    assert pages == 3
    await expect(games).to_have_count(60, timeout=WAIT_MS)  # each game once, none split
    bets = await games.evaluate_all("rows => rows.map((r) => r.querySelector("
                                    "'[data-field=amount]').textContent)")
    assert bets == ["1.00"] * 60
    await shot(page, "feed-history")
    # The gaming-day summary for BI
    await page.locator("#report-kind").select_option("summary")
    await page.locator("#report-run").click()
    row = page.locator(f'#report-body tr:has(th:text-is("{TERMINAL}"))')
    await expect(row).to_contain_text("60.00", timeout=WAIT_MS)   # coin in: 60 x 1.00
    cells = row.locator("td")
    await expect(cells.nth(3)).to_have_text("45.00")   # coin out: 15 wins x 3.00
    await expect(cells.nth(4)).to_have_text("15.00")   # net win
    await expect(cells.nth(5)).to_have_text("25.00 %")  # hold
    await expect(page.locator("#report-status")).to_contain_text("America/Los_Angeles")
    await shot(page, "summary")
    async with page.expect_download() as download_info:
        await page.locator("#report-csv").click()
    download = await download_info.value
    csv_text = Path(await download.path()).read_text(encoding="utf-8")
    assert csv_text.startswith("terminalId,bank,area,coinIn,coinOut,netWin,holdPercent,games")
    assert f"{TERMINAL},12,Main floor,6000,4500,1500,25.0,60," in csv_text
    # Events by name, paged
    await page.locator("#report-kind").select_option("events")
    await page.locator("#report-event").fill("winPaid")
    await page.locator("#report-run").click()
    await expect(page.locator("#report-table")).to_have_attribute("data-rows", "15",
                                                                  timeout=WAIT_MS)
