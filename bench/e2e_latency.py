"""End-to-end latency: the machine raises an exception -> a dashboard subscriber has the event.

A door opens (exception 1D, belly door) or closes (1E) on an emulated machine in a process of
its own (bench/door_machine.py: a real machine is a separate device; as a thread of this
process it shared the interpreter lock with the subscriber timing the arrivals, issue 17),
served over a pty (``--link tcp``: over TCP, with no tty between it and the agent);
``slot-agent run`` (its own process) polls it; the reference hub (its own process) stores
and fans the event out; a subscriber in this process, connected to ``/ws/client`` like the
dashboard, receives ``doorOpened`` / ``doorClosed``. The clock runs from the moment the
model raised the exception (``time.monotonic()`` in the machine's process, under the
emulator's lock) to the moment the frame was received (the same clock in this process).
The machine's process takes its moves and its wire log (every read and write at its end,
and every empty read) in memory and hands them over after the moves, through its stdout:
nothing crosses between the two processes while the doors move.

Doors move at random moments (3.75-10 poll intervals apart: 150-400 ms at 40 ms) so the wait
for the next general poll is spread over the whole interval: on average half the poll
interval, at worst one interval.
A door code is an alarm-class code: the agent confirms it with an implied NACK, the same
general poll sent again (reference "Implied ACK": the same poll again makes the machine
re-send; ``HostProtocol(confirm_exceptions=...)``, docs/sas.md), and that re-send, like any
send, waits one poll interval after the machine's last byte (reference §2.3.3: a machine is
polled no faster than once per interval). So the event needs up to one interval for the
general poll that sees the code and one more for the confirmation.
Printed: latency p50/p99/max, and the same minus two poll intervals (what the agent, the
hub and the network add beyond the poll cadence). The baseline is the poll interval itself.
Then where the time went (:data:`HOPS`, p50/p99/max, and the slowest events one by one):
the machine's first and second answers (its wire log), the line process's reading (the
event's timestamp), the outbox row (``created_at``), the hub's commit (``received_at``),
the subscriber. ``--line-capture`` adds the line process's own frames (``slot-agent
capture``), and with them how long each poll and answer was in transit between the two
(:func:`stalls`). Target: p99 latency <= 2 x poll interval + 10 ms, and no door event lost.

Lost events (issue 17) are counted apart when the emulated machine was starved: a real
machine has its own CPU and answers within 20 ms (reference §3.6), but this one shares the
bench machine's CPUs, and under load it may not run for several reply windows. It
then reads a pile of polls at once, and when the pile holds a sync poll after a general
poll (``80`` after ``81``: the host gave that poll up and sent the sync poll, an implied ACK,
reference §3.5) the machine drops its code before it ever answers: only its late answers
can still be read (the host confirms a code that comes twice in one window), and the
machine will not send them again.
So the machine's process gets the line process's scheduling (``--no-machine-priority``
leaves it at the bench's), and a loss while such a pile came in is the machine's, any other
is the agent's.
Run: ``python bench/e2e_latency.py [--samples 200] [--interval-ms 40] [--priority realtime]
[--link pty|tcp] [--line-capture] [--nice N] [--trace FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import math
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchlib import (
    HelpDefaults,
    Verdict,
    exit_with,
    header,
    load_average,
    percentile,
    run_in_workdir,
    verdicts,
)
from procs import SLOT_AGENT, agent_floor, dashboard

from api.capture import parse_capture

TERMINAL = "BENCH-E2E"
MACHINE = Path(__file__).resolve().parent / "door_machine.py"
CODES = {"doorOpened": "1d", "doorClosed": "1e"}  # the belly door's exceptions (§3.11)
#: The hops of a door event, from the timestamps the pieces leave behind (see the docstring)
#: A write is stamped after it returned; a read at the other end may come before the stamp
STAMP_SLACK_S = 0.002
HOPS = ("poll wait", "confirmation", "line", "daemon", "commit + uplink", "hub + subscriber")


def acked_unanswered(data: str) -> bool:
    """A read at the machine's end (``WireLog`` text: ``^80 ^81 ^81``) in which a sync poll
    comes after a general poll: the machine did not run for the whole poll (its copies and
    their windows), and takes the sync poll that followed the failure as the implied ACK of
    an answer it has not sent yet."""
    words = data.split()
    return "^81" in words and "^80" in words[words.index("^81"):]


def wall(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def wall_offset() -> float:
    """``time.time() - time.monotonic()`` (the same in every process of the machine): the
    smallest of a few readings, the one least stretched by a preemption between the two."""
    readings = []
    for _ in range(50):
        a = time.monotonic()
        w = time.time()
        b = time.monotonic()
        readings.append((b - a, w - (a + b) / 2))
    return min(readings)[1]


@dataclass
class Received:
    event: str
    seq: int
    timestamp: float  # the event's own timestamp (wall, to the ms): the line read the code
    wall: float  # when the subscriber had it
    mono: float  # the same, monotonic


@dataclass
class Result:
    latencies: list[float]  # ms, of the events that arrived
    #: (door move, its hops, its :func:`stalls`; ms) of the events that arrived
    hops: list[tuple[int, list[float], tuple[float, float, float]]]
    lost: list[int]  # indices of door moves whose event never arrived
    starved: list[int]  # of those, the machine's: raised while it was starved, or the door's
    #: next move after such a loss (the agent drops a code that repeats the door's state)
    bursts: int  # reads at the machine's end with a sync poll after a general poll
    stats: str  # the emulator's link statistics
    dropped: int  # door codes the machine's queue dropped when it overflowed (a real one would)
    data_gaps: int  # dataGap (exceptionQueueOverflow) events the subscriber received
    scheduling: str  # the machine process's


def match(raised: list[tuple[str, float]], received: list[tuple[str, float]]
          ) -> tuple[list[float], list[int]]:
    """Pair each received event with the latest unpaired door move of its name before it
    (doors alternate, so a lost event cannot shift the pairs); the moves left are lost."""
    paired = pairs(raised, received)
    latencies = [(paired[i] - raised[i][1]) * 1000.0 for i in sorted(paired)]
    return latencies, [i for i in range(len(raised)) if i not in paired]


def pairs(raised: list[tuple[str, float]], received: list[tuple[str, float]]
          ) -> dict[int, float]:
    """:func:`match`'s pairing: door move -> when its event was received."""
    paired: dict[int, float] = {}
    for name, t_got in received:
        candidates = [i for i, (n, t) in enumerate(raised)
                      if n == name and t < t_got and i not in paired]
        if candidates:
            paired[candidates[-1]] = t_got
    return paired


