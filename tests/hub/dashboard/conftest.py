"""The dashboard tests' fixtures: the hub serving the dashboard (in-process, port 0, restartable
on its port), the scripted terminal EGM-1, and a page in headless Chromium.

``page`` opens at the ``wide`` viewport; a module parametrizes it indirectly with other names
from ``VIEWPORTS``. After each test it asserts that the page raised no JavaScript error and that
the Content-Security-Policy the hub sends blocked nothing.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.hub.dashboard.scripted_terminal import ScriptedTerminal
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.hub import HubHarness
from tests.support.tokens import DASHBOARD_TERMINAL, DASHBOARD_TERMINAL_TOKEN, DASHBOARD_TOKENS

VIEWPORTS = {"wide": (1600, 1000), "desk": (1440, 900), "phone": (390, 844)}


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with HubHarness(tmp_path, tokens=DASHBOARD_TOKENS, dashboard=True,
                          timezone="America/Los_Angeles", gaming_day_start=6) as harness:
        yield harness


@pytest.fixture
async def terminal(hub: HubHarness) -> AsyncIterator[ScriptedTerminal]:
    """The terminal side; the emulator + agent uplink can take its place (TerminalSide)."""
    side = ScriptedTerminal(hub.terminal_url, DASHBOARD_TERMINAL_TOKEN, DASHBOARD_TERMINAL)
    await side.start()
    try:
        yield side
    finally:
        await side.close()


@pytest.fixture
async def page(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    playwright_api = pytest.importorskip("playwright.async_api")
    viewport = getattr(request, "param", "wide")
    width, height = VIEWPORTS[viewport]
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": width, "height": height})
            tab = await context.new_page()
            tab.label = f"{request.node.originalname}-{viewport}"
            errors: list[str] = []
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            blocked: list[str] = []
            tab.on("console", lambda msg: blocked.append(msg.text)
                   if "Content Security Policy" in msg.text else None)
            yield tab
            shot = os.environ.get("DASHBOARD_SCREENSHOT")
            if shot:
                await tab.screenshot(path=shot, full_page=True)
            assert errors == [], f"JavaScript errors on the page: {errors}"
            assert blocked == [], f"blocked by the Content-Security-Policy: {blocked}"
        finally:
            await browser.close()
