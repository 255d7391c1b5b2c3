"""Fixtures: a hub on port 0; every frame the test peers exchange is schema-checked and
read by the typed decoder (api.decode), which must agree."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api import decode, messages, wire
from tests.hub.hubkit import HubHarness, Traffic, validate_frame


@pytest.fixture
def traffic() -> Traffic:
    return Traffic()


@pytest.fixture
async def harness(tmp_path: Path, traffic: Traffic) -> AsyncIterator[HubHarness]:
    h = HubHarness(tmp_path, traffic)
    await h.start()
    try:
        yield h
    finally:
        await h.close()
    # Real traffic must match the published schemas (docs/schemas); what the hub sent must
    # also read as its message class, to the same values.
    for msg in traffic.frames:
        validate_frame(msg)
    for msg in traffic.received:
        typed = decode.decode(wire.encode(msg), max_bytes=1 << 30)
        assert isinstance(typed, messages.Message)
        frame = typed.to_wire()
        assert all(msg[key] == value for key, value in frame.items() if key in msg), msg