def hops(raised_at: float, code: str, got: Received, wire: list[tuple[float, str, str]],
         offset: float, created: float, hub_at: float) -> list[float]:
    """One event's :data:`HOPS`, in ms: the move -> the machine's first answer with its code
    (the general poll that saw it) -> its second (the confirming re-send: the host's implied
    NACK) -> the line process's reading (the event's timestamp) -> the row in the outbox (its
    ``created_at``) -> the hub's commit (``received_at``) -> the subscriber. Machine times
    are monotonic, the rest wall-clock: ``offset`` converts."""
    answers = [t for t, direction, data in wire
               if direction == "tx" and raised_at <= t <= got.mono
               for k in range(0, len(data), 2) if data[k:k + 2] == code]
    first = answers[0] if answers else got.mono
    second = answers[1] if len(answers) > 1 else first
    points = [raised_at + offset, first + offset, second + offset, got.timestamp, created,
              hub_at, got.wall]
    return [(b - a) * 1000.0 for a, b in itertools.pairwise(points)]


def stalls(start: float, end: float, wire: list[tuple[float, str, str]],
           line: list[tuple[float, str, str]]) -> tuple[float, float, float]:
    """Where an event's time went between ``start`` and ``end`` (monotonic), in ms: the
    machine's longest time without running (the gap between two entries of its log, which
    has one at least every 50 ms while it runs: a read, a write or a timer's wake-up); the
    longest a poll the line process wrote took to reach the machine (line tx -> machine rx:
    the pty, the kernel's tty work); the longest a machine's answer took to reach the line
    process (machine tx -> line rx). The last two need the line's capture (NaN without)."""
    before = [t for t, _, _ in wire if t < start][-1:]
    times = before + [t for t, _, _ in wire if start <= t <= end]
    asleep = max((b - a for a, b in itertools.pairwise(times)), default=0.0) * 1000.0

    def transit(sent: list[float], got: list[float]) -> float:
        worst = math.nan if not line else 0.0
        for t in sent:
            # each end stamps a write after it returns: the other end may have read it first
            later = bisect.bisect_left(got, t - STAMP_SLACK_S)
            if later < len(got):
                worst = max(worst, (got[later] - t) * 1000.0)
        return worst

    line_tx = [t for t, d, _ in line if d == "tx" and start <= t <= end]
    line_rx = sorted(t for t, d, _ in line if d == "rx")
    machine_rx = sorted(t for t, d, _ in wire if d == "rx")
    machine_tx = [t for t, d, _ in wire if d == "tx" and start <= t <= end]
    return asleep, transit(line_tx, machine_rx), transit(machine_tx, line_rx)


