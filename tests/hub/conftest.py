"""Fixtures: a hub on port 0; every frame the test peers exchange is schema-checked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.hub import HubHarness, Traffic, validate_frame


@pytest.fixture
def traffic() -> Traffic:
    return Traffic()


@pytest.fixture
async def harness(tmp_path: Path, traffic: Traffic) -> AsyncIterator[HubHarness]:
    async with HubHarness(tmp_path, traffic, auth_timeout=3.0) as h:
        yield h
    # Real traffic must match the published schemas (docs/schemas).
    for msg in traffic.frames:
        validate_frame(msg)
