"""Poll timing isolation: the line owner's 40 ms cadence, idle and while the uplink drains.

The agent runs as the daemon composes it: the line owner in a process of its own
(``agent.line.process.LineProcess``, the product path for a configured line; ``--line
thread`` runs it on a thread of this process instead, as before), the pipeline (interpreter +
outbox writer) on a thread of this process, the uplink on this process's asyncio loop. It
polls ``slot-agent emulate`` over a pty (its own process, like a real machine) with autoplay.
The reference hub runs in its own process. The transport the line owner opens is wrapped to
timestamp every general poll it writes (``procs.TimedFactory``: ``time.monotonic()`` into a
file, the clock every process of the machine shares).

Phase 1 (idle): the uplink is connected, nothing to send. Phase 2 (loaded): with the uplink
away (as during an outage) a 100,000-event backlog is committed to the outbox; then the
uplink reconnects and drains it to the hub. The phase lasts until the hub acknowledged the
whole backlog (or ``--duration``); the line keeps polling throughout.

Printed per phase: the deviation of each general-poll interval from the cadence (p50, p99,
max), reply-window misses (polls that timed out) and skipped cycles; a general poll repeated
within its cycle (an alarm code confirmed) does not count as a cycle. Two things make an
interval deviate: the line process woke late for its cycle (the agent's own scheduling), or
the previous cycle overran (a reply came late: on a busy bench, usually the emulator waiting
for CPU; a real machine is a separate device). The cycles run on a fixed grid (absolute
deadlines, skipped slots stay on it), so each general poll's lateness against the grid is
printed apart ("start late"): it leaves the overruns out. A bare process sleeping on the
same grid, started like the line process, runs throughout: its interval deviation ("floor")
is what the operating system alone adds at that moment on a shared machine. With ``--runs N``
the whole measurement is repeated and the medians of the p99s and of the ratio are judged.
Targets: loaded p99 deviation <= 2 ms, no missed reply window while draining, and loaded
p99 <= 1.5 x idle p99.
Run: ``.venv/bin/python bench/poll_jitter.py [--duration 60] [--runs 3] [--line thread]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import Verdict, exit_with, header, median, percentile, verdicts
from procs import EmulatorProcess, GridSleeper, HubProcess, TimedFactory, read_poll_log

from agent.config import Config, UplinkConfig, parse_config
from agent.derive.interpreter import Interpreter
from agent.line.messages import NICE_AHEAD
from agent.line.owner import LineOwner
from agent.line.process import LineProcess
from agent.ops.metrics import AgentMetrics
from agent.store.outbox import Outbox
from agent.store.pipeline import Pipeline
from agent.uplink.client import Uplink
from api.events import Event, StoredEvent, utc_timestamp

TERMINAL = "BENCH-1"


@dataclass
class Phase:
    name: str
    deviations_ms: list[float]
    late_ms: list[float]
    floor_ms: list[float]
    timeouts: int
    skipped: int
    drained: int
    seconds: float

    @property
    def p99(self) -> float:
        return percentile(self.deviations_ms, 99)

    def line(self) -> str:
        d = self.deviations_ms
        drained = (f"  events drained {self.drained:,} in {self.seconds:.1f} s"
                   if self.drained else "")
        late = self.late_ms
        return (f"  {self.name:7} polls {len(d) + 1:6,}  deviation p50 {percentile(d, 50):6.2f} ms"
                f"  p99 {self.p99:6.2f} ms  max {max(d):7.2f} ms  "
                f"reply-window misses {self.timeouts}  skipped cycles {self.skipped}{drained}\n"
                f"  {'':7} start late   p50 {percentile(late, 50):6.2f} ms  p99 "
                f"{percentile(late, 99):6.2f} ms  max {max(late):7.2f} ms\n"
                f"  {'':7} floor        p50 {percentile(self.floor_ms, 50):6.2f} ms  p99 "
                f"{percentile(self.floor_ms, 99):6.2f} ms  max {max(self.floor_ms):7.2f} ms"
                "  (a bare sleeper on the same grid)")


def cycle_starts(times: list[float], interval: float) -> list[float]:
    """The general polls that began a cycle: one written less than half an interval after
    the previous one repeats it within the cycle (an alarm code being confirmed by an
    implied NACK, SAS §3.5) and is no cycle of its own."""
    starts: list[float] = []
    for t in times:
        if not starts or t - starts[-1] >= interval / 2:
            starts.append(t)
    return starts


def interval_deviations_ms(times: list[float], interval: float) -> list[float]:
    return [abs((b - a) - interval) * 1000.0 for a, b in itertools.pairwise(times)]


def lateness_ms(polls: list[float], interval: float) -> list[float]:
    """How late each general poll left against the cycle grid: its offset modulo the
    interval, from the median offset (the on-time polls), folded into [-interval/2,
    interval/2)."""
    offsets = [(t - polls[0]) % interval for t in polls]
    # the on-time phase: the median on the circle (offsets near 0 and near interval agree)
    base = median([o if o < interval / 2 else o - interval for o in offsets])
    return [((o - base + interval / 2) % interval - interval / 2) * 1000.0 for o in offsets]


def timeouts(line: LineOwner | LineProcess) -> int:
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


async def measure(line: LineOwner | LineProcess, polls: Callable[[], list[float]],
                  floor: Callable[[], list[float]], seconds: float, interval: float,
                  name: str, acked: Callable[[], int] | None = None,
                  target: int = 0) -> Phase:
    """Collect for ``seconds``, or (loaded) until the hub acknowledged ``target``."""
    t0, s0 = timeouts(line), line.skipped_slots
    a0 = acked() if acked else 0
    start = time.monotonic()
    end = start + seconds
    while time.monotonic() < end and not (acked and acked() >= target):
        await asyncio.sleep(0.05)  # the measurement window, not a wait for an outcome
    stop = time.monotonic()
    taken = cycle_starts([t for t in polls() if start <= t <= stop], interval)
    floor_taken = [t for t in floor() if start <= t <= stop]
    return Phase(name, interval_deviations_ms(taken, interval), lateness_ms(taken, interval),
                 interval_deviations_ms(floor_taken, interval), timeouts(line) - t0,
                 line.skipped_slots - s0, (acked() - a0) if acked else 0, stop - start)


def agent_config(url: str, interval_ms: int) -> Config:
    return parse_config({"terminal_id": TERMINAL, "machines": [{"address": 1}],
                         "serial": {"port": url},
                         "poll": {"interval_ms": interval_ms, "reply_timeout_ms": 30}})


def start_line(args: argparse.Namespace, config: Config, factory: TimedFactory,
               pipeline: Pipeline) -> LineOwner | LineProcess:
    metrics = AgentMetrics()
    if args.line == "process":
        process = LineProcess(config, pipeline.put, metrics=metrics, transport_factory=factory)
        process.start()
        return process
    owner = LineOwner(factory(config), config.machines, config.poll, pipeline.put,
                      reopen=lambda: factory(config), metrics=metrics)
    owner.start()
    return owner


async def run(args: argparse.Namespace, workdir: Path) -> tuple[Phase, Phase]:
    hub = HubProcess(workdir, TERMINAL, nice=args.hub_nice)
    emulator = EmulatorProcess(scenario="autoplay", games_per_minute=30, pty=True,
                               nice=args.emulator_nice)
    outbox = Outbox.open(workdir / "outbox.db", terminal_id=TERMINAL, max_events=10_000_000)
    uplink_box: list[Uplink] = []

    def committed(_: list[StoredEvent]) -> None:
        if uplink_box:
            uplink_box[0].notify_new_events()

    pipeline = Pipeline(outbox, Interpreter(TERMINAL), listeners=[committed])
    log_path = workdir / "general-polls.bin"
    factory = TimedFactory(str(log_path))
    uplink = Uplink(UplinkConfig(url=hub.url, allow_insecure=True, token_env="UNUSED"),
                    terminal_id=TERMINAL, outbox=outbox, token=lambda: hub.token)
    uplink_box.append(uplink)
    line: LineOwner | LineProcess | None = None
    floor_path = workdir / "floor.bin"
    sleeper = GridSleeper(str(floor_path), args.interval_ms / 1000.0,
                          nice_ahead=NICE_AHEAD if args.line == "process" else 0)
    try:
        pipeline.start()
        line = start_line(args, agent_config(emulator.url, args.interval_ms), factory, pipeline)
        pipeline.set_reads_sink(line.request_reads)
        uplink.start()
        while not uplink.connected or not line.status()["machines"]["1"]["linkUp"]:
            await asyncio.sleep(0.05)
        await asyncio.sleep(args.warmup)  # discovery done, the cadence settled
        interval = args.interval_ms / 1000.0

        def polls() -> list[float]:
            return read_poll_log(log_path)

        def floor() -> list[float]:
            return read_poll_log(floor_path)

        idle = await measure(line, polls, floor, args.duration, interval, "idle")
        await uplink.stop()  # seed with the uplink away, as during an outage
        await asyncio.to_thread(seed_backlog, outbox, args.backlog)
        uplink = Uplink(UplinkConfig(url=hub.url, allow_insecure=True, token_env="UNUSED"),
                        terminal_id=TERMINAL, outbox=outbox, token=lambda: hub.token)
        uplink_box[0] = uplink
        uplink.start()
        loaded = await measure(line, polls, floor, args.duration, interval, "loaded",
                               acked=lambda: uplink.state.hub_acked_seq,
                               target=outbox.last_seq)
        return idle, loaded
    finally:
        await uplink.stop()
        if line is not None:
            line.stop()
        sleeper.stop()
        pipeline.stop()
        outbox.close()
        emulator.stop()
        hub.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per phase")
    parser.add_argument("--runs", type=int, default=1,
                        help="repeat the measurement; the medians are judged")
    parser.add_argument("--interval-ms", type=int, default=40)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--line", choices=["process", "thread"], default="process",
                        help="the line owner in its own process (the daemon's way for a "
                        "configured line) or on a thread of the uplink's process")
    parser.add_argument("--hub-nice", type=int, default=0,
                        help="run the local hub at this niceness (it stands for a server "
                             "elsewhere; 19 keeps it off the agent's CPU time)")
    parser.add_argument("--emulator-nice", type=int, default=0,
                        help="run the emulator at this niceness (below 0 needs root): a real "
                             "machine is a separate device that never waits for the agent's "
                             "CPU, an emulator on a busy 2-core bench does")
    parser.add_argument("--switch-interval-ms", type=float, default=None,
                        help="sys.setswitchinterval for this process (the GIL hand-over "
                             "period; Python's default is 5 ms): what-if for the daemon")
    args = parser.parse_args()
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000.0)
    header("poll timing isolation (general-poll interval deviation)")
    where = "its own process" if args.line == "process" else "a thread of the uplink process"
    print(f"# cadence {args.interval_ms} ms; {args.duration:.0f} s per phase; backlog "
          f"{args.backlog:,} events; line owner in {where}; emulator over a pty; hub in its "
          f"own process; GIL switch interval {sys.getswitchinterval() * 1000:.2f} ms")
    idle_p99s: list[float] = []
    loaded_p99s: list[float] = []
    ratios: list[float] = []
    misses: list[int] = []
    for run_index in range(args.runs):
        workdir = Path(tempfile.mkdtemp(prefix="jitter-bench-"))
        try:
            idle, loaded = asyncio.run(run(args, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if args.runs > 1:
            print(f" run {run_index + 1}/{args.runs}")
        print(idle.line())
        print(loaded.line())
        ratio = loaded.p99 / max(idle.p99, 1e-9)
        print(f"  loaded p99 / idle p99 = {ratio:.2f}", flush=True)
        idle_p99s.append(idle.p99)
        loaded_p99s.append(loaded.p99)
        ratios.append(ratio)
        misses.append(loaded.timeouts)
    if args.runs > 1:
        print(f" medians of {args.runs} runs: idle p99 {median(idle_p99s):.2f} ms, loaded p99 "
              f"{median(loaded_p99s):.2f} ms, loaded/idle {median(ratios):.2f}; reply-window "
              f"misses while draining {misses}")
    return verdicts([
        Verdict("loaded p99 deviation (ms)", median(loaded_p99s), 2.0, at_least=False),
        Verdict("reply-window misses while draining", max(misses), 0, at_least=False),
        Verdict("loaded p99 / idle p99", median(ratios), 1.5, at_least=False),
    ])


if __name__ == "__main__":
    exit_with(main())
