"""Backlog drain: a buffered backlog delivered to the hub and acknowledged over loopback.

The agent side is the real thing: an :class:`agent.store.outbox.Outbox` holding ``--events``
unacknowledged ``betPlaced`` events and the :class:`agent.uplink.client.Uplink` streaming them with
its window to a reference hub (``slot-agent hub``, its own process, a fresh database per run).
The clock runs from the uplink's start (connect, ``hello``/``welcome`` included) until the
hub's cumulative ``ack`` covers the last event.

The limit, measured in the same run: a bare ``websockets`` send loop of the same frames (the
texts the uplink sends, from ``OutboxReader.pending_frames``) to a bare ``websockets`` server
in its own process that only counts them and answers once at the end — no validation, no
storage, no acks — with the connection settings of the uplink and the hub: no
permessage-deflate. The same loop with deflate (the ``websockets`` default) is measured too,
for reference: the price of compression on this machine.

Targets: >= 20,000 events/s and >= 30 % of the limit.
Run: ``python bench/backlog_drain.py`` (``--help``). The hub runs with
``synchronous: NORMAL`` by default (``--hub-sync FULL`` for a hub that fsyncs every event).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchlib import HelpDefaults, Verdict, exit_with, header, median, verdicts
from procs import HubProcess

from agent.config import UplinkConfig
from agent.store.outbox import Outbox
from agent.uplink.client import Uplink
from api.events import Event, utc_timestamp

TERMINAL = "BENCH-1"

BARE_SERVER = r"""
import asyncio, sys
from websockets.asyncio.server import serve

expected = int(sys.argv[1])
compression = None if sys.argv[2] == "none" else sys.argv[2]

async def handler(ws):
    n = 0
    async for _ in ws:
        n += 1
        if n == expected:
            await ws.send("done")

async def main():
    async with serve(handler, "127.0.0.1", 0, max_size=None,
                     compression=compression) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


def seed(path: Path, events: int) -> Outbox:
    box = Outbox.open(path, terminal_id=TERMINAL, max_events=events * 2)
    stamp = utc_timestamp(time.time())
    for lo in range(0, events, 1000):
        batch = []
        for i in range(lo, min(lo + 1000, events)):
            before = 1_520_000 + 100 * i
            batch.append(Event("betPlaced", stamp, {
                "amount": 100, "credits": 100, "denomination": 1, "games": 1,
                "gameNumber": 3, "meters": {"coinIn": [before, before + 100]}}))
        box.commit(batch, None)
    return box


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drain_once(box: Outbox, hub: HubProcess, events: int, window: int,
                     batch: int) -> tuple[float, float, float]:
    """(events/s, CPU µs per event in this process (the uplink and its reader thread),
    CPU µs per event in the hub): on two cores, which side is busy shows what holds the
    drain back."""
    config = UplinkConfig(url=hub.url, allow_insecure=True, token_env="UNUSED",
                          window=window, batch=batch, reconnect_max_delay_s=1.0)
    uplink = Uplink(config, terminal_id=TERMINAL, outbox=box, token=lambda: hub.token,
                    min_reconnect_delay_s=0.05)
    start = time.perf_counter()
    ours, theirs = time.process_time(), cpu_seconds(hub.proc.pid)
    uplink.start()
    try:
        while uplink.state.hub_acked_seq < events:
            await asyncio.sleep(0.005)  # the measurement's polling step
        elapsed = time.perf_counter() - start
        ours = time.process_time() - ours
        theirs = cpu_seconds(hub.proc.pid) - theirs
    finally:
        await uplink.stop()
    return events / elapsed, ours / events * 1e6, theirs / events * 1e6


async def bare_once(frames: list[str], compression: str | None) -> float:
    from websockets.asyncio.client import connect

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BARE_SERVER, str(len(frames)), compression or "none",
        stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    port = int((await proc.stdout.readline()).decode())
    try:
        start = time.perf_counter()
        async with connect(f"ws://127.0.0.1:{port}", max_size=None,
                           compression=compression) as ws:
            for text in frames:
                await ws.send(text)
            assert await ws.recv() == "done"
        return len(frames) / (time.perf_counter() - start)
    finally:
        proc.terminate()
        await proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=int, default=UplinkConfig().window,
                        help="uplink.window (default: the agent's default)")
    parser.add_argument("--batch", type=int, default=UplinkConfig().batch,
                        help="uplink.batch (default: the agent's default)")
    parser.add_argument("--hub-sync", choices=["NORMAL", "FULL"], default="NORMAL")
    args = parser.parse_args()

    header("backlog drain (events/s delivered and acknowledged over loopback)")
    print(f"# {args.events:,} events; window {args.window}, batch {args.batch}; hub "
          f"synchronous={args.hub_sync}; {args.runs} runs")
    drains: list[float] = []
    bares: list[float] = []
    deflates: list[float] = []
    for run in range(args.runs):
        workdir = Path(tempfile.mkdtemp(prefix="drain-bench-"))
        try:
            box = seed(workdir / "outbox.db", args.events)
            frames = [f.text for f in box.pending_frames(0, args.events)]
            hub = HubProcess(workdir, TERMINAL, sync=args.hub_sync)
            try:
                rate, ours, theirs = asyncio.run(drain_once(box, hub, args.events,
                                                            args.window, args.batch))
            finally:
                hub.stop()
                box.close()
            drains.append(rate)
            print(f"  uplink -> hub run {run + 1}: {rate:12,.0f} events/s  (CPU per event: "
                  f"uplink {ours:.1f} µs, hub {theirs:.1f} µs; load average "
                  f"{os.getloadavg()[0]:.2f})", flush=True)
            bare = asyncio.run(bare_once(frames, None))
            bares.append(bare)
            print(f"  bare send loop run {run + 1}: {bare:12,.0f} events/s", flush=True)
            deflate = asyncio.run(bare_once(frames, "deflate"))
            deflates.append(deflate)
            print(f"  bare loop, deflate run {run + 1}: {deflate:9,.0f} events/s", flush=True)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    d, b, z = median(drains), median(bares), median(deflates)
    print("medians:")
    print(f"  uplink -> hub, acknowledged  {d:12,.0f} events/s")
    print(f"  bare websockets send loop    {b:12,.0f} events/s (limit)")
    print(f"  same with permessage-deflate {z:12,.0f} events/s (reference)")
    print(f"  drain / limit = {d / b:.2f} (drain / deflate loop = {d / z:.2f}); "
          f"{args.events:,} events in {args.events / d:.1f} s")
    return verdicts([
        Verdict("drain events/s", d, 20_000, at_least=True),
        Verdict("drain / bare limit", d / b, 0.30, at_least=True),
    ])


if __name__ == "__main__":
    exit_with(main())
