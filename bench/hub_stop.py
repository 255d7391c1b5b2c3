"""Shutdown under overload: SIGTERM to a hub that is far behind, and what it had acknowledged.

docs/operations.md: the hub exits within 5 s of SIGTERM, also when it is overloaded, and
nothing it acknowledged is lost (a terminal re-sends what was not acknowledged). Measured
here on the product (``slot-agent hub``, its own process, ``synchronous: FULL``): ``--terminals``
connections (bench/hub_load.py's terminals) send bursts of ``--burst`` events as fast as
their window allows, far more than the hub can store, ``--viewers`` viewers subscribed to
everything; the hub runs under ``nice -n --nice`` so that the load generator beside it
starves it of CPU (the overloaded hub of issue 13 had about a tenth of a core). After
``--load`` seconds: SIGTERM, and the seconds until the process exited. Then every
terminal's highest acknowledged seq is checked against the database: each seq up to it
must be stored.

Run: ``.venv/bin/python bench/hub_stop.py [--terminals 3000] [--nice 15] [--help]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import HelpDefaults, Verdict, beside_python, exit_with, header, verdicts
from hub_load import Hub, Phase, _raise_fd_limit, connect_terminals


async def _flood_main(base: str, creds: list[tuple[str, str]], burst: int, window: int,
                      ready: Any, go: Any, out: Any) -> None:
    stats: dict[str, Any] = {"latency": [[]], "acked": [0], "sent": [0], "errors": [],
                             "finishing": True}
    live = await connect_terminals(base, creds, stats)
    stats["latency"] = [_Sink()]
    ready.put(len(live))
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    # Far above what any hub here stores: every terminal keeps its window full.
    phases = [Phase(1e9, 3600.0)]
    await asyncio.gather(*(t.send_bursts(phases, time.time(), len(creds), burst, window)
                           for t in live), return_exceptions=True)
    out.put({"acked": {t.tid: t.acked for t in live}, "sent": sum(t.seq for t in live),
             "errors": stats["errors"]})


class _Sink(list[float]):
    """Latencies are not measured here."""

    def append(self, _value: float) -> None:
        pass


def _flood_process(*args: Any) -> None:
    _raise_fd_limit()
    asyncio.run(_flood_main(*args))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    parser.add_argument("--terminals", type=int, default=3000)
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--burst", type=int, default=5)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--load", type=float, default=20.0, help="seconds of flood first")
    parser.add_argument("--nice", type=int, default=15, help="the hub's nice value")
    parser.add_argument("--py-spy", type=Path,
                        help="sample the hub with py-spy from SIGTERM to its exit (collapsed "
                             "stacks here)")
    args = parser.parse_args()
    header("hub shutdown under overload (SIGTERM while far behind)")
    workdir = Path(tempfile.mkdtemp(prefix="hub-stop-"))
    try:
        hub = Hub(workdir, args.terminals, args.viewers, "FULL",
                  wrapper=["nice", "-n", str(args.nice)] if args.nice else None)
        ctx = mp.get_context("spawn")
        ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        procs = []
        for w in range(args.workers):
            creds = hub.terminals[w::args.workers]
            procs.append(ctx.Process(target=_flood_process, args=(
                hub.base, creds, args.burst, args.window, ready, go, out), daemon=True))
        viewers = None
        # Held here: a semaphore collected before the child process opens it is gone.
        viewer_start, viewer_out = ctx.Value("d", time.time()), ctx.Queue()
        if args.viewers:
            from hub_load import _viewers_process
            viewers = ctx.Process(target=_viewers_process, args=(
                hub.base, hub.viewers, [Phase(1.0, 3600.0)], ready, go, viewer_start, viewer_out),
                daemon=True)
            procs.append(viewers)
        for p in procs:
            p.start()
        connected = sum(ready.get(timeout=600) for _ in procs)
        print(f"# {connected} connections up ({args.terminals} terminals, {args.viewers} "
              f"viewers); hub at nice {args.nice}; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        go.set()
        cpu0 = hub.cpu_seconds()
        time.sleep(args.load)
        share = (hub.cpu_seconds() - cpu0) / args.load
        stored_before = _stored(hub.db)
        print(f"# flooding {args.load:.0f} s: hub at {share:.2f} of a core; stored so far "
              f"{stored_before:,}; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        spy = None
        if args.py_spy is not None:
            spy = subprocess.Popen([
                beside_python("py-spy", on_path=True), "record", "--pid", str(hub.proc.pid),
                "--rate", "100", "--nonblocking", "--format", "raw", "--output",
                str(args.py_spy), "--duration", "60"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # py-spy attached
        stop_s = hub.stop()
        if spy is not None:
            spy.wait(90)
        results = [out.get(timeout=120) for _ in range(args.workers)]
        for p in procs:
            if p is viewers:
                p.kill()
            p.join(30)
        acked: dict[str, int] = {}
        sent = 0
        for r in results:
            acked.update(r["acked"])
            sent += r["sent"]
        missing = _acked_not_stored(hub.db, acked)
        stored = _stored(hub.db)
        print(f"# SIGTERM -> exit {stop_s:.2f} s (exit code {hub.proc.returncode}); events "
              f"sent {sent:,}, acknowledged {sum(acked.values()):,}, stored {stored:,}; "
              f"acknowledged but not stored: {missing}; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return verdicts([
            Verdict("seconds from SIGTERM to exit", stop_s, 5, at_least=False),
            Verdict("exited with 0 (not killed after 30 s)", float(hub.proc.returncode == 0),
                    1, at_least=True),
            Verdict("acknowledged events not stored", missing, 0, at_least=False),
            # Else the check above is empty: flood longer (--load) for the hub to store some.
            Verdict("events acknowledged before SIGTERM", sum(acked.values()), 1,
                    at_least=True),
            Verdict("hub share of a core while flooded", share, 1.0, at_least=False),
        ])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _stored(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM events WHERE source != 'hub'")
                   .fetchone()[0])


def _acked_not_stored(db: Path, acked: dict[str, int]) -> int:
    """Seqs at or below a terminal's acknowledged seq that are not in the database."""
    missing = 0
    with sqlite3.connect(db) as conn:
        for tid, up_to in acked.items():
            have = conn.execute("SELECT count(DISTINCT seq) FROM events WHERE source = ? "
                                "AND seq <= ?", (tid, up_to)).fetchone()[0]
            missing += up_to - int(have)
    return missing


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    exit_with(main())
