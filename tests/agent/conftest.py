"""The uplink tests' hub: in-process on the test's loop, port 0, the shared token table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.hub import HubHarness


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    harness = HubHarness(tmp_path)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()
