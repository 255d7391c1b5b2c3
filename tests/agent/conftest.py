"""Fixtures of the agent tests: the uplink tests' hub (in-process on the test's loop, port 0,
the shared token table) and an emulated machine on a pty."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from drivers import open_pty
from emulator.model import Machine
from emulator.server import Emulator
from tests.support.hub import HubHarness


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with HubHarness(tmp_path) as harness:
        yield harness


@pytest.fixture
def pty_url() -> Iterator[str]:
    """``pty:PATH`` of a pty whose other end an emulated machine (address 1) serves."""
    master, path = open_pty()
    emulator = Emulator(Machine(now=time.monotonic()), master, address=1)
    emulator.start()
    try:
        yield f"pty:{path}"
    finally:
        emulator.stop()
        master.close()
