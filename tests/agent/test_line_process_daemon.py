"""The daemon with its line owner in a process of its own (the product path for a configured
line): a reload reaches the child, and a killed child stops the daemon with a failure status
after reporting the machine link down. No sleeps: bounded waits on conditions."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import load_config
from agent.daemon import EXIT_LINE_FAILED, Daemon
from agent.line.process import LineProcess
from agent.store.outbox import Outbox

pytestmark = pytest.mark.timeout(90)


async def _until(predicate: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.to_thread(pause.wait, 0.02)  # a polling step of the bounded wait


async def test_reload_and_death_of_the_line_process(tmp_path: Path, pty_url: str) -> None:
    path = tmp_path / "agent.yaml"
    base = (f"terminal_id: T-LP\nmachines:\n  - address: 1\nserial:\n  port: {pty_url}\n"
            f"outbox:\n  path: {tmp_path / 'ob.db'}\nmetrics:\n  enabled: false\n"
            "control_socket: null\n")
    path.write_text(base + "poll:\n  interval_ms: 100\n")
    daemon = Daemon(load_config(path))  # the configured line: the line process
    task = asyncio.create_task(daemon.run(install_signals=False))
    try:
        assert await asyncio.to_thread(daemon.ready.wait, 20.0)
        line = daemon.line
        assert isinstance(line, LineProcess) and line.pid is not None
        assert line.pid != os.getpid()
        await _until(lambda: daemon.snapshot().link == "up", "the machine link up")
        path.write_text(base + "poll:\n  interval_ms: 60\n")
        assert await daemon.reload() == (["poll.interval_ms"], [])
        assert daemon.status()["line"]["intervalMs"] == 60  # the child's own answer
        assert daemon.status()["line"]["pid"] == line.pid
        daemon._alive()  # the watchdog's baseline
        cycles = line.cycles
        await _until(lambda: line.cycles > cycles, "a cycle counted")
        assert daemon._alive() is True
        os.kill(line.pid, signal.SIGKILL)
        code = await asyncio.wait_for(task, 30)
    finally:
        if not task.done():
            daemon.request_stop()
            await asyncio.wait_for(task, 30)
    assert code == EXIT_LINE_FAILED  # not 0: systemd's Restart=on-failure restarts it
    assert daemon._alive() is False
    with Outbox.open_reader(tmp_path / "ob.db") as reader:
        events = [e.event for e in reader.pending(0, 10_000)]
    down = [e for e in events if e.name == "machineLinkDown"]
    assert down and "line process killed by SIGKILL" in str(down[-1].data)
    assert events[-1].name == "agentStopping" and events[-1].data["reason"] == "lineFailed"
