"""Fixtures: a hub on port 0; every frame the test peers exchange is schema-checked and
read by the typed decoder (api.decode), which must agree."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from api import decode, messages, wire
from tests.support.hub import HubHarness, Traffic, validate_frame

if TYPE_CHECKING:
    from hub.store_api import Store


@pytest.fixture
def traffic() -> Traffic:
    return Traffic()


@pytest.fixture
async def harness(tmp_path: Path, traffic: Traffic) -> AsyncIterator[HubHarness]:
    async with HubHarness(tmp_path, traffic, auth_timeout=3.0) as h:
        yield h
    # Real traffic must match the published schemas (docs/schemas); what the hub sent must
    # also read as its message class, to the same values.
    for msg in traffic.frames:
        validate_frame(msg)
    for msg in traffic.received:
        typed = decode.decode(wire.encode(msg), max_bytes=1 << 30)
        assert isinstance(typed, messages.Message)
        frame = typed.to_wire()
        assert all(msg[key] == value for key, value in frame.items() if key in msg), msg


@pytest.fixture(params=["sqlite", "postgresql"])
def either_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store of each engine in turn: SQLite in a temporary file, PostgreSQL in a new
    database of the throwaway cluster (tests/support/postgres.py)."""
    from hub.store import HubStore

    s: Store
    if request.param == "sqlite":
        s = HubStore(tmp_path / "hub.db", synchronous="NORMAL")
    else:
        from hub.store_pg import PgStore

        s = PgStore(request.getfixturevalue("pg_url"), synchronous="NORMAL", origin="test")
    try:
        yield s
    finally:
        s.close()
