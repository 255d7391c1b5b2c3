"""Poll timing under load: the line owner's cadence idle and while the uplink drains without
pause, at the reference's 200 ms spacing and at 40 ms, for each scheduling of the line process.

The agent runs as the daemon composes it: the line owner in a process of its own
(``agent.line.process.LineProcess``, the product path; ``--line thread`` runs it on a thread
of this process instead, the layout before the split), the pipeline (interpreter + outbox
writer) on a thread of this process, the uplink on this process's asyncio loop. It polls
``slot-agent emulate`` over a pty (its own process, like a real machine) with autoplay. The
reference hub runs in its own process on the same machine. The transport the line owner
opens is wrapped to timestamp every general poll it writes (``procs.TimedFactory``:
``time.monotonic()`` into a file, the clock every process of the machine shares).

For each ``--priority`` (``poll.line_priority``: the line process is started with it, and
what it got is printed) and each ``--cadences`` value (the interval is changed live, as a
reload does), two phases of at least ``--polls`` general-poll cycles each (1,000 by default;
``--quick`` takes 150 for a smoke test):

- idle: the uplink is connected, nothing to send but the emulator's own events;
- loaded: a continuous drain. A feeder thread keeps at least 20,000 events waiting in the
  outbox (committing batches of 500 whenever fewer wait), so the uplink sends and the local
  hub validates and stores events at full speed for the whole phase, not for the first
  seconds of it; the smallest backlog seen during the phase is printed to show the drain
  never ran dry.

Printed per phase: the deviation of each general-poll interval from the cadence (p50, p99,
p99.9, max), how late each poll left against the cycle grid ("start late": leaves out cycles
that overran because a reply came late), reply-window misses and skipped cycles; a general
poll repeated within its cycle (an alarm code confirmed, SAS §3.5) is no cycle of its own.
Beside it the floor: a bare process sleeping on the same grid at the same priority as the
line process, started at the same moment: what the operating system alone adds.

Since per-machine spacing (SAS §3.6, docs/operations.md) the line owner writes to a machine
one interval after the last byte to or from it, not on a fixed grid: general-poll intervals
are the interval plus the reply time by design, and more with a long poll between. So the
figure judged is the "slot late" one: how late each send left against its slot, as the line
owner itself records it (``slot_agent_poll_interval_deviation_seconds``; the line process
ships the samples with its ticks, collected here by :class:`RecordingMetrics`). The interval
deviation and the lateness against a fixed grid are printed for comparison with older runs.

Targets, per priority and cadence, on the slot lateness: loaded p99 <= 2 ms, and loaded p99
<= 1.5 x idle p99; each limit is raised to the floor's loaded p99 measured in the same run
where that is higher (the agent cannot be held to less than the machine gives a bare
sleeper); no missed reply window while loaded. The output states which limit applied.
Run: ``python bench/poll_jitter.py [--quick] [--priority nice,realtime] [--cadences 200,40]``
with the Python of the environment where slot-agent is installed (as root, or under a unit
that allows it, for ``realtime`` and ``nice`` to take effect).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import (
    HelpDefaults,
    Verdict,
    exit_with,
    header,
    load_average,
    median,
    percentile,
    verdicts,
)
from procs import EmulatorProcess, GridSleeper, HubProcess, TimedFactory, read_poll_log
from prometheus_client import CollectorRegistry

from agent.assembly import LineSeam, assemble
from agent.config import Config, parse_config
from agent.line.interface import Line
from agent.line.messages import NICE_AHEAD, RT_PRIORITY, TICK_S
from agent.ops.metrics import AgentMetrics
from agent.store.outbox import Outbox
from agent.uplink.client import Uplink
from api.events import Event, utc_timestamp

TERMINAL = "BENCH-1"
#: The feeder keeps at least this many events waiting for the uplink during a loaded phase.
BACKLOG_FLOOR = 20_000
BATCH = 500


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
    min_backlog: int | None = None
    slot_late_ms: list[float] = field(default_factory=list)

    @property
    def p99(self) -> float:
        return percentile(self.deviations_ms, 99)

    @property
    def slot_p99(self) -> float:
        return percentile(self.slot_late_ms, 99)

    @property
    def floor_p99(self) -> float:
        return percentile(self.floor_ms, 99)

    def line(self) -> str:
        d, late, fl = self.deviations_ms, self.late_ms, self.floor_ms
        load = ""
        if self.min_backlog is not None:
            load = (f"\n  {'':7} load: {self.drained:,} events drained in {self.seconds:.0f} s "
                    f"({self.drained / max(self.seconds, 1e-9):,.0f}/s); smallest backlog "
                    f"seen {self.min_backlog:,} (never empty: the drain lasted the phase)"
                    if self.min_backlog > 0 else
                    f"\n  {'':7} load: {self.drained:,} events drained in {self.seconds:.0f} s;"
                    " THE BACKLOG RAN DRY during the phase")
        sl = self.slot_late_ms or [math.nan]
        n = len(self.slot_late_ms)
        slot = (f"  {self.name:7} slot late ({n:5,}) p50 {percentile(sl, 50):5.2f}  "
                f"p99 {percentile(sl, 99):6.2f}  p99.9 {percentile(sl, 99.9):6.2f}  max "
                f"{max(sl):6.2f} ms  (each send against its slot, as the line owner records it)\n")
        return (slot + f"  {'':7} cycles {len(d):5,} in {self.seconds:5.0f} s  deviation p50 "
                f"{percentile(d, 50):5.2f}  p99 {self.p99:6.2f}  p99.9 {percentile(d, 99.9):6.2f}"
                f"  max {max(d):6.2f} ms  reply-window misses {self.timeouts}  skipped cycles "
                f"{self.skipped}\n"
                f"  {'':7} start late          p50 {percentile(late, 50):5.2f}  p99 "
                f"{percentile(late, 99):6.2f}  p99.9 {percentile(late, 99.9):6.2f}  max "
                f"{max(late):6.2f} ms\n"
                f"  {'':7} floor ({len(fl):5,})      p50 {percentile(fl, 50):5.2f}  p99 "
                f"{self.floor_p99:6.2f}  p99.9 {percentile(fl, 99.9):6.2f}  max {max(fl):6.2f} ms"
                f"  (a bare sleeper on the same grid){load}")


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


class RecordingMetrics(AgentMetrics):
    """The agent's metrics, keeping every schedule deviation the line owner reports (how late
    each send left against its slot, SAS §3.6 spacing) as well: for the line process they
    arrive with its ticks (every ``TICK_S``)."""

    def __init__(self) -> None:
        super().__init__(CollectorRegistry())
        self.slot_late: list[float] = []

    def record_poll_deviation(self, seconds: float) -> None:
        super().record_poll_deviation(seconds)
        self.slot_late.append(seconds * 1000.0)


def timeouts(line: Line) -> int:
    machines: dict[str, Any] = line.status()["machines"]
    return sum(int(m["polls"].get("timeout", 0)) for m in machines.values())


class Feeder:
    """Keeps at least ``BACKLOG_FLOOR`` events waiting in the outbox while it runs (a
    continuous drain: the uplink always has a backlog to send), on a thread of this process
    as the pipeline's commits are. Records the smallest backlog it saw."""

    def __init__(self, outbox: Outbox, acked: Callable[[], int],
                 notify: Callable[[], None]) -> None:
        self._outbox, self._acked, self._notify = outbox, acked, notify
        self._stop = threading.Event()
        self.min_backlog: int | None = None
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)
        self._n = 0

    def start(self) -> None:
        self._fill(BACKLOG_FLOOR + BATCH)  # before the phase: the drain starts at once
        self._thread.start()

    def _fill(self, count: int) -> None:
        stamp = utc_timestamp(time.time())
        for _ in range(0, count, BATCH):
            lo = self._n
            self._n += BATCH
            self._outbox.commit([Event("betPlaced", stamp, {
                "amount": 100, "credits": 100, "denomination": 1, "games": 1,
                "meters": {"coinIn": [i * 100, i * 100 + 100]}})
                for i in range(lo, lo + BATCH)], None)
        self._notify()

    def _run(self) -> None:
        while not self._stop.is_set():
            backlog = self._outbox.last_seq - self._acked()
            if self.min_backlog is None or backlog < self.min_backlog:
                self.min_backlog = backlog
            if backlog < BACKLOG_FLOOR:
                self._fill(BATCH)
            else:
                self._stop.wait(0.01)  # the feeder's own pace, not a wait for an outcome

    def reset_min(self) -> None:
        self.min_backlog = None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


