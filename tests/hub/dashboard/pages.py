"""What the dashboard tests do on the page: sign in, wait for the subscription, find a
terminal's row and its fields. Every expectation is bounded by ``WAIT_MS``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.browser import CHROMIUM
from tests.support.hub import HubHarness

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

WAIT_MS = 10_000
ALL_CHANNELS = "alerts,cash,game,player,system"

#: Every dashboard test module carries these marks.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"headless Chromium is not installed at {CHROMIUM}"),
]


async def sign_in(page: Any, hub: HubHarness, token: str) -> None:
    """Sign in; return once connected and subscribed to every channel (the page's default)."""
    await page.goto(hub.page_url)
    await page.get_by_label("Access token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#conn-state")).to_have_attribute(
        "data-state", "connected", timeout=WAIT_MS)
    await subscribed_to(page)


async def subscribed_to(page: Any, channels: str = ALL_CHANNELS) -> None:
    """Wait until the hub confirmed the page's subscription (its `subscribed` reply)."""
    await expect(page.locator("#channel-filters")).to_have_attribute(
        "data-subscribed", channels, timeout=WAIT_MS)


def row(page: Any, terminal_id: str) -> Any:
    return page.locator(f'#terminals-body tr[data-terminal="{terminal_id}"]')


def field(page: Any, terminal_id: str, name: str) -> Any:
    return row(page, terminal_id).locator(f'[data-field="{name}"]')
