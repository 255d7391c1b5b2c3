"""The hub's batch insert while the event loop holds the interpreter lock.

The store's writer thread commits each group on a thread of its own so that the fsync never
stalls the event loop; but the sqlite3 module releases the interpreter lock around each
statement step and must take it back afterwards. ``executemany`` steps once per row, so a
1,000-row commit takes the lock back 1,000 times, each time waiting for the event loop to let
go of it (at its next system call, or after the 5 ms switch interval). The store now inserts
with multi-row statements of up to 256 rows (hub/store.py ``_insert_many``): a handful of
steps per commit.

This script measures a 1,000-event commit (3,000 terminals, bursts of 5, ``synchronous``
FULL, through :meth:`hub.store.HubStore.insert_events`) beside a thread that does what a
busy event loop does: Python work in 50 µs slices, each ended by a small write to a pipe (a
system call that releases the lock), for ``busy`` of every millisecond, idle for the rest.
Each busy level runs ``executemany`` (the baseline, as the store did before) and the
multi-row insert alternately in the same process, so the machine's load weighs on both
alike. Figures: commit wall time p50 and p90, the ratio of the two p50s, and the load
average, per level and way.

Run: ``python bench/store_gil.py [--busy 0 0.7 0.9] [--commits 60]``.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchlib import HelpDefaults, header, load_average, percentile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hub.store as hub_store  # noqa: E402
from hub.store import HubStore  # noqa: E402
from hub.store_sql import EventWrite  # noqa: E402

MULTI_ROW = hub_store._insert_many


def _executemany(db: sqlite3.Connection, head: str, values: str,
                 rows: Sequence[Sequence[Any]], tail: str = "", *,
                 last_ids: list[tuple[int, int]] | None = None) -> int:
    """The baseline: one statement stepped once per row (the store before the change).

    Same signature as ``hub.store._insert_many``. ``executemany`` leaves ``lastrowid``
    unset, so ``last_ids`` gets 0 for it and the store reads the row ids from the sequence
    (two one-row queries per commit, next to the 1,000 row steps measured)."""
    cur = db.executemany(head + values + tail, rows)
    if last_ids is not None:
        last_ids.append((cur.rowcount, 0))
    return int(cur.rowcount)


class BusyLoop:
    """A thread holding the interpreter lock ``busy`` of every millisecond, in 50 µs slices
    each ended by a system call, as an event loop writing to sockets does."""

    def __init__(self, busy: float) -> None:
        self.busy = busy
        self._stop = threading.Event()
        read_end, self._write_end = os.pipe()
        self._drain = subprocess.Popen(["cat"], stdin=read_end, stdout=subprocess.DEVNULL)
        os.close(read_end)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BusyLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self._write_end)
        self._drain.wait()

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            while time.perf_counter() - start < self.busy * 0.001:
                until = time.perf_counter() + 0.00005
                spins = 0
                while time.perf_counter() < until:
                    spins += 1
                os.write(self._write_end, b"x" * 64)
            if self.busy < 1:
                time.sleep((1 - self.busy) * 0.001)


class Floor:
    """3,000 terminals' events in bursts of 5, as the group commit gathers them."""

    def __init__(self, terminals: int = 3000) -> None:
        self.terminals = [f"T{i:05d}" for i in range(terminals)]
        self.seqs = dict.fromkeys(self.terminals, 0)

    def group(self, size: int) -> list[EventWrite]:
        out: list[EventWrite] = []
        while len(out) < size:
            terminal = random.choice(self.terminals)
            for _ in range(5):
                seq = self.seqs[terminal] = self.seqs[terminal] + 1
                frame = {"type": "event", "id": f"{terminal}-{seq}", "seq": seq,
                         "terminalId": terminal, "channel": "game", "event": "betPlaced",
                         "timestamp": "2026-12-07T00:00:00.000Z",
                         "data": {"amount": 100, "credits": 100}}
                out.append(EventWrite(frame, terminal, acked_seq=seq,
                                      data_text='{"amount":100,"credits":100}'))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    parser.add_argument("--busy", type=float, nargs="+", default=[0.0, 0.7, 0.9],
                        help="share of each millisecond the loop thread holds the lock")
    parser.add_argument("--commits", type=int, default=60, help="commits per way and level")
    parser.add_argument("--size", type=int, default=1000, help="events per commit")
    args = parser.parse_args()
    header("the store's commit beside a busy event loop (executemany vs multi-row insert)")
    print(f"# {args.size} events per commit, 3,000 terminals, bursts of 5, synchronous FULL; "
          f"{args.commits} commits per way and level, alternated", flush=True)
    print(f"{'loop busy':>9}  {'way':<13} {'p50 ms':>8} {'p90 ms':>8}  {'ratio p50':>9}"
          "  load average (ratio: this / executemany, the baseline)")
    for busy in args.busy:
        walls: dict[str, list[float]] = {"executemany": [], "multi-row": []}
        with tempfile.TemporaryDirectory(prefix="store-gil-") as tmp:
            stores = {way: HubStore(Path(tmp) / f"{way}.db", synchronous="FULL")
                      for way in walls}
            floors = {way: Floor() for way in walls}
            try:
                with BusyLoop(busy):
                    for _ in range(args.commits + 5):
                        for way, insert in (("executemany", _executemany),
                                            ("multi-row", MULTI_ROW)):
                            hub_store._insert_many = insert
                            group = floors[way].group(args.size)
                            start = time.perf_counter()
                            stores[way].insert_events(group, time.time())
                            walls[way].append(time.perf_counter() - start)
            finally:
                hub_store._insert_many = MULTI_ROW
                for store in stores.values():
                    store.close()
        base = statistics.median(walls["executemany"][5:])
        for way, values in walls.items():
            kept = values[5:]  # the first commits warm the caches
            p50 = statistics.median(kept)
            print(f"{busy:>9.2f}  {way:<13} {p50 * 1e3:>8.1f} {percentile(kept, 90) * 1e3:>8.1f}"
                  f"  {p50 / base:>9.2f}  {load_average()}", flush=True)
    print(f"# load average {load_average()}")


if __name__ == "__main__":
    main()