async def measure(line: Line, polls: Callable[[], list[float]],
                  floor: Callable[[], list[float]], cycles: int, interval: float,
                  name: str, acked: Callable[[], int] | None = None,
                  feeder: Feeder | None = None,
                  metrics: RecordingMetrics | None = None) -> Phase:
    """Collect until ``cycles`` poll intervals were seen (bounded: 3 x their time + 30 s)."""
    t0, s0 = timeouts(line), line.skipped_slots
    a0 = acked() if acked else 0
    if feeder is not None:
        feeder.reset_min()
    await asyncio.sleep(TICK_S + 0.5)  # what the previous phase's last tick carried is in
    n0 = len(metrics.slot_late) if metrics is not None else 0
    start = time.monotonic()
    limit = start + cycles * interval * 3 + 30
    while time.monotonic() < limit:
        await asyncio.sleep(min(1.0, interval * 5))  # the measurement window
        if len(cycle_starts([t for t in polls() if t >= start], interval)) > cycles:
            break
    stop = time.monotonic()
    await asyncio.sleep(TICK_S + 0.5)  # the phase's last tick (the load still runs)
    slot_late = metrics.slot_late[n0:] if metrics is not None else []
    taken = cycle_starts([t for t in polls() if start <= t <= stop], interval)
    floor_taken = [t for t in floor() if start <= t <= stop]
    return Phase(name, interval_deviations_ms(taken, interval), lateness_ms(taken, interval),
                 interval_deviations_ms(floor_taken, interval), timeouts(line) - t0,
                 line.skipped_slots - s0, (acked() - a0) if acked else 0, stop - start,
                 feeder.min_backlog if feeder is not None else None, slot_late)


