"""The heap sweeper of the agent's two processes (agent/ops/heap.py): start-up frozen, free
lists emptied on schedule, so tuples freed after a burst do not hold their memory for the
process's life; the daemon runs it when given one (``slot-agent run`` gives it)."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.daemon import Daemon
from agent.ops.heap import SWEEP_S, HeapSweeper
from drivers.memory import MemoryTransport
from tests.agent.test_daemon import _config, host_end  # noqa: F401  (a fixture)
from tests.support.waits import wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def full_collections() -> Iterator[list[int]]:
    """Counts the interpreter's full (generation 2) collections while the test runs."""
    seen: list[int] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2:
            seen.append(1)

    gc.callbacks.append(callback)
    try:
        yield seen
    finally:
        gc.callbacks.remove(callback)


def _burst_of_one_tuples(n: int = 5000) -> None:
    """As many 1-tuples alive at once as a backlog would hold, then freed: CPython keeps up
    to 2,000 of them on its free list."""
    burst = [(i + 10_000_000,) for i in range(n)]
    del burst


def test_a_sweep_runs_only_when_due(full_collections: list[int]) -> None:
    clock = Clock()
    sweeper = HeapSweeper(clock=clock)
    assert not sweeper.maybe_sweep()
    clock.now += SWEEP_S - 0.5
    assert not sweeper.maybe_sweep()
    assert full_collections == []
    clock.now += 0.5
    assert sweeper.maybe_sweep()
    assert len(full_collections) == 1 and sweeper.sweeps == 1
    assert not sweeper.maybe_sweep()  # the next one a full period later
    clock.now += SWEEP_S
    assert sweeper.maybe_sweep() and sweeper.sweeps == 2


def test_a_sweep_gives_back_what_the_free_lists_held() -> None:
    clock = Clock()
    sweeper = HeapSweeper(clock=clock)
    _burst_of_one_tuples()
    held = sys.getallocatedblocks()
    assert not sweeper.maybe_sweep()
    assert held - sys.getallocatedblocks() < 500  # not due: the free list keeps its tuples
    clock.now += SWEEP_S
    assert sweeper.maybe_sweep()
    assert held - sys.getallocatedblocks() >= 1500  # the ~2,000 tuples of the free list


def test_freeze_keeps_start_up_out_of_later_collections() -> None:
    sweeper = HeapSweeper()
    try:
        sweeper.freeze()
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # this interpreter's modules, classes and functions
        tracked = len(gc.get_objects())
        assert tracked < frozen  # what a collection walks now: only what came after
    finally:
        gc.unfreeze()


class RecordingSweeper(HeapSweeper):
    """Counts instead of freezing: a freeze would hold for the test's whole interpreter."""

    def __init__(self) -> None:
        super().__init__(every=0.05)
        self.freezes = 0

    def freeze(self) -> None:
        self.freezes += 1

    def sweep(self) -> None:
        self.sweeps += 1


async def test_the_daemon_freezes_once_started_and_sweeps_on_schedule(
        tmp_path: Path, host_end: MemoryTransport) -> None:  # noqa: F811
    heap = RecordingSweeper()
    daemon = Daemon(_config(tmp_path), transport_factory=lambda cfg: host_end, heap=heap)
    task = asyncio.create_task(daemon.run(install_signals=False))
    try:
        assert await asyncio.to_thread(daemon.ready.wait, 20.0)
        await wait_for(lambda: heap.sweeps >= 3, what=lambda: f"{heap.sweeps} sweeps")
        assert heap.freezes == 1
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
    assert [t.done() for t in daemon._tasks if t.get_name() == "heap"] == [True]  # ended with it
