"""Fixtures: a hub on port 0; every frame the test peers exchange is schema-checked."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hubkit import HubHarness, Traffic, validate_frame

from tests.support import postgres


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
    # Real traffic must match the published schemas (docs/schemas).
    for msg in traffic.frames:
        validate_frame(msg)




@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[postgres.Cluster]:
    """One throwaway PostgreSQL cluster for the session (each test takes a fresh database)."""
    reason = postgres.available()
    if reason is not None:
        pytest.skip(reason)
    with postgres.cluster() as cluster:
        yield cluster


_databases = itertools.count(1)


@pytest.fixture
def pg_url(pg_cluster: postgres.Cluster) -> str:
    """A libpq URL of a new, empty database."""
    return pg_cluster.create_database(f"hub_{os.getpid()}_{next(_databases)}").url