def line_frames(path: Path, offset: float) -> list[tuple[float, str, str]]:
    """The line process's frames from a ``slot-agent capture`` file, on the monotonic clock
    (the capture's start is stamped to the ms: the times are within 1 ms)."""
    capture = parse_capture(path.read_text().splitlines(), str(path))
    return [(capture.started_at + f.t - offset, f.direction, f.data.hex())
            for f in capture.frames]


class DoorMachine:
    """bench/door_machine.py in its own process: the machine, the door moves and their
    timestamps, driven over its stdin and stdout only before and after the moves."""

    def __init__(self, samples: int, interval_ms: int, priority: str, link: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(MACHINE), "--samples", str(samples), "--interval-ms",
             str(interval_ms), "--priority", priority, "--link", link],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        first = self._receive()
        self.link, self.scheduling = str(first["link"]), str(first["scheduling"])
        self.ids = f"pid {first['pid']}, serving thread {first['tid']}"

    def _receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the door machine stopped (exit {self.proc.wait(5)})")
        record: dict[str, Any] = json.loads(line)
        return record

    def _send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    async def move_doors(self) -> int:
        """Start the moves; returns, their number, when they are done."""
        self._send("go")
        moved = await asyncio.get_running_loop().run_in_executor(None, self._receive)
        return int(moved["moved"])

    def record(self) -> dict[str, Any]:
        """Stop; what the machine recorded (moves, wire, link statistics, queue drops)."""
        self._send("stop")
        record = self._receive()
        self.proc.wait(20)
        return record

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(20)


