"""What the commit-ordered cursor costs: event transactions on one PostgreSQL, with and without
the cursor lock (hub/store_pg.py ``CURSOR_LOCK``; docs/scaling.md, "Cursors on a shared
database").

A fresh PostgreSQL 15 cluster on this machine (unix socket, ``fsync`` on;
tests/support/postgres.py); ``--writers`` stores (``PgStore``, ``synchronous: FULL``), each on
its own thread as one hub instance's writer, each storing batches of ``--batch`` events back
to back for ``--seconds``. Printed per mode and batch size: events/s stored by all writers
together, transactions/s, and the p50 / p99 time of one ``insert_events`` call (the ingest
acknowledges after it), with the load average (the machine is shared: the figures move with
it), and per batch size the ratio of the two modes' events/s. "off", the baseline, is the
store as it was before the lock: cursors in insert order, not commit order.

Run: ``.venv/bin/python bench/pg_cursor_lock.py [--writers 2] [--batch 10 100] [--seconds 5]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

from benchlib import HelpDefaults, header, percentile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hub.store_pg as store_pg  # noqa: E402
from hub.store_pg import PgStore  # noqa: E402
from hub.store_sql import EventWrite  # noqa: E402
from tests.support import postgres  # noqa: E402

_LOCKED = store_pg._LOCK_CURSORS


def _frame(tid: str, seq: int) -> dict[str, object]:
    return {"type": "event", "id": f"{tid}-{seq}", "seq": seq, "channel": "game",
            "terminalId": tid, "event": "betPlaced", "timestamp": "2026-12-06T22:00:00.000Z",
            "data": {"amount": 100, "credits": 100, "denomination": 1}}


def _run(url: str, writers: int, batch: int, seconds: float, tag: str
         ) -> tuple[float, float, float, float]:
    stores = [PgStore(url, synchronous="FULL", origin=f"w{i}") for i in range(writers)]
    times: list[list[float]] = [[] for _ in range(writers)]
    stop = time.monotonic() + seconds

    def write(i: int) -> None:
        seq = 0
        tid = f"{tag}-{i}"
        while time.monotonic() < stop:
            writes = [EventWrite(_frame(tid, seq + k), tid, seq + k) for k in range(1, batch + 1)]
            seq += batch
            t0 = time.perf_counter()
            stores[i].insert_events(writes, time.time())
            times[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    for s in stores:
        s.close()
    calls = sorted(x for per in times for x in per)
    return (len(calls) * batch / elapsed, len(calls) / elapsed,
            percentile(calls, 50) * 1000, percentile(calls, 99) * 1000)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--batch", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    reason = postgres.available()
    if reason is not None:
        raise SystemExit(reason)
    header("PostgreSQL event transactions with and without the cursor lock")
    print(f"{args.writers} writers, {args.seconds:g} s per run, fsync on, synchronous FULL")
    print(f"{'lock':>4} {'batch':>5} {'events/s':>9} {'tx/s':>7} {'p50 ms':>7} "
          f"{'p99 ms':>7}  load average before -> after")
    with postgres.cluster(durable=True) as cluster:
        run = 0
        for batch in args.batch:
            rates: dict[str, float] = {}
            for mode in ("on", "off"):
                run += 1
                store_pg._LOCK_CURSORS = _LOCKED if mode == "on" else "SELECT 1"
                url = cluster.create_database(f"bench_{run}").url
                before = os.getloadavg()[0]
                rate, tx, p50, p99 = _run(url, args.writers, batch, args.seconds, f"r{run}")
                after = os.getloadavg()[0]
                print(f"{mode:>4} {batch:>5} {rate:>9,.0f} {tx:>7,.0f} {p50:>7.2f} "
                      f"{p99:>7.2f}  {before:.2f} -> {after:.2f}", flush=True)
                rates[mode] = rate
            print(f"     batch {batch}: events/s with the lock / without (the baseline) = "
                  f"{rates['on'] / rates['off']:.2f}", flush=True)
    store_pg._LOCK_CURSORS = _LOCKED


if __name__ == "__main__":
    main()
