"""Several hub instances on one PostgreSQL: events/s and ack latency with 1, 2 and 3 instances.

For each instance count: a fresh PostgreSQL cluster (Debian's server, on a unix socket,
``fsync`` ON as in production; tests/support/postgres.py), that many ``slot-agent hub``
processes with ``store: postgresql://…`` (``synchronous: FULL``: ``synchronous_commit``
on), the terminals spread evenly over the instances, and the viewers all on the LAST
instance, so that with two or three instances most of what they receive crossed instances
through LISTEN/NOTIFY. The load generator is bench/hub_load.py's (written from
docs/protocol.md alone): each terminal sends ``--burst`` events at random phases so that all
together send ``--rate`` events/s, at most ``--window`` unacknowledged.

Printed per run: events/s stored (acknowledged), ack p50 / p99, events/s the median viewer
received (all terminals' events: cross-instance fan-out), errors, each hub process's CPU
during the run (in cores), and the load average of the machine (shared: the figures move
with it); from the second instance count on, its stored/s and ack p99 against the first
count's (the baseline of the same run). Everything runs on this machine: PostgreSQL, the
hubs and the generator share its cores, so more instances here measure the coordination
cost, not the gain of more machines (docs/scaling.md).

Run: ``.venv/bin/python bench/hub_cluster.py [--instances 1 2 3] [--rate 2000] [--help]``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

from benchlib import HelpDefaults, header, percentile
from hub_load import PHASE_GAP, SLOT_AGENT, Phase, _terminals_process, _viewers_process

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import postgres  # noqa: E402


def _start_hub(workdir: Path, index: int, tokens: Path, store: str) -> tuple[Any, str]:
    config = workdir / f"hub-{index}.yaml"
    config.write_text(json.dumps({
        "listen": {"host": "127.0.0.1", "port": 0}, "plain": True, "tokens": str(tokens),
        "store": store, "synchronous": "FULL"}))
    proc = subprocess.Popen([SLOT_AGENT, "hub", "--config", str(config), "--log-level",
                             "WARNING"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r":(\d+)/?$", line.strip())
    if not match:
        raise SystemExit(f"hub {index} did not start: {line!r}")
    return proc, f"ws://127.0.0.1:{match.group(1)}"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stop(hubs: list[tuple[Any, str]]) -> None:
    for proc, _ in hubs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_once(args: argparse.Namespace, instances: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="hub-cluster-"))
    terminals = [(f"T{i:05d}", secrets.token_urlsafe(18)) for i in range(args.terminals)]
    viewers = [secrets.token_urlsafe(18) for _ in range(args.viewers)]
    tokens = workdir / "tokens"
    tokens.write_text("\n".join([f"{tok} terminal {tid}" for tid, tok in terminals]
                                + [f"{tok} viewer viewer-{i}" for i, tok in
                                   enumerate(viewers)]) + "\n")
    tokens.chmod(0o644)
    phases = [Phase(args.rate, args.duration)]
    hubs: list[tuple[Any, str]] = []
    try:
        with postgres.cluster(durable=True) as pg:
            db = pg.create_database("floor")
            for i in range(instances):  # one by one: those started are stopped if one fails
                hubs.append(_start_hub(workdir, i, tokens, db.url))
            ctx = mp.get_context("spawn")
            ready, out, go, start_at = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Value("d", 0)
            workers = max(instances, args.workers)
            procs = [ctx.Process(target=_terminals_process, args=(
                hubs[w % instances][1], terminals[w::workers], phases, args.terminals,
                args.burst, args.window, ready, go, start_at, out)) for w in range(workers)]
            if viewers:
                procs.append(ctx.Process(target=_viewers_process, args=(
                    hubs[-1][1], viewers, phases, ready, go, start_at, out)))
            for p in procs:
                p.start()
            connected = sum(ready.get(timeout=600) for _ in procs)
            load_before = os.getloadavg()
            start_at.value = time.time() + 1.0
            go.set()
            time.sleep(1.0)
            cpu0 = [_cpu_seconds(proc.pid) for proc, _ in hubs]
            time.sleep(args.duration)
            cpu = [(_cpu_seconds(proc.pid) - c) / args.duration
                   for (proc, _), c in zip(hubs, cpu0, strict=True)]
            time.sleep(PHASE_GAP)
            load_after = os.getloadavg()
            results = [out.get(timeout=120) for _ in procs]
            for p in procs:
                p.join(30)
            _stop(hubs)  # before their database goes
    finally:
        _stop(hubs)
        shutil.rmtree(workdir, ignore_errors=True)
    lat = array("d")
    acked = sent = 0
    errors: list[str] = []
    per_viewer: list[float] = []
    for r in results:
        if "counts" in r:
            per_viewer = sorted(c[0] / args.duration for c in r["counts"])
            errors += r["dropped"]
            continue
        a = array("d")
        a.frombytes(r["latency"][0])
        lat.extend(a)
        acked += r["acked"][0]
        sent += r["sent"][0]
        errors += r["errors"]
    ms = [x * 1000 for x in lat]
    return {"instances": instances, "connected": connected, "sent": sent,
            "stored_per_s": acked / args.duration, "p50": percentile(ms, 50),
            "p99": percentile(ms, 99),
            "viewer_per_s": per_viewer[len(per_viewer) // 2] if per_viewer else math.nan,
            "errors": errors, "load": (load_before, load_after), "cpu": cpu}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--terminals", type=int, default=300)
    parser.add_argument("--rate", type=float, default=2000, help="events/s, all terminals")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--viewers", type=int, default=5)
    parser.add_argument("--burst", type=int, default=5)
    parser.add_argument("--window", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="terminal processes (at least"
                                                                " one per instance)")
    args = parser.parse_args()
    reason = postgres.available()
    if reason is not None:  # nothing measured: say why and fail, as pg_cursor_lock.py does
        raise SystemExit(reason)
    header(f"hub instances on one PostgreSQL: {args.terminals} terminals, {args.rate:g} "
           f"events/s offered for {args.duration:g} s, {args.viewers} viewers on the last "
           "instance")
    print("instances  stored/s  ack p50 ms  ack p99 ms  viewer ev/s  errors  hub CPU (cores,"
          " each)  load avg (before -> after)")
    first: dict[str, Any] | None = None
    for n in args.instances:
        r = run_once(args, n)
        before, after = r["load"]
        print(f"{n:9d}  {r['stored_per_s']:8.0f}  {r['p50']:10.1f}  {r['p99']:10.1f}  "
              f"{r['viewer_per_s']:11.0f}  {len(r['errors']):6d}  "
              f"{' '.join(f'{c:.2f}' for c in r['cpu']):>22}  "
              f"{before[0]:.2f} -> {after[0]:.2f}", flush=True)
        for e in r["errors"][:5]:
            print(f"    error: {e}")
        if first is None:
            first = r
        else:  # against the first instance count of the same run (the baseline)
            print(f"           {n} / {first['instances']} instances: stored/s "
                  f"{r['stored_per_s'] / first['stored_per_s']:.2f}, ack p99 "
                  f"{r['p99'] / first['p99']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
