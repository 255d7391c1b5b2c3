"""Crash durability: a real process killed with SIGKILL mid-stream loses nothing it committed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from agent.store.outbox import Outbox
from tests.support import ROOT

# The child appends batches forever. It prints the last seq of a batch only AFTER commit()
# returned, so every printed seq must survive the kill. Its state records the last batch, so
# state and events must always agree after a restart.
CHILD = r"""
import sys
from api.events import Event
from agent.store.outbox import Outbox

ob = Outbox.open(sys.argv[1], terminal_id="KILL-1")
state = ob.load_state() or {"batch": 0, "last_seq": 0}
assert state["last_seq"] == ob.last_seq, (state, ob.last_seq)
batch_no = state["batch"]
while True:
    batch_no += 1
    size = 1 + batch_no % 7
    events = [Event("betPlaced" if i % 2 else "gameStarted", "2026-01-01T00:00:00.000Z",
                    {"batch": batch_no, "i": i}) for i in range(size)]
    expected_last = ob.last_seq + size
    stored = ob.commit(events, {"batch": batch_no, "last_seq": expected_last})
    print(stored[-1].seq, flush=True)
"""


def test_sigkill_at_random_points_loses_no_committed_batch(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    rng = random.Random(20261125)
    printed: list[int] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _round in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        assert child.stdout is not None
        try:
            for _ in range(rng.randint(1, 60)):
                line = child.stdout.readline()
                assert line, f"child ended early: {child.stderr.read() if child.stderr else ''}"
                printed.append(int(line))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        # Lines the child printed before the kill landed are committed too: read them all.
        printed.extend(int(x) for x in child.stdout.read().split())

        with Outbox.open(db, terminal_id="KILL-1") as ob:
            assert ob.recovered_from is None
            events = ob.pending(0, 1_000_000)
            seqs = [s.seq for s in events]
            assert seqs == list(range(1, len(seqs) + 1)), "seqs must be gap-free, no duplicates"
            assert max(printed) <= ob.last_seq == len(seqs)
            state = ob.load_state()
            assert state is not None and state["last_seq"] == ob.last_seq
            # The last stored event belongs to the batch the state describes.
            assert events[-1].event.data["batch"] == state["batch"]
            # Batches are whole: every batch's events are all there, in order.
            by_batch: dict[int, list[int]] = {}
            for s in events:
                by_batch.setdefault(s.event.data["batch"], []).append(s.event.data["i"])
            for batch, idx in by_batch.items():
                assert idx == list(range(1 + batch % 7)), f"batch {batch} torn: {idx}"
    assert len(printed) >= 6
