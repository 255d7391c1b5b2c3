"""The door benchmark's machine, in a process of its own (bench/e2e_latency.py starts it).

A real machine is a separate device with its own CPU; emulated as a thread of the benchmark
it shared the benchmark's interpreter lock with the subscriber timing the arrivals, so a busy
moment of either stalled the other (issue 17). Here the machine (``emulator.Emulator`` on a
pty), the door moves and the timestamps all live in this process, which talks to the
benchmark only before and after the moves, over its stdin and stdout (one JSON line each):

1. it prints ``{"link": "pty:PATH"}`` (the slave end for the agent; with ``--link tcp``,
   ``tcp://HOST:PORT`` to connect to) and waits;
2. on ``go`` it moves the belly door ``--samples`` times at random moments (3.75-10 poll
   intervals apart), stamping each move with ``time.monotonic()`` taken under the emulator's
   lock at the moment the model raises the exception, and prints ``{"moved": N}``;
3. on ``stop`` it prints the record: the moves, the machine's end of the line (every read
   and write, monotonic), the link statistics and the queue's overflow drops, and exits.

Nothing crosses the pipe while the doors move, so timing the machine perturbs it no more
than the log in memory does. ``--priority`` gives the process the scheduling the line
process asked for (``realtime``: SCHED_RR at the line's priority; ``nice``: the line's nice
lead; ``normal``: none), applied before the emulator's thread starts so that it inherits it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

from benchlib import HelpDefaults
from procs import PassThrough

from agent.line.messages import NICE_AHEAD, RT_PRIORITY
from drivers.base import Transport, Word
from drivers.pseudo_tty import open_pty
from emulator.model import Door, Machine, MachineConfig
from emulator.server import Emulator
from emulator.tcp_serving import TcpServing


class WireLog(PassThrough):
    """The machine's end of the line, logging (monotonic) every byte read and written: reads
    as ``^80 81`` (``^``: the wakeup bit), writes as hex; and every read that returned with
    nothing (``wake``: the serving thread's timer, at least every 50 ms), so the log shows
    whether the machine ran while no byte came."""

    def __init__(self, inner: Transport, log: list[tuple[float, str, str]]) -> None:
        super().__init__(inner)
        self.log = log  # shared by the connections one after another (TCP)

    def write(self, frame: bytes, *, wakeup: bool) -> None:
        self.inner.write(frame, wakeup=wakeup)
        self.log.append((time.monotonic(), "tx", frame.hex()))

    def read(self, deadline: float, max_words: int = 512) -> list[Word]:
        words = self.inner.read(deadline, max_words)
        if words:
            self.log.append((time.monotonic(), "rx", " ".join(
                f"{'^' if w.wakeup else ''}{w.value:02x}" for w in words)))
        else:
            self.log.append((time.monotonic(), "wake", ""))
        return words


def raise_priority(priority: str) -> str:
    """The line process's scheduling for this thread (and the threads it starts later)."""
    try:
        if priority == "realtime":
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(RT_PRIORITY))
            return f"SCHED_RR {RT_PRIORITY}"
        if priority == "nice":
            nice = max(-20, os.getpriority(os.PRIO_PROCESS, 0) - NICE_AHEAD)
            os.setpriority(os.PRIO_PROCESS, 0, nice)
            return f"nice {nice}"
    except OSError as exc:
        return f"{priority} refused ({exc.strerror}): as the bench"
    return "as the bench"


def command(expected: str) -> None:
    line = sys.stdin.readline().strip()
    if line != expected:
        raise SystemExit(f"door_machine: expected {expected!r} on stdin, got {line!r}")


def send(record: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    parser.add_argument("--samples", type=int, required=True)
    parser.add_argument("--interval-ms", type=int, required=True)
    parser.add_argument("--priority", choices=["realtime", "nice", "normal"], default="normal")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--link", choices=["pty", "tcp"], default="pty")
    args = parser.parse_args()
    scheduling = raise_priority(args.priority)
    log: list[tuple[float, str, str]] = []
    machine = Machine(MachineConfig(denomination_cents=1), now=time.monotonic())
    emulator = Emulator(machine, None, address=1)
    serving: TcpServing | None = None
    if args.link == "pty":
        master, slave = open_pty()
        emulator.attach(WireLog(master, log))
        where = f"pty:{slave}"
        emulator.start()
    else:  # the agent connects (and may reconnect): each connection is served in turn
        serving = TcpServing(emulator, wrap=lambda conn: WireLog(conn, log))
        where = serving.url
        serving.start()
    thread = emulator._thread  # its id, to find it in a kernel trace (perf sched)
    send({"link": where, "scheduling": scheduling,
          "pid": os.getpid(), "tid": thread.native_id if thread is not None else None})
    command("go")
    rng = random.Random(args.seed)
    raised: list[tuple[str, float]] = []
    for i in range(args.samples):
        # 150-400 ms at 40 ms: an alarm code takes two intervals (the poll that reads it and
        # its confirmation) and the next general poll a third, so doors moving faster than
        # that for long fill the machine's queue (25) until it overflows
        time.sleep(rng.uniform(3.75, 10.0) * args.interval_ms / 1000.0)
        with emulator.lock:
            now = time.monotonic()
            if i % 2 == 0:
                machine.open_door(now, Door.BELLY)
                raised.append(("doorOpened", now))
            else:
                machine.close_door(now, Door.BELLY)
                raised.append(("doorClosed", now))
    send({"moved": len(raised)})
    command("stop")
    emulator.stop()
    with emulator.lock:
        record = {"raised": raised, "wire": log, "stats": str(emulator.stats),
                  "dropped": machine.queue.dropped}
    if serving is not None:
        serving.stop()
    transport = emulator.detach()
    if transport is not None:
        transport.close()
    send(record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
