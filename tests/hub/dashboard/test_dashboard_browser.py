"""The dashboard page in headless Chromium against the real hub.

The loop a floor operator sees: sign in with a token, the page subscribes, an event from a
terminal arrives in the live feed, the terminal row shows online, a click on Lock goes to the
terminal and the row turns "locked", an alert is acknowledged and leaves the list. Also: a
refused token, a viewer's disabled controls, channel filters that really unsubscribe, and the
page reconnecting by itself when the hub comes back.

The fixtures (tests/hub/dashboard/conftest.py): the hub in-process on port 0 with a temporary
database and token file; the terminal side is the ``terminal`` fixture (a scripted terminal
today; the emulator + agent uplink can take its place behind the same ``TerminalSide``
interface).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.asyncio.client import connect

from api import wire
from tests.hub.dashboard.pages import (
    ALL_CHANNELS,
    BROWSER_MARKS,
    WAIT_MS,
    expect,
    field,
    row,
    sign_in,
    subscribed_to,
)
from tests.hub.dashboard.scripted_terminal import ScriptedTerminal
from tests.support.hub import HubHarness
from tests.support.tokens import (
    DASHBOARD_OPERATOR,
    DASHBOARD_OPERATOR2,
    DASHBOARD_SILENT,
    DASHBOARD_TERMINAL,
    DASHBOARD_TERMINAL_TOKEN,
    DASHBOARD_VIEWER,
)

pytestmark = [*BROWSER_MARKS, pytest.mark.timeout(90)]

TERMINAL = DASHBOARD_TERMINAL
SILENT_TERMINAL = DASHBOARD_SILENT  # has a token, never connects: listed offline
FEED_LIMIT = 500  # rows the page keeps (app.js FEED_LIMIT)


async def confirm_with_reason(page: Any, reason: str) -> None:
    """The confirmation dialog of an action: a reason is required."""
    dialog = page.locator("#confirm-dialog")
    await expect(dialog).to_be_visible(timeout=WAIT_MS)
    await dialog.get_by_label("Reason").fill(reason)
    await page.locator("#confirm-ok").click()
    await expect(dialog).to_be_hidden(timeout=WAIT_MS)


async def test_operator_sees_event_locks_terminal_and_acknowledges_alert(
    hub: HubHarness, terminal: ScriptedTerminal, page: Any
) -> None:
    await sign_in(page, hub, DASHBOARD_OPERATOR)
    await expect(page.locator("#session-role")).to_have_text(
        "floor-supervisor (operator)", timeout=WAIT_MS)
    await subscribed_to(page, ALL_CHANNELS)

    # The terminal row: online from the snapshot; the silent terminal is listed offline.
    await expect(field(page, TERMINAL, "online")).to_have_text("online", timeout=WAIT_MS)
    await expect(field(page, SILENT_TERMINAL, "online")).to_have_text("offline", timeout=WAIT_MS)
    # Connected and never host-locked: unlocked (docs/protocol.md §5), never "unknown".
    await expect(field(page, TERMINAL, "locked")).to_have_text("unlocked")

    # An event from the terminal arrives in the feed, its amount shown as money.
    bet = await terminal.publish("betPlaced", {
        "amount": 250, "credits": 250, "denomination": 1, "games": 1, "gameNumber": 1,
        "meters": {"coinIn": [1000, 1250]}})
    feed_row = page.locator(f'#feed-body tr[data-event-id="{bet["id"]}"]')
    await expect(feed_row).to_be_visible(timeout=WAIT_MS)
    await expect(feed_row.locator('[data-field="amount"]')).to_have_text("2.50")
    await expect(feed_row).to_have_attribute("data-channel", "game")
    await expect(feed_row.locator('[data-field="what"]')).to_have_text("Game 1 (in play)")
    await expect(field(page, TERMINAL, "coinInToday")).to_have_text("2.50", timeout=WAIT_MS)
    await expect(field(page, TERMINAL, "gamesToday")).to_have_text("1", timeout=WAIT_MS)
    await expect(field(page, TERMINAL, "holdPercentToday")).to_have_text("100.0 %")
    await expect(page.locator("#chart-total")).to_have_attribute("data-total", "250",
                                                                 timeout=WAIT_MS)
    await expect(page.locator("#coinin-chart rect.bar")).to_have_count(1)
    # One row per game: the win of the same game joins the bet's row.
    win = await terminal.publish("winPaid", {"amount": 1000, "credits": 1000, "kind": "machine"})
    await expect(page.locator(f'#feed-body tr[data-events~="{win["id"]}"]')).to_have_attribute(
        "data-event-id", bet["id"], timeout=WAIT_MS)
    await expect(feed_row.locator('[data-field="win"]')).to_have_text("10.00")
    await expect(field(page, TERMINAL, "coinOutToday")).to_have_text("10.00", timeout=WAIT_MS)

    # Lock: confirmed with a reason; the action reaches the terminal, which locks the
    # machine; the row follows.
    await row(page, TERMINAL).get_by_role("button", name=f"Lock {TERMINAL}", exact=True).click()
    await confirm_with_reason(page, "suspected tampering")
    await expect(field(page, TERMINAL, "locked")).to_have_text("locked (host)", timeout=WAIT_MS)
    await expect(field(page, TERMINAL, "actionStatus")).to_have_attribute(
        "data-status", "succeeded", timeout=WAIT_MS)
    assert [(a["action"], a["from"], a["reason"]) for a in terminal.actions] == [
        ("lock", "floor-supervisor", "suspected tampering")]
    unlock = row(page, TERMINAL).get_by_role("button", name=f"Unlock {TERMINAL}", exact=True)
    await expect(unlock).to_be_enabled()
    await unlock.click()
    await confirm_with_reason(page, "checked by slot tech")
    await expect(field(page, TERMINAL, "locked")).to_have_text("unlocked", timeout=WAIT_MS)

    # An alert shows in the unacknowledged list and leaves it once acknowledged.
    door = await terminal.publish("doorOpened", {"door": "slot", "powerOff": False})
    alert = page.locator(f'#alerts li[data-alert-id="{door["id"]}"]')
    await expect(alert).to_be_visible(timeout=WAIT_MS)
    await expect(alert).to_contain_text("Door opened")
    open_alerts = await page.locator("#alerts li").count()
    await expect(page.locator("#alerts-count")).to_have_text(str(open_alerts))
    await alert.get_by_role("button", name="Acknowledge doorOpened on EGM-1").click()
    await expect(alert).to_have_count(0, timeout=WAIT_MS)
    await expect(page.locator("#alerts-count")).to_have_text(str(open_alerts - 1))
    assert hub.hub is not None
    assert hub.hub.store.alert_ack(door["id"]) is not None

    # An acknowledgement by another operator removes the alert from this page too.
    tilt = await terminal.publish("tilt", {"kind": "reel", "code": 0x20})
    other_alert = page.locator(f'#alerts li[data-alert-id="{tilt["id"]}"]')
    await expect(other_alert).to_be_visible(timeout=WAIT_MS)
    async with connect(hub.client_url, open_timeout=5) as other:
        await other.send(wire.encode(wire.auth(DASHBOARD_OPERATOR2)))
        assert json.loads(await other.recv())["type"] == "authOk"
        await other.send(wire.encode(wire.ack_alert(tilt["id"], "r1")))
        await expect(other_alert).to_have_count(0, timeout=WAIT_MS)
    await expect(page.locator("#status-line")).to_contain_text("slot-tech")


async def test_refused_token_shows_a_clear_error_and_does_not_retry(
    hub: HubHarness, page: Any
) -> None:
    await page.goto(hub.page_url)
    await page.get_by_label("Access token").fill("not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#login-error")).to_contain_text("refused", timeout=WAIT_MS)
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "refused")
    await expect(page.locator("#dashboard")).to_be_hidden()
    assert await page.evaluate("sessionStorage.getItem('slot-hub-token')") is None

    # A terminal token is refused for the dashboard with its own message.
    await page.get_by_label("Access token").fill(DASHBOARD_TERMINAL_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#login-error")).to_contain_text("not a viewer or operator",
                                                               timeout=WAIT_MS)


async def test_viewer_sees_the_floor_but_cannot_act(
    hub: HubHarness, terminal: ScriptedTerminal, page: Any
) -> None:
    await sign_in(page, hub, DASHBOARD_VIEWER)
    await subscribed_to(page, ALL_CHANNELS)
    await expect(field(page, TERMINAL, "online")).to_have_text("online", timeout=WAIT_MS)
    await expect(row(page, TERMINAL).locator('button[data-action="lock"]')).to_be_disabled()
    await expect(row(page, TERMINAL).locator('button[data-action="unlock"]')).to_be_disabled()
    door = await terminal.publish("doorOpened", {"door": "cashbox", "powerOff": False})
    alert = page.locator(f'#alerts li[data-alert-id="{door["id"]}"]')
    await expect(alert).to_be_visible(timeout=WAIT_MS)
    await expect(alert.locator("button[data-ack]")).to_be_disabled()
    assert terminal.actions == []


async def test_unchecking_a_channel_unsubscribes_it(
    hub: HubHarness, terminal: ScriptedTerminal, page: Any
) -> None:
    await sign_in(page, hub, DASHBOARD_OPERATOR)
    await subscribed_to(page, ALL_CHANNELS)
    await page.get_by_label("game", exact=True).uncheck()
    await subscribed_to(page, "alerts,cash,player,system")

    # The hub stores and fans out in order: once the later alert is shown, the bet would
    # have been too, had the page still been subscribed to `game`.
    bet = await terminal.publish("betPlaced", {"amount": 100, "credits": 100, "denomination": 1,
                                               "games": 1, "gameNumber": 2})
    door = await terminal.publish("doorOpened", {"door": "belly", "powerOff": False})
    await expect(page.locator(f'#feed-body tr[data-event-id="{door["id"]}"]')).to_be_visible(
        timeout=WAIT_MS)
    await expect(page.locator(f'#feed-body tr[data-event-id="{bet["id"]}"]')).to_have_count(0)

    await page.get_by_label("game", exact=True).check()
    await subscribed_to(page, ALL_CHANNELS)
    # Re-subscribing asks for a fresh snapshot, which brings the missed coin-in into the chart.
    await expect(page.locator("#chart-total")).to_have_attribute("data-total", "100",
                                                                 timeout=WAIT_MS)
    # Large amounts are grouped: 123456 cents is 1,234.56.
    handpay = await terminal.publish("handpayPending", {"amount": 123456, "kind": "jackpot"})
    await expect(page.locator(f'#feed-body tr[data-event-id="{handpay["id"]}"] '
                              '[data-field="amount"]')).to_have_text("1,234.56", timeout=WAIT_MS)


async def test_feed_keeps_the_newest_rows_only(
    hub: HubHarness, terminal: ScriptedTerminal, page: Any
) -> None:
    await sign_in(page, hub, DASHBOARD_VIEWER)
    await subscribed_to(page, ALL_CHANNELS)
    frames = await terminal.publish_many(
        [("gameStarted", {"gameNumber": n}) for n in range(FEED_LIMIT + 20)])
    rows = page.locator("#feed-body tr")
    await expect(rows.first).to_have_attribute("data-event-id", frames[-1]["id"],
                                               timeout=WAIT_MS)
    await expect(rows).to_have_count(FEED_LIMIT)
    # The oldest kept row is the FEED_LIMIT-th newest event.
    await expect(rows.last).to_have_attribute("data-event-id", frames[-FEED_LIMIT]["id"])


async def test_action_for_an_offline_terminal_shows_queued(
    hub: HubHarness, page: Any
) -> None:
    await sign_in(page, hub, DASHBOARD_OPERATOR)
    await expect(field(page, SILENT_TERMINAL, "online")).to_have_text("offline",
                                                                      timeout=WAIT_MS)
    lock = row(page, SILENT_TERMINAL).get_by_role("button", name=f"Lock {SILENT_TERMINAL}",
                                                  exact=True)
    await lock.focus()
    await page.keyboard.press("Enter")  # keyboard-usable, like every control on the page
    await expect(page.locator("#confirm-reason")).to_be_focused(timeout=WAIT_MS)
    await page.keyboard.type("machine moved to storage")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")  # Cancel, then Confirm
    await page.keyboard.press("Enter")
    status = field(page, SILENT_TERMINAL, "actionStatus")
    await expect(status).to_have_attribute("data-status", "queued", timeout=WAIT_MS)
    await expect(status).to_contain_text("lock: queued")
    # One action at a time per terminal from this page: the buttons wait for the result.
    await expect(lock).to_be_disabled()


async def test_page_reconnects_when_the_hub_comes_back(
    hub: HubHarness, terminal: ScriptedTerminal, page: Any
) -> None:
    await sign_in(page, hub, DASHBOARD_OPERATOR)
    await expect(field(page, TERMINAL, "online")).to_have_text("online", timeout=WAIT_MS)
    await terminal.close()
    await hub.stop()
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "reconnecting",
                                                                timeout=WAIT_MS)
    await expect(row(page, TERMINAL).locator('button[data-action="lock"]')).to_be_disabled()

    await hub.start()  # same port, same database
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "connected",
                                                                timeout=WAIT_MS)
    await subscribed_to(page, ALL_CHANNELS)
    # The fresh snapshot shows what happened while the page was away.
    await expect(field(page, TERMINAL, "online")).to_have_text("offline", timeout=WAIT_MS)
    await expect(row(page, TERMINAL).locator('button[data-action="lock"]')).to_be_enabled()


async def test_the_page_works_under_its_content_security_policy(
    hub: HubHarness, terminal: ScriptedTerminal, page: Any,
) -> None:
    """Script, style, icon and the WebSocket are all allowed by the policy the hub sends."""
    response = await page.goto(hub.page_url)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    await expect(page.locator("#login-panel")).to_be_visible(timeout=WAIT_MS)
    # The stylesheet applied (style-src 'self'): the login panel is laid out by style.css.
    assert await page.evaluate("document.styleSheets.length") >= 1
    await sign_in(page, hub, DASHBOARD_OPERATOR)  # app.js ran and its WebSocket connected
    await subscribed_to(page, ALL_CHANNELS)
    bet = await terminal.publish("betPlaced", {"amount": 100, "credits": 100,
                                               "denomination": 1})
    await expect(page.locator(f'#feed-body tr[data-event-id="{bet["id"]}"]')).to_have_count(
        1, timeout=WAIT_MS)
