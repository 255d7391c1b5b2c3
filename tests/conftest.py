"""Fixtures shared by every test folder: the root logger's level restored after each test, and
a throwaway PostgreSQL (tests/support/postgres.py). Also hypothesis's settings for the suite."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.support import postgres

# A test never asserts a wall-clock time: hypothesis's default per-example deadline (200 ms)
# and its too-slow health check would, and they failed property tests on a loaded machine.
settings.register_profile("slot-agent", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("slot-agent")


@pytest.fixture(autouse=True)
def _root_logger_level_restored() -> Iterator[None]:
    """A test that changes the root logger's level (a daemon reloaded to ``debug``) must not
    leave every later test logging each WebSocket frame at debug: that slowed a flooding
    client so much that it read no ack for 30 s."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[postgres.Cluster]:
    """One throwaway PostgreSQL cluster for the session, one per worker under ``-n``
    (pytest-xdist; each on its own socket folder), each test taking a fresh database;
    skipped, with the reason, where the server is not installed."""
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
