"""The backoff schedules every retrying loop of the agent takes from tenacity (the jittered
one is checked with the uplink, tests/agent/test_uplink.py)."""

from __future__ import annotations

import itertools

from agent.retry import doubling


def test_doubling_starts_at_first_and_stays_at_the_cap() -> None:
    assert list(itertools.islice(doubling(0.05, 0.3), 6)) == [0.05, 0.1, 0.2, 0.3, 0.3, 0.3]