def agent_config(url: str, interval_ms: int, priority: str, workdir: Path,
                 hub: HubProcess) -> Config:
    return parse_config({"terminal_id": TERMINAL, "machines": [{"address": 1}],
                         "serial": {"port": url},
                         "poll": {"interval_ms": interval_ms, "reply_timeout_ms": 30,
                                  "line_priority": priority},
                         "outbox": {"path": str(workdir / "outbox.db"),
                                    "max_events": 100_000_000},
                         "uplink": {"url": hub.url, "allow_insecure": True,
                                    "token_file": str(hub.token_file)}})


@dataclass
class CadenceResult:
    interval_ms: int
    idle: Phase
    loaded: Phase


async def run(args: argparse.Namespace, workdir: Path, priority: str,
              cadences: list[int]) -> tuple[str, list[CadenceResult]]:
    hub = HubProcess(workdir, TERMINAL, nice=args.hub_nice)
    emulator = EmulatorProcess(scenario="autoplay", games_per_minute=30, pty=True,
                               nice=args.emulator_nice, rt_priority=args.emulator_rt)
    log_path = workdir / "general-polls.bin"
    args.metrics = RecordingMetrics()
    # the daemon's wiring; the transport wrapped to timestamp the general polls
    agent = assemble(agent_config(emulator.url, cadences[0], priority, workdir, hub),
                     line=LineSeam(TimedFactory(str(log_path)), process=args.line == "process"),
                     metrics=args.metrics)
    outbox = agent.outbox
    results: list[CadenceResult] = []
    got = "normal (a thread of this process)"
    try:
        line = agent.start()
        uplink = agent.start_uplink()
        while not uplink.connected or not line.status()["machines"]["1"]["linkUp"]:
            await asyncio.sleep(0.05)  # start-up: bounded by the processes' own timeouts
        if args.line == "process":
            prio = line.status()["priority"]
            got = f"{prio['got']} ({prio['detail']})"
            print(f" line_priority {priority}: the line process got {got}", flush=True)
            sleeper_priority = prio["got"]
        else:
            sleeper_priority = "normal"

        def polls() -> list[float]:
            return read_poll_log(log_path)

        for interval_ms in cadences:
            line.set_poll_interval(interval_ms)
            floor_path = workdir / f"floor-{interval_ms}.bin"
            sleeper = GridSleeper(str(floor_path), interval_ms / 1000.0,
                                  priority=sleeper_priority, nice_ahead=NICE_AHEAD,
                                  rt_priority=RT_PRIORITY)
            try:
                await asyncio.sleep(args.warmup)  # the new cadence settled, the sleeper runs

                def floor(path: Path = floor_path) -> list[float]:
                    return read_poll_log(path)

                interval = interval_ms / 1000.0
                print(f" cadence {interval_ms} ms: idle phase ({args.polls} cycles) ...",
                      flush=True)
                idle = await measure(line, polls, floor, args.polls, interval, "idle",
                                     metrics=args.metrics)
                print(f" cadence {interval_ms} ms: loaded phase ({args.polls} cycles, "
                      f"continuous drain; load average {load_average()}) ...", flush=True)
                up = uplink

                def acked(u: Uplink = up) -> int:
                    return u.state.hub_acked_seq

                feeder = Feeder(outbox, acked, up.notify_new_events)
                await asyncio.to_thread(feeder.start)
                try:
                    loaded = await measure(line, polls, floor, args.polls, interval, "loaded",
                                           acked=acked, feeder=feeder, metrics=args.metrics)
                finally:
                    await asyncio.to_thread(feeder.stop)
                deadline = time.monotonic() + 120
                while acked() < outbox.last_seq and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)  # the rest of the backlog drains before idle
            finally:
                sleeper.stop()
            results.append(CadenceResult(interval_ms, idle, loaded))
        return got, results
    finally:
        await agent.stop_uplink()
        agent.close()
        emulator.stop()
        hub.stop()


