"""Outbox throughput: durable appends per second with fsync on.

Three ways to store the same ``betPlaced`` events (with their meters, about 170 bytes each)
in a WAL database with ``synchronous=FULL``:

- **group commit**: :meth:`agent.store.outbox.Outbox.commit` with a batch of events and the new
  state, one transaction (one fsync) per batch — what the pipeline does;
- **naive** (baseline): the same call with one event per transaction;
- **limit**: raw ``executemany`` of the same events into the same table with the same
  pragmas, one transaction per batch, encoding each event's data as JSON on the way with one
  reused encoder, as the outbox does (the least any store of these events does) — and, for
  reference, the same with the rows encoded beforehand (SQLite alone on this disk).

Targets: group commit >= 50 % of the limit and >= 20 x the naive baseline.
Run: ``python bench/outbox_throughput.py`` (``--help`` for sizes). The database goes
in ``--dir`` (default: the system temp dir); on tmpfs an fsync costs nothing and the ratios
mean little, so use a directory on the disk the agent would use.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import HelpDefaults, Verdict, exit_with, header, median, repeat, verdicts

from agent.store.outbox import Outbox
from api.events import Event, utc_timestamp

TERMINAL = "BENCH-1"
#: The outbox's encoding of the data column (one encoder, reused).
ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)


def bet_event(i: int) -> Event:
    before = 1_520_000 + 100 * i
    return Event("betPlaced", utc_timestamp(time.time()), {
        "amount": 100, "credits": 100, "denomination": 1, "games": 1, "gameNumber": 3,
        "meters": {"coinIn": [before, before + 100], "gamesPlayed": [i, i + 1]},
    })


def state_for(i: int) -> dict[str, Any]:
    """An interpreter-state-sized blob (meter baselines of one machine)."""
    return {"machines": {"1": {"meters": {f"{code:02X}": 1_000_000 + i for code in range(40)},
                               "locked": False, "session": None}}}


def group_commit(workdir: Path, events: int, batch: int) -> float:
    path = workdir / "group.db"
    with Outbox.open(path, terminal_id=TERMINAL, max_events=events * 2) as box:
        pending = [bet_event(i) for i in range(events)]
        start = time.perf_counter()
        for lo in range(0, events, batch):
            box.commit(pending[lo:lo + batch], state_for(lo))
        elapsed = time.perf_counter() - start
        assert box.last_seq == events
    return events / elapsed


def naive(workdir: Path, events: int) -> float:
    path = workdir / "naive.db"
    with Outbox.open(path, terminal_id=TERMINAL, max_events=events * 2) as box:
        pending = [bet_event(i) for i in range(events)]
        start = time.perf_counter()
        for i, event in enumerate(pending):
            box.commit([event], state_for(i))
        elapsed = time.perf_counter() - start
        assert box.last_seq == events
    return events / elapsed


def raw_limit(workdir: Path, events: int, batch: int) -> float:
    return _raw(workdir, events, batch, encode_in_timing=True)


def sqlite_alone(workdir: Path, events: int, batch: int) -> float:
    return _raw(workdir, events, batch, encode_in_timing=False)


def _raw(workdir: Path, events: int, batch: int, *, encode_in_timing: bool) -> float:
    path = workdir / "raw.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, name TEXT NOT NULL, channel TEXT NOT "
        "NULL, timestamp TEXT NOT NULL, data TEXT NOT NULL, protected INTEGER NOT NULL, "
        "created_at REAL NOT NULL)"
    )
    now = time.time()
    pending = [bet_event(i) for i in range(events)]

    def encode(lo: int, hi: int) -> list[tuple[Any, ...]]:
        return [(i + 1, e.name, e.channel.value, e.timestamp, ENCODER.encode(e.data), 1, now)
                for i, e in enumerate(pending[lo:hi], start=lo)]

    ready = None if encode_in_timing else encode(0, events)
    start = time.perf_counter()
    for lo in range(0, events, batch):
        rows = encode(lo, lo + batch) if ready is None else ready[lo:lo + batch]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return events / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    parser.add_argument("--events", type=int, default=20_000, help="events per batched run")
    parser.add_argument("--naive-events", type=int, default=1_000,
                        help="events per naive run (one fsync each)")
    parser.add_argument("--batch", type=int, default=100, help="events per transaction")
    parser.add_argument("--runs", type=int, default=5, help="repetitions; medians are quoted")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the databases go (default: system temp dir)")
    args = parser.parse_args()

    header("outbox throughput (durable appends/s, WAL + synchronous=FULL)")
    print(f"# {args.events:,} events per batched run in batches of {args.batch}; "
          f"{args.naive_events:,} per naive run; {args.runs} runs")

    def fresh(kind: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"outbox-bench-{kind}-", dir=args.dir))

    def measure(fn: Any, *fn_args: Any) -> Any:
        def run(_: int) -> float:
            workdir = fresh(fn.__name__)
            try:
                return float(fn(workdir, *fn_args))
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        return run

    # Interleave the three so that noise on a shared machine hits them alike.
    group_runs: list[float] = []
    naive_runs: list[float] = []
    limit_runs: list[float] = []
    alone_runs: list[float] = []
    for i in range(args.runs):
        group_runs += repeat(1, measure(group_commit, args.events, args.batch),
                             f"group commit #{i + 1}")
        naive_runs += repeat(1, measure(naive, args.naive_events), f"naive #{i + 1}")
        limit_runs += repeat(1, measure(raw_limit, args.events, args.batch),
                             f"raw limit #{i + 1}")
        alone_runs += repeat(1, measure(sqlite_alone, args.events, args.batch),
                             f"sqlite alone #{i + 1}")

    g, n, lim = median(group_runs), median(naive_runs), median(limit_runs)
    alone = median(alone_runs)
    print("medians (events/s):")
    print(f"  group commit  {g:12,.0f}")
    print(f"  naive         {n:12,.0f}   (one transaction per event)")
    print(f"  raw limit     {lim:12,.0f}   (executemany, same batch, JSON encoding included)")
    print(f"  sqlite alone  {alone:12,.0f}   (executemany of rows encoded beforehand)")
    print(f"  group / limit = {g / lim:.2f}; group / sqlite alone = {g / alone:.2f}; "
          f"group / naive = {g / n:.1f}")
    return verdicts([
        Verdict("group commit / raw limit", g / lim, 0.5, at_least=True),
        Verdict("group commit / naive", g / n, 20.0, at_least=True),
    ])


if __name__ == "__main__":
    exit_with(main())
