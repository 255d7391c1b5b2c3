"""Poll timing isolation: the line owner's 40 ms cadence, idle and while the uplink drains.

The agent runs in this process as the daemon composes it — the line owner on its thread,
the pipeline (interpreter + outbox writer) on another, the uplink on the asyncio loop — and
polls ``slot-agent emulate`` over a pty (its own process, like a real machine) with
autoplay. The reference hub runs in its own process. A transport wrapper timestamps every
general poll the line owner writes.

Phase 1 (idle): the uplink is connected, nothing to send. Phase 2 (loaded): with the uplink
away (as during an outage) a 100,000-event backlog is committed to the outbox; then the
uplink reconnects and drains it to the hub. The phase lasts until the hub acknowledged the
whole backlog (or ``--duration``); the line keeps polling throughout.

Printed per phase: the deviation of each general-poll interval from the cadence (p50, p99,
max), reply-window misses (polls that timed out) and skipped cycles.
Targets: loaded p99 deviation <= 2 ms, no missed reply window while draining, and loaded
p99 <= 1.5 x idle p99.
Run: ``.venv/bin/python bench/poll_jitter.py [--duration 60]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import Verdict, exit_with, header, percentile, verdicts
from procs import EmulatorProcess, HubProcess, TimedTransport

from agent.config import MachineConfig, PollConfig, UplinkConfig
from agent.events import Event, StoredEvent, utc_timestamp
from agent.interpreter import Interpreter
from agent.line import LineOwner
from agent.outbox import Outbox
from agent.pipeline import Pipeline
from agent.uplink import Uplink
from drivers import open_transport

TERMINAL = "BENCH-1"


@dataclass
class Phase:
    name: str
    deviations_ms: list[float]
    timeouts: int
    skipped: int
    drained: int

    def line(self) -> str:
        d = self.deviations_ms
        return (f"  {self.name:7} polls {len(d) + 1:6,}  deviation p50 {percentile(d, 50):6.2f} ms"
                f"  p99 {percentile(d, 99):6.2f} ms  max {max(d):7.2f} ms  "
                f"reply-window misses {self.timeouts}  skipped cycles {self.skipped}"
                + (f"  events drained {self.drained:,}" if self.drained else ""))


def timeouts(line: LineOwner) -> int:
    machines: dict[str, Any] = line.status()["machines"]
    return sum(int(m["polls"].get("timeout", 0)) for m in machines.values())


def seed_backlog(outbox: Outbox, size: int) -> None:
    """Commit a backlog straight into the outbox (as after an outage), in pipeline-sized
    batches; done before the loaded phase starts, so only the drain is measured."""
    stamp = utc_timestamp(time.time())
    for lo in range(0, size, 500):
        outbox.commit([Event("betPlaced", stamp, {
            "amount": 100, "credits": 100, "denomination": 1, "games": 1,
            "meters": {"coinIn": [i * 100, i * 100 + 100]}})
            for i in range(lo, min(lo + 500, size))], None)


async def measure(line: LineOwner, transport: TimedTransport, seconds: float, interval: float,
                  name: str, acked: Any = None, target: int = 0) -> Phase:
    """Collect for ``seconds``, or (loaded) until the hub acknowledged ``target``."""
    t0, s0, n0 = timeouts(line), line.skipped_slots, len(transport.general_polls)
    a0 = acked() if acked else 0
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (acked and acked() >= target):
        await asyncio.sleep(0.05)  # the measurement window, not a wait for an outcome
    polls = transport.general_polls[n0:]
    deviations = [abs((b - a) - interval) * 1000.0 for a, b in itertools.pairwise(polls)]
    return Phase(name, deviations, timeouts(line) - t0, line.skipped_slots - s0,
                 (acked() - a0) if acked else 0)


async def run(args: argparse.Namespace, workdir: Path) -> tuple[Phase, Phase]:
    hub = HubProcess(workdir, TERMINAL, nice=args.hub_nice)
    emulator = EmulatorProcess(scenario="autoplay", games_per_minute=30, pty=True)
    outbox = Outbox.open(workdir / "outbox.db", terminal_id=TERMINAL, max_events=10_000_000)
    uplink_box: list[Uplink] = []

    def committed(_: list[StoredEvent]) -> None:
        if uplink_box:
            uplink_box[0].notify_new_events()

    pipeline = Pipeline(outbox, Interpreter(TERMINAL), listeners=[committed])
    transport = TimedTransport(open_transport(emulator.url))
    poll = PollConfig(interval_ms=args.interval_ms, reply_timeout_ms=30)
    line = LineOwner(transport, [MachineConfig(1)], poll, pipeline.put)
    pipeline.set_reads_sink(line.request_reads)
    uplink = Uplink(UplinkConfig(url=hub.url, allow_insecure=True, token_env="UNUSED"),
                    terminal_id=TERMINAL, outbox=outbox, token=lambda: hub.token)
    uplink_box.append(uplink)
    try:
        pipeline.start()
        line.start()
        uplink.start()
        while not uplink.connected or not line.status()["machines"]["1"]["linkUp"]:
            await asyncio.sleep(0.05)
        await asyncio.sleep(args.warmup)  # discovery done, the cadence settled
        interval = args.interval_ms / 1000.0
        idle = await measure(line, transport, args.duration, interval, "idle")
        await uplink.stop()  # seed with the uplink away, as during an outage
        await asyncio.to_thread(seed_backlog, outbox, args.backlog)
        uplink = Uplink(UplinkConfig(url=hub.url, allow_insecure=True, token_env="UNUSED"),
                        terminal_id=TERMINAL, outbox=outbox, token=lambda: hub.token)
        uplink_box[0] = uplink
        uplink.start()
        loaded = await measure(line, transport, args.duration, interval, "loaded",
                               acked=lambda: uplink.state.hub_acked_seq,
                               target=outbox.last_seq)
        return idle, loaded
    finally:
        await uplink.stop()
        line.stop()
        pipeline.stop()
        outbox.close()
        emulator.stop()
        hub.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per phase")
    parser.add_argument("--interval-ms", type=int, default=40)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--hub-nice", type=int, default=0,
                        help="run the local hub at this niceness (it stands for a server "
                             "elsewhere; 19 keeps it off the agent's CPU time)")
    parser.add_argument("--switch-interval-ms", type=float, default=None,
                        help="sys.setswitchinterval for this process (the GIL hand-over "
                             "period; Python's default is 5 ms): what-if for the daemon")
    args = parser.parse_args()
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000.0)
    header("poll timing isolation (general-poll interval deviation)")
    print(f"# cadence {args.interval_ms} ms; {args.duration:.0f} s per phase; backlog "
          f"{args.backlog:,} events; emulator over a pty; hub in its own process; GIL "
          f"switch interval {sys.getswitchinterval() * 1000:.2f} ms")
    workdir = Path(tempfile.mkdtemp(prefix="jitter-bench-"))
    try:
        idle, loaded = asyncio.run(run(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(idle.line())
    print(loaded.line())
    idle_p99, loaded_p99 = percentile(idle.deviations_ms, 99), percentile(loaded.deviations_ms, 99)
    print(f"  loaded p99 / idle p99 = {loaded_p99 / max(idle_p99, 1e-9):.2f}")
    return verdicts([
        Verdict("loaded p99 deviation (ms)", loaded_p99, 2.0, at_least=False),
        Verdict("reply-window misses while draining", loaded.timeouts, 0, at_least=False),
        Verdict("loaded p99 / idle p99", loaded_p99 / max(idle_p99, 1e-9), 1.5,
                at_least=False),
    ])


if __name__ == "__main__":
    exit_with(main())