def judge(priority: str, got: str, result: CadenceResult) -> list[Verdict]:
    idle, loaded = result.idle, result.loaded
    floor = loaded.floor_p99
    ratio_limit = 1.5 * idle.slot_p99
    abs_limit = max(2.0, floor)
    rel_limit = max(ratio_limit, floor)
    tag = f"{priority}->{got.split(' ')[0]} @{result.interval_ms} ms"
    print(f"  {tag}: limits: p99 <= {abs_limit:.2f} ms ("
          + ("2 ms" if abs_limit == 2.0 else "the floor's loaded p99, above 2 ms")
          + f"); p99 <= {rel_limit:.2f} ms ("
          + (f"1.5 x idle p99 {idle.slot_p99:.2f}" if rel_limit == ratio_limit
             else f"the floor's loaded p99, above 1.5 x idle p99 = {ratio_limit:.2f}")
          + f"); slot-late loaded / idle p99 = {loaded.slot_p99 / max(idle.slot_p99, 1e-9):.2f}")
    return [
        Verdict(f"{tag}: loaded slot-late p99 (ms) vs max(2 ms, floor)", loaded.slot_p99,
                abs_limit, at_least=False),
        Verdict(f"{tag}: loaded slot-late p99 (ms) vs max(1.5 x idle, floor)",
                loaded.slot_p99, rel_limit, at_least=False),
        Verdict(f"{tag}: reply-window misses while loaded", loaded.timeouts, 0,
                at_least=False),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    parser.add_argument("--polls", type=int, default=1000,
                        help="poll cycles per phase (at least; default 1000)")
    parser.add_argument("--quick", action="store_true",
                        help="150 cycles per phase: a smoke test, not a measurement")
    parser.add_argument("--cadences", default="200,40",
                        help="poll intervals in ms, comma-separated (default 200,40)")
    parser.add_argument("--priority", default="nice,realtime",
                        help="poll.line_priority values to measure, comma-separated "
                             "(realtime, nice, normal; default nice,realtime)")
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
    parser.add_argument("--emulator-rt", type=int, default=0,
                        help="run the emulator SCHED_RR at this priority (root): a separate "
                             "device in the field, it must not miss reply windows because the "
                             "bench machine is busy (0: an ordinary process)")
    parser.add_argument("--switch-interval-ms", type=float, default=None,
                        help="sys.setswitchinterval for this process (the GIL hand-over "
                             "period; Python's default is 5 ms): what-if for the daemon")
    args = parser.parse_args()
    if args.quick:
        args.polls = 150
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000.0)
    cadences = [int(c) for c in args.cadences.split(",")]
    priorities = [p.strip() for p in args.priority.split(",")]
    if args.line == "thread":
        priorities = ["normal"]
    header("poll timing under a continuous drain (general-poll interval deviation)")
    where = "its own process" if args.line == "process" else "a thread of the uplink process"
    print(f"# cadences {cadences} ms; {args.polls:,} cycles per phase"
          f"{' (--quick: a smoke test)' if args.quick else ''}; loaded = a continuous drain "
          f"(>= {BACKLOG_FLOOR:,} events always waiting) to the hub on this host; line owner in "
          f"{where}; emulator over a pty (nice {args.emulator_nice}, SCHED_RR "
          f"{args.emulator_rt or 'no'}); GIL switch interval "
          f"{sys.getswitchinterval() * 1000:.2f} ms", flush=True)
    items: list[Verdict] = []
    for priority in priorities:
        workdir = Path(tempfile.mkdtemp(prefix="jitter-bench-"))
        try:
            got, results = asyncio.run(run(args, workdir, priority, cadences))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        for result in results:
            print(f" line_priority {priority} (got {got.split(' ')[0]}), cadence "
                  f"{result.interval_ms} ms (load average now {load_average()}):")
            print(result.idle.line())
            print(result.loaded.line())
            items += judge(priority, got, result)
    return verdicts(items)


if __name__ == "__main__":
    exit_with(main())
