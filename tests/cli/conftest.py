"""The CLI tests' hub: on its own thread (the code under test runs as subprocesses), port 0,
knowing the one terminal EGM-T1 and the operator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hub import HubHarness, hub_in_thread
from tests.support.tokens import for_terminal

TERMINAL = "EGM-T1"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubHarness]:
    with hub_in_thread(tmp_path, for_terminal(TERMINAL)) as harness:
        yield harness
