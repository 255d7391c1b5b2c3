"""The whole loop in headless Chromium: emulator -> agent -> hub -> dashboard -> agent -> emulator.

Nothing scripted: the emulator (``slot-agent emulate``, autoplay) serves SAS over TCP, the
agent (``slot-agent run``) polls it and streams to the reference hub (in-process thread, port
0), and the dashboard page the hub serves is driven in Chromium. A click on Lock travels to
the agent, which sends LP 01 to the emulator; the row turns "locked" only when the machine's
ACK came back and the agent's ``machineLocked`` reached the hub. That the machine really
stopped play is checked on the machine itself: its games-played meter, read through the
running agent, stays put over many poll cycles while locked and moves again once unlocked.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.full_loop_helpers import DaemonView
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.hub import HubHarness
from tests.support.processes import Proc, start_emulator, write_agent_config
from tests.support.tokens import OPERATOR
from tests.support.waits import wait_until

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"headless Chromium is not installed at {CHROMIUM}"),
    pytest.mark.timeout(90),
]

TERMINAL = "EGM-T1"
WAIT_MS = 30_000  # every expectation on the page is bounded by this
#: Poll cycles the machine must sit locked without a game. At the agent's 40 ms cadence this
#: spans several games' worth of the emulator's 120 games a minute.
LOCKED_CYCLES = 60


@pytest.fixture
def emulator() -> Iterator[str]:
    # Seed 3 plays its first minute with no door, tilt or handpay (each stops the play for 8
    # to 20 s, emulator/autoplay.py; seed 1 held a door open from 1.5 s to 10 s).
    proc, url = start_emulator("--scenario", "autoplay", "--seed", "3",
                               "--games-per-minute", "120")
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture
def agent(tmp_path: Path, emulator: str, hub: HubHarness) -> Iterator[DaemonView]:
    """``slot-agent run`` against the emulator and the hub; its control socket as a view."""
    cfg = write_agent_config(tmp_path, port=emulator, hub=hub, terminal_id=TERMINAL)
    socket_path = Path(yaml.safe_load(cfg.read_text())["control_socket"])
    proc = Proc(["run", "--config", str(cfg)])
    try:
        proc.wait_for(lambda s: "slot-agent running" in s, timeout=30)
        yield DaemonView(socket_path)
        assert proc.popen.poll() is None, f"the agent died: {proc.err_lines[-20:]}"
    finally:
        proc.stop()
        shutil.rmtree(socket_path.parent, ignore_errors=True)


@pytest.fixture
def page() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
            errors: list[str] = []
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            yield tab
            assert errors == [], f"JavaScript errors on the page: {errors}"
        finally:
            browser.close()


def field(page: Any, name: str) -> Any:
    return page.locator(f'#terminals-body tr[data-terminal="{TERMINAL}"] [data-field="{name}"]')


def feed(page: Any, event: str) -> Any:
    return page.locator(f'#feed-body tr[data-terminal="{TERMINAL}"][data-event="{event}"]')


def confirm(page: Any, reason: str) -> None:
    """Every action is confirmed in a dialog, with a reason (kept in the audit trail)."""
    page.locator("#confirm-reason").fill(reason)
    page.locator("#confirm-ok").click()
    expect(page.locator("#confirm-dialog")).to_be_hidden(timeout=WAIT_MS)


def button(page: Any, label: str) -> Any:
    row = page.locator(f'#terminals-body tr[data-terminal="{TERMINAL}"]')
    return row.get_by_role("button", name=f"{label} {TERMINAL}", exact=True)


def test_operator_sees_emulator_play_and_locks_and_unlocks_the_real_machine(
    hub: HubHarness, agent: DaemonView, page: Any
) -> None:
    page.goto(hub.page_url)
    page.get_by_label("Access token").fill(OPERATOR)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#conn-state")).to_have_attribute("data-state", "connected",
                                                          timeout=WAIT_MS)
    expect(page.locator("#session-role")).to_have_text("ops (operator)", timeout=WAIT_MS)
    expect(page.locator("#channel-filters")).to_have_attribute(
        "data-subscribed", "alerts,cash,game,player,system", timeout=WAIT_MS)

    # The agent is connected and polls the machine; the emulator's play shows in the feed.
    expect(field(page, "online")).to_have_text("online", timeout=WAIT_MS)
    expect(field(page, "link")).to_have_text("up", timeout=WAIT_MS)
    # One feed row per game: bet, win, new credits.
    expect(feed(page, "game").first).to_be_visible(timeout=WAIT_MS)
    expect(feed(page, "game").first).to_have_attribute("data-channel", "game")

    # Lock: LP 01 to the machine, its ACK, then machineLocked back through the hub.
    button(page, "Lock").click()
    confirm(page, "full-loop test: lock")
    expect(field(page, "locked")).to_have_text("locked (host)", timeout=WAIT_MS)
    expect(field(page, "actionStatus")).to_have_attribute("data-status", "succeeded",
                                                          timeout=WAIT_MS)
    expect(feed(page, "machineLocked").first).to_contain_text("by web-", timeout=WAIT_MS)

    # The machine really stopped play: its games-played meter, read from the machine, does
    # not move while the agent completes many poll cycles.
    games_locked = agent.games_played()
    cycles = agent.poll_cycles()
    wait_until(lambda: agent.poll_cycles() >= cycles + LOCKED_CYCLES, timeout=30,
               what=f"{LOCKED_CYCLES} poll cycles while locked")
    assert agent.games_played() == games_locked, "the locked machine went on playing"

    # Unlock: the row follows, the machine plays again and new bets reach the page.
    unlock = button(page, "Unlock")
    expect(unlock).to_be_enabled(timeout=WAIT_MS)
    unlock.click()
    confirm(page, "full-loop test: unlock")
    expect(field(page, "locked")).to_have_text("unlocked", timeout=WAIT_MS)
    expect(field(page, "actionStatus")).to_have_attribute("data-status", "succeeded",
                                                          timeout=WAIT_MS)
    wait_until(lambda: agent.games_played() > games_locked, timeout=30,
               what="a game played after the unlock")
    # Newest rows are on top: a game row above the machineUnlocked row was played after the
    # unlock.
    after_unlock = page.locator(f'#feed-body tr[data-terminal="{TERMINAL}"][data-event="game"]'
                                ':has(~ tr[data-event="machineUnlocked"])')
    expect(after_unlock.first).to_be_visible(timeout=WAIT_MS)

    # The hub stored the agent's lock events in order: locked, then unlocked ...
    names = [n for n in hub.event_names(TERMINAL) if n in ("machineLocked", "machineUnlocked")]
    assert names and names[0] == "machineLocked" and names[-1] == "machineUnlocked", names
    assert names.index("machineUnlocked") == names.count("machineLocked"), names
    # ... and each exactly once per action (the line owner alone reports the machine's ACK).
    assert names == ["machineLocked", "machineUnlocked"], names
