"""Game lock end to end: emulator -> agent daemon -> hub -> operator, with no action sent.

The emulated machine game-locks (exception 6F, LP 74 lock status 00); the agent reads LP 74,
reports ``gameLocked`` and the hub shows the terminal locked for reason ``game``; released
(no exception: SAS has none for it), the agent's re-read of LP 74 (every
``poll.game_lock_recheck_s``) reports ``gameUnlocked`` and the hub shows it unlocked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from agent.daemon import Daemon
from drivers.memory import MemoryTransport, pair
from emulator.model import Machine
from emulator.server import Emulator
from tests.agent.uplink_kit import TERMINAL, TERMINAL_TOKEN, Operator
from tests.support.hub import HubHarness
from tests.support.tokens import write_agent_token
from tests.support.waits import wait_for


@pytest.fixture
def served() -> Iterator[tuple[Emulator, MemoryTransport]]:
    host, machine_end = pair()
    emulator = Emulator(Machine(now=time.monotonic()), machine_end, address=1)
    emulator.start()
    try:
        yield emulator, host
    finally:
        emulator.stop()


def _terminal(pred: Any) -> Any:
    return lambda m: (m["type"] == "terminal" and m["terminal"]["terminalId"] == TERMINAL
                      and pred(m["terminal"]))


async def test_a_game_lock_shows_locked_then_unlocked_on_the_hub_with_no_action(
        tmp_path: Path, served: tuple[Emulator, MemoryTransport]) -> None:
    emulator, host = served
    hub = HubHarness(tmp_path)
    await hub.start()
    token_file = write_agent_token(tmp_path / "token", TERMINAL_TOKEN)
    path = tmp_path / "agent.yaml"
    path.write_text(
        f"terminal_id: {TERMINAL}\nmachines:\n  - address: 1\nserial:\n  port: "
        f"tcp://127.0.0.1:9\noutbox:\n  path: {tmp_path / 'ob.db'}\n"
        "poll:\n  interval_ms: 40\n  reply_timeout_ms: 20\n  game_lock_recheck_s: 0.2\n"
        "metrics:\n  enabled: false\ncontrol_socket: null\n"
        f"uplink:\n  url: {hub.terminal_url}\n  allow_insecure: true\n  token_file: {token_file}\n")
    daemon = Daemon(load_config(path), transport_factory=lambda cfg: host)
    task = asyncio.create_task(daemon.run(install_signals=False))
    op: Operator | None = None
    try:
        assert await asyncio.to_thread(daemon.ready.wait, 20.0)
        await wait_for(lambda: daemon.uplink is not None and daemon.uplink.connected
                       and daemon.snapshot().link == "up", 20.0, "agent connected, link up")
        op = await Operator.connect(hub.port)
        with emulator.lock:
            emulator.machine.game_lock(time.monotonic())
        locked = await op.wait(_terminal(lambda t: t["locked"] is True), timeout=20)
        assert locked["terminal"]["lockReasons"] == ["game"]
        assert daemon._machine_status()["gameLocked"] is True  # what a new hello reports
        with emulator.lock:
            assert emulator.machine.play_refusal() == "game locked (AFT lock)"
            emulator.machine.game_unlock()
        after = op.frames.index(locked)
        unlocked = await op.wait(
            lambda m: _terminal(lambda t: t["locked"] is False)(m)
            and op.frames.index(m) > after, timeout=20)
        assert unlocked["terminal"]["lockReasons"] == []
        names = [e["event"] for e in op.events()]
        assert names.index("gameLocked") < names.index("gameUnlocked")
        assert "machineException" in names  # 6F itself is still reported
        # no action was involved: nothing asked the machine to lock or unlock
        assert not any(m["type"] in ("actionAck", "actionResult") for m in op.frames)
        assert "actionCompleted" not in names
        assert "machineLocked" not in names and "machineUnlocked" not in names
        state = hub.hub.floor.terminals[TERMINAL] if hub.hub is not None else None
        assert state is not None and state.locked is False
    finally:
        if op is not None:
            await op.close()
        daemon.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
        await hub.stop()