async def run(args: argparse.Namespace, workdir: Path) -> Result:
    received: list[Received] = []
    gaps: list[float] = []  # dataGap for exception 70: the machine's queue overflowed

    def on_event(msg: dict[str, Any], mono: float, now: float) -> None:
        if msg["event"] in ("doorOpened", "doorClosed") and msg["data"].get("door") == "belly":
            received.append(Received(msg["event"], int(msg["seq"]), wall(msg["timestamp"]),
                                     now, mono))
        elif msg["event"] == "dataGap" and msg["data"].get("reason") == "exceptionQueueOverflow":
            gaps.append(mono)

    machine = DoorMachine(args.samples, args.interval_ms,
                          args.priority if args.machine_priority else "normal", args.link)
    try:
        async with agent_floor(workdir, TERMINAL, machine.link, args.interval_ms,
                               priority=args.priority, nice=args.nice) as floor, \
                dashboard(floor.hub, TERMINAL, on_event):
            agent_pid, hub_pid = floor.agent.pid, floor.hub.proc.pid
            await asyncio.sleep(1.0)  # let the discovery reads finish
            capture = workdir / "line.capture"
            capturing = None
            if args.line_capture:  # the line process's frames, through its control socket
                seconds = min(600, round(args.samples * 10 * args.interval_ms / 1000 + 5))
                capturing = await asyncio.create_subprocess_exec(
                    SLOT_AGENT, "capture", "--config", str(workdir / "agent.yaml"),
                    "--seconds", str(seconds), "--out", str(capture))
                await asyncio.sleep(1.0)
            print(f"  moving doors (load average {load_average()}) ...", flush=True)
            moved = await machine.move_doors()
            deadline = time.monotonic() + 30
            while len(received) < moved and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            record = machine.record()
            if capturing is not None and await capturing.wait() != 0:
                raise SystemExit("slot-agent capture failed")
    finally:
        machine.kill()
    offset = wall_offset()
    line = line_frames(capture, offset) if args.line_capture else []
    raised = [(str(name), float(t)) for name, t in record["raised"]]
    wire = [(float(t), str(d), str(h)) for t, d, h in record["wire"]]
    got = {(r.event, r.mono): r for r in received}
    paired = pairs(raised, [(r.event, r.mono) for r in received])
    latencies, lost = match(raised, [(r.event, r.mono) for r in received])
    created = dict(sqlite3.connect(workdir / "outbox.db").execute(
        "SELECT seq, created_at FROM events"))
    hub_at = dict(sqlite3.connect(workdir / "hub.db").execute(
        "SELECT seq, received_at FROM events WHERE terminal_id = ?", (TERMINAL,)))
    breakdown = []
    for i in sorted(paired):
        name, t = raised[i]
        r = got[(name, paired[i])]
        breakdown.append((i, hops(t, CODES[name], r, wire, offset, created[r.seq],
                                  hub_at[r.seq]), stalls(t, r.mono, wire, line)))
    bursts = [t for t, direction, data in wire
              if direction == "rx" and acked_unanswered(data)]
    # a lost event counts as the machine's when a burst came in while its code was pending
    # (before the event after it was raised: by then the code had been answered or dropped)
    starved = [i for i in lost if any(
        raised[i][1] <= t <= (raised[i + 1][1] if i + 1 < len(raised) else raised[i][1] + 1.0)
        for t in bursts)]
    # the door's next move after a starved loss: the agent keeps the door's state and drops
    # a code that repeats it (a close for a door it believes closed, reference §4.3 item 5)
    starved += [i for i in lost if i not in starved and i - 1 in starved]
    if args.trace:
        with open(args.trace, "w") as f:
            f.write(f"# monotonic; wall = monotonic + {offset:.6f}; machine {machine.ids}; "
                    f"agent pid {agent_pid}; hub pid {hub_pid}\n")
            for i, (name, t) in enumerate(raised):
                f.write(f"{t:.4f} raised {i} {name}\n")
            for r in received:
                f.write(f"{r.mono:.4f} got {r.event} seq {r.seq} timestamp "
                        f"{r.timestamp - offset:.4f} outbox {created[r.seq] - offset:.4f} "
                        f"hub {hub_at[r.seq] - offset:.4f}\n")
            for i, parts, (asleep, to_machine, to_line) in breakdown:
                f.write(f"{raised[i][1]:.4f} hops {i} "
                        + " ".join(f"{h}={v:.1f}" for h, v in zip(HOPS, parts, strict=True))
                        + f" machine-asleep={asleep:.1f} line->machine={to_machine:.1f} "
                        f"machine->line={to_line:.1f}\n")
            for t, d, h in wire:
                f.write(f"{t:.4f} {d} {h}\n")
            for t, d, h in line:
                f.write(f"{t:.4f} line-{d} {h}\n")
    return Result(latencies, breakdown, lost, starved, len(bursts), str(record["stats"]),
                  int(record["dropped"]), len(gaps), machine.scheduling)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--interval-ms", type=int, default=40)
    parser.add_argument("--priority", default="nice", choices=["realtime", "nice", "normal"],
                        help="poll.line_priority of the agent")
    parser.add_argument("--trace", default="",
                        help="write the door moves, the events (with their hops) and the "
                        "machine's end of the line here")
    parser.add_argument("--line-capture", action="store_true",
                        help="record the line process's frames (slot-agent capture) to time "
                        "each poll and answer between the line and the machine (in the trace "
                        "and the slowest events)")
    parser.add_argument("--link", choices=["pty", "tcp"], default="pty",
                        help="the line between the agent and the machine: a pty (a tty, as a "
                        "serial port is; default) or TCP (no tty: a terminal server's link)")
    parser.add_argument("--nice", type=int, default=0,
                        help="run the agent's daemon and the hub at this nice value (below 0: "
                        "ahead of ordinary processes, as a unit's Nice= would; root)")
    parser.add_argument("--slowest", type=int, default=5,
                        help="print the hops of this many slowest events (default 5)")
    parser.add_argument("--no-machine-priority", dest="machine_priority",
                        action="store_false",
                        help="leave the machine's process at the bench's scheduling")
    args = parser.parse_args()
    header("end-to-end latency: exception raised -> dashboard subscriber has the event")
    print(f"# {args.samples} door events; poll interval {args.interval_ms} ms; line_priority "
          f"{args.priority}; the machine in its own process (bench/door_machine.py, "
          f"{'the line process scheduling' if args.machine_priority else 'as the bench'}"
          "); agent and hub in their own processes")
    result = run_in_workdir("e2e-bench-", lambda workdir: run(args, workdir))
    lat = result.latencies
    interval = float(args.interval_ms)
    unexplained = len(result.lost) - len(result.starved) - result.dropped
    print(f"  machine            {result.scheduling}; link {args.link}; agent daemon and hub "
          f"at nice {args.nice}")
    print(f"  events             {args.samples} raised, {len(lat)} arrived, "
          f"{len(result.lost)} lost: {len(result.starved)} while the machine was starved "
          f"(it read a sync poll after a general poll at once, {result.bursts} times: "
          "it answered "
          f"after the host had given up and sent the sync poll, an implied ACK; with the "
          "door's next move, dropped as a repeat of the door's state), "
          f"{result.dropped} dropped by the machine's queue overflow ({result.data_gaps} "
          f"dataGap received), {unexplained} otherwise; load average {load_average()}")
    if result.lost:
        print(f"  emulator           {result.stats}")
    beyond = [x - 2 * interval for x in lat]  # the poll that sees the code + its confirmation
    print(f"  latency            p50 {percentile(lat, 50):7.1f} ms  p99 {percentile(lat, 99):7.1f}"
          f" ms  max {max(lat):7.1f} ms")
    print(f"  minus 2 intervals  p50 {percentile(beyond, 50):7.1f} ms  p99 "
          f"{percentile(beyond, 99):7.1f} ms  (baseline: the {interval:.0f} ms poll interval; "
          "one for the poll that sees the code, one for its confirming re-send)")
    print(f"  p99 / interval = {percentile(lat, 99) / interval:.2f}")
    print("  hops (ms)          " + "".join(f"{h:>18}" for h in HOPS))
    for q in (50, 99, 100):
        column = [percentile([parts[k] for _, parts, _ in result.hops], q)
                  for k in range(len(HOPS))]
        print(f"    {'max' if q == 100 else f'p{q}':16}" + "".join(f"{v:18.1f}" for v in column))
    slowest = sorted(result.hops, key=lambda item: -sum(item[1]))[:args.slowest]
    print(f"  the {len(slowest)} slowest events (door move, total, hops; then the machine's "
          "longest time without running, and the longest transit line -> machine and "
          "machine -> line" + (")" if args.line_capture else ": --line-capture)"))
    for i, parts, (asleep, to_machine, to_line) in slowest:
        print(f"    #{i:<4} {sum(parts):7.1f}   " + "".join(f"{v:18.1f}" for v in parts)
              + f"   asleep {asleep:.1f}, line->machine {to_machine:.1f}, "
              f"machine->line {to_line:.1f}")
    return verdicts([Verdict("p99 beyond 2 poll intervals (ms)", percentile(beyond, 99), 10.0,
                             at_least=False),
                     Verdict("events lost, the machine answering", unexplained, 0,
                             at_least=False)])


if __name__ == "__main__":
    exit_with(main())
