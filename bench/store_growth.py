"""The SQLite store's per-event cost as the events table grows, per index layout.

``bench/hub_costs.py`` times the store on an empty table; under floor load the insert costs
more as the table grows, because each group-commit transaction holds the events of many
terminals and each per-terminal index gets a dirty leaf page per terminal, written whole to
the WAL at every commit (docs/performance.md, "the store as it grows"). This script fills
one database per variant with the same stream of events, in the same order and in the
transactions the hub's group commit makes under load (``--tx`` events, bursts of
``--burst`` from ``--terminals`` terminals interleaved, ``synchronous: FULL``), with the
hub's own insert (``HubStore.insert_events``), and prints per segment of ``--segment`` rows:

- CPU µs per event of the writing thread (SQLite runs in it; the autocheckpoint too);
- wall µs per event of the same calls (fsyncs included);
- WAL bytes per event (frames the commits appended, from the WAL index header, whose
  layout is SQLite's documented file format: ``mxFrame`` at offset 16 of the -shm file);
- bytes written and read per event by the thread (``wchar`` / ``rchar`` of
  /proc/thread-self/io: WAL, checkpoint copies, and index pages read back).

The variants fill their databases in lockstep (a segment of each in turn), so a change in
the machine's load falls on all of them; the ratios against the first variant (the
baseline) are the figures to quote. A variant is a comma-separated list: ``old`` (the
store before: ``events_by_id`` created again, ``wal_autocheckpoint`` 1,000 pages) or ``new``
(the current store), then ``page=N`` (page size of a new database), ``cache=KiB`` (the writer's
page cache), ``ckpt=N`` (``wal_autocheckpoint`` pages), ``bg=N`` (the writer checkpoints
never; a thread of its own does, past N frames: its CPU is shown apart), ``drop=INDEX``
(an index left out, to see what it costs). Run:
``.venv/bin/python bench/store_growth.py [--rows 1200000] [--variants old new ...]``.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import HelpDefaults, header, load_average, percentile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.store import EventWrite, HubStore  # noqa: E402

#: One game's events (``--mix game``); ``bet`` is bench/hub_load.py's stream: betPlaced only.
GAME = [("game", "gameStarted"), ("game", "betPlaced"), ("game", "gameEnded"),
        ("game", "winPaid"), ("game", "betPlaced")]
DATA = ('{"amount":100,"credits":%d,"denomination":1,"games":1,"gameNumber":%d,'
        '"meters":{"coinIn":[%d,%d]}}')
#: Events per second of the simulated floor (the timestamps' pace): issue 13's target.
RATE = 10_000


@dataclass
class Variant:
    spec: str
    old: bool = False
    page: int | None = None
    cache_kib: int | None = None
    ckpt: int | None = None
    bg: int | None = None  # checkpoint on a thread of its own past this many WAL frames
    drop: list[str] = field(default_factory=list)
    store: HubStore | None = None
    checkpointer: Checkpointer | None = None
    path: Path | None = None
    frames: int = 0
    last_mx: int = 0
    rows: list[tuple[int, float, float, float, float, float]] = field(default_factory=list)

    @classmethod
    def parse(cls, spec: str) -> Variant:
        v = cls(spec)
        for part in spec.split(","):
            key, _, value = part.partition("=")
            if key in ("old", "new"):
                v.old = key == "old"
            elif key == "page":
                v.page = int(value)
            elif key == "cache":
                v.cache_kib = int(value)
            elif key == "ckpt":
                v.ckpt = int(value)
            elif key == "bg":
                v.bg = int(value)
            elif key == "drop":
                v.drop.append(value)
            else:
                raise SystemExit(f"unknown variant part {part!r}")
        return v

    def open(self, workdir: Path, index: int) -> None:
        self.path = workdir / f"v{index}.db"
        if self.page is not None:  # a new database's page size, before its first table
            db = sqlite3.connect(str(self.path))
            db.execute(f"PRAGMA page_size={self.page}")
            db.execute("CREATE TABLE t (x)")
            db.execute("DROP TABLE t")
            db.close()
        self.store = HubStore(self.path, synchronous="FULL")
        conn = self.store._writer_db
        if self.old:  # the store before: the id index, SQLite's default checkpoint
            conn.execute("CREATE INDEX IF NOT EXISTS events_by_id ON events (id)")
            conn.execute("PRAGMA wal_autocheckpoint=1000")
        for name in self.drop:
            conn.execute(f"DROP INDEX {name}")
        if self.cache_kib is not None:
            conn.execute(f"PRAGMA cache_size=-{self.cache_kib}")
        if self.ckpt is not None:
            conn.execute(f"PRAGMA wal_autocheckpoint={self.ckpt}")
        if self.bg is not None:
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self.checkpointer = Checkpointer(self.path, self.bg)

    @property
    def page_size(self) -> int:
        assert self.store is not None
        return int(self.store._writer_db.execute("PRAGMA page_size").fetchone()[0])


class Checkpointer(threading.Thread):
    """``bg=N``: a PASSIVE checkpoint on a connection and thread of their own whenever the
    WAL holds N frames not yet copied (the writer's own checkpoint is off): the writer's
    commits no longer wait for one. Its CPU is counted apart."""

    def __init__(self, path: Path, frames: int) -> None:
        super().__init__(daemon=True)
        self.path, self.frames = path, frames
        self.wake = threading.Event()
        self.stopping = False
        self.cpu = 0.0
        self.runs = 0
        self.start()

    def run(self) -> None:
        db = sqlite3.connect(str(self.path), isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
        while not self.stopping:
            self.wake.wait(0.5)
            self.wake.clear()
            mx, backfill = _wal_index(self.path)
            if mx - min(backfill, mx) >= self.frames:
                c = time.thread_time()
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.cpu += time.thread_time() - c
                self.runs += 1
        db.close()

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()
        self.join()


def _wal_index(path: Path) -> tuple[int, int]:
    """``mxFrame`` (frames in the WAL) and ``nBackfill`` (frames checkpointed) from the WAL
    index header (sqlite.org/walformat.html: native byte order, offsets 16 and 96)."""
    with open(f"{path}-shm", "rb") as f:
        head = f.read(100)
    return struct.unpack_from("=I", head, 16)[0], struct.unpack_from("=I", head, 96)[0]


def _io() -> tuple[int, int]:
    """Bytes this thread passed to write and read system calls."""
    fields = dict(line.split(": ") for line in
                  Path("/proc/thread-self/io").read_text().splitlines())
    return int(fields["wchar"]), int(fields["rchar"])


def stream(rows: int, terminals: int, burst: int, mix: str, seed: int
           ) -> list[tuple[str, int, str, str, str]]:
    """``(terminal, seq, channel, event, timestamp)`` in arrival order: rounds in which every
    terminal sends one burst, in a random order each round; each terminal's clock off by up
    to half a second; timestamps advance at :data:`RATE` events/s."""
    rnd = random.Random(seed)
    ids = [f"T{i:05d}" for i in range(terminals)]
    skew = {t: rnd.uniform(-0.5, 0.5) for t in ids}
    seqs = dict.fromkeys(ids, 0)
    names = GAME if mix == "game" else [("game", "betPlaced")]
    out: list[tuple[str, int, str, str, str]] = []
    t0 = 1_796_000_000.0
    while len(out) < rows:
        order = ids[:]
        rnd.shuffle(order)
        for tid in order:
            for _ in range(burst):
                seqs[tid] += 1
                seq = seqs[tid]
                channel, event = names[seq % len(names)]
                at = t0 + len(out) / RATE + skew[tid]
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + \
                    f".{int(at * 1000) % 1000:03d}Z"
                out.append((tid, seq, channel, event, stamp))
    return out[:rows]


def writes_of(chunk: list[tuple[str, int, str, str, str]]) -> list[EventWrite]:
    out = []
    for tid, seq, channel, event, stamp in chunk:
        frame = {"type": "event", "id": f"{tid}-{seq}", "seq": seq, "channel": channel,
                 "terminalId": tid, "event": event, "timestamp": stamp, "data": {}}
        out.append(EventWrite(frame, tid, acked_seq=seq,
                              data_text=DATA % (seq, seq, 100 * seq, 100 * seq + 100)))
    return out


@dataclass
class Segment:
    cpu: float = 0.0  # s, the writing thread
    wall: float = 0.0  # s
    frames: int = 0  # WAL frames appended
    written: int = 0  # bytes
    read: int = 0  # bytes
    commits: list[float] = field(default_factory=list)  # each transaction's wall time, s
    bg_cpu: float = 0.0  # s, the checkpoint thread (bg=N)


def fill(v: Variant, txs: list[list[EventWrite]]) -> Segment:
    """Insert the transactions, as the hub's writer thread does."""
    assert v.store is not None and v.path is not None
    store = v.store
    seg = Segment()
    bg0 = v.checkpointer.cpu if v.checkpointer is not None else 0.0
    w0, r0 = _io()
    for tx in txs:
        mx, backfill = _wal_index(v.path) if os.path.exists(f"{v.path}-shm") else (0, 0)
        base = 0 if backfill >= mx else mx  # a fully checkpointed WAL restarts at frame 1
        c, t = time.thread_time(), time.perf_counter()
        store.insert_events(tx, time.time())
        seg.cpu += time.thread_time() - c
        took = time.perf_counter() - t
        seg.wall += took
        seg.commits.append(took)
        seg.frames += _wal_index(v.path)[0] - base
        if v.checkpointer is not None:
            v.checkpointer.wake.set()
    w1, r1 = _io()
    seg.written, seg.read = w1 - w0, r1 - r0
    seg.bg_cpu = (v.checkpointer.cpu if v.checkpointer is not None else 0.0) - bg0
    return seg


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    parser.add_argument("--rows", type=int, default=1_200_000)
    parser.add_argument("--terminals", type=int, default=3000)
    parser.add_argument("--tx", type=int, default=1000, help="events per transaction")
    parser.add_argument("--burst", type=int, default=5, help="events per terminal burst")
    parser.add_argument("--segment", type=int, default=100_000, help="rows per figure")
    parser.add_argument("--mix", choices=("bet", "game"), default="bet",
                        help="betPlaced only (as bench/hub_load.py) or a game's events")
    parser.add_argument("--variants", nargs="+", default=["old", "new"])
    parser.add_argument("--dir", default="/tmp", help="where the databases go")
    args = parser.parse_args()
    header("SQLite store: per-event cost as the events table grows, per index layout")
    print(f"# {args.rows:,} rows, {args.terminals:,} terminals interleaved in bursts of "
          f"{args.burst}, {args.tx:,} events per transaction, synchronous FULL, mix "
          f"{args.mix}; segments of {args.segment:,}; variants in lockstep", flush=True)
    variants = [Variant.parse(s) for s in args.variants]
    events = stream(args.rows, args.terminals, args.burst, args.mix, seed=13)
    with tempfile.TemporaryDirectory(prefix="store-growth-", dir=args.dir) as tmp:
        for i, v in enumerate(variants):
            v.open(Path(tmp), i)
        try:
            print(f"{'rows after':>10} {'variant':<28} {'CPU µs/ev':>9} {'wall µs/ev':>10} "
                  f"{'WAL B/ev':>9} {'write B/ev':>10} {'read B/ev':>9} {'CPU ratio':>9} "
                  f"{'commit p50/p99/max ms':>22}  load", flush=True)
            for start in range(0, args.rows, args.segment):
                chunk = events[start:start + args.segment]
                txs = [writes_of(chunk[i:i + args.tx]) for i in range(0, len(chunk), args.tx)]
                base_cpu = None
                for v in variants:
                    seg = fill(v, txs)
                    n = len(chunk)
                    wal = seg.frames * (v.page_size + 24) / n
                    per = seg.cpu * 1e6 / n
                    base_cpu = per if base_cpu is None else base_cpu
                    v.rows.append((start + n, per, seg.wall * 1e6 / n, wal, seg.written / n,
                                   seg.read / n))
                    ms = [1000 * percentile(seg.commits, q) for q in (50, 99, 100)]
                    bg = f" (+{seg.bg_cpu * 1e6 / n:.1f} on the checkpoint thread)" \
                        if v.checkpointer is not None else ""
                    print(f"{start + n:>10,} {v.spec:<28} {per:9.1f} {seg.wall * 1e6 / n:10.1f} "
                          f"{wal:9,.0f} {seg.written / n:10,.0f} {seg.read / n:9,.0f} "
                          f"{per / base_cpu:9.2f} {ms[0]:7.1f}/{ms[1]:6.1f}/{ms[2]:6.0f}"
                          f"  {load_average()}{bg}", flush=True)
            print("# last third of the rows (the grown table), per variant:")
            for v in variants:
                tail = v.rows[len(v.rows) * 2 // 3:]
                k = len(tail)
                assert v.path is not None and v.store is not None
                v.store._writer_db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                size = v.path.stat().st_size
                print(f"  {v.spec:<28} CPU {sum(r[1] for r in tail) / k:6.1f} µs/ev, wall "
                      f"{sum(r[2] for r in tail) / k:6.1f} µs/ev, WAL "
                      f"{sum(r[3] for r in tail) / k:7,.0f} B/ev; database "
                      f"{size / args.rows:5,.0f} B/ev (page {v.page_size})")
        finally:
            for v in variants:
                if v.checkpointer is not None:
                    v.checkpointer.stop()
                if v.store is not None:
                    v.store.close()
    print(f"# load average {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
