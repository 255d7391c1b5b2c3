"""The CLI tests' hub: on its own thread (the code under test runs as subprocesses), port 0,
knowing the one terminal EGM-T1 and the operator; and one ``slot-agent demo`` stopped with
Ctrl-C whose output the tests that only read it share."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hub import HubHarness, hub_in_thread
from tests.support.processes import Proc
from tests.support.tokens import for_terminal

TERMINAL = "EGM-T1"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubHarness]:
    with hub_in_thread(tmp_path, for_terminal(TERMINAL)) as harness:
        yield harness


@pytest.fixture(scope="session")
def demo_stopped_by_ctrl_c() -> Proc:
    """``slot-agent demo --port 0 --games-per-minute 1200 --seed 3`` run until a summary line
    shows the link up and games played, then stopped with SIGINT (Ctrl-C), as README.md
    describes: the finished process, its whole output (``out_lines``, ``err_lines``) and its
    exit code. Shared: the README's sample and the clean stop on Ctrl-C are both read from
    it (a demo run waits for the summary lines, which come every 5 s on a pipe)."""
    proc = Proc(["demo", "--port", "0", "--games-per-minute", "1200", "--seed", "3"])
    try:
        proc.wait_for(lambda s: s.startswith("link up | games ") and " games 0 " not in s,
                      timeout=60)
        proc.signal(signal.SIGINT)
        proc.wait(60)
        proc.wait_for(lambda s: s.startswith("slot-agent demo stopped: "), timeout=30)
    finally:
        proc.stop()
    return proc
