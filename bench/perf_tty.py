"""Where a line's bytes wait in the kernel: a ``perf`` scheduler trace, read for given threads.

A byte written to a tty (a pty, or a serial port's receive side) reaches the reader through
the tty layer's flip buffer: the writer queues the ``flush_to_ldisc`` work item, and a kernel
worker (``kworker/u*``, of the ``events_unbound`` workqueue, at nice 0 whatever the
writer's or the reader's priority) moves the bytes to the line discipline and wakes the
reader; a reader that wakes on its timeout meanwhile waits for that work in state D
(``n_tty_read`` flushes the pending work before it gives up). On a machine whose CPUs are
full of ordinary processes, that worker waits for a CPU like them (issue 17's door stalls,
docs/performance.md). This prints, for each thread given, how long the ``flush_to_ldisc``
work it queued waited to run, and how long the thread itself waited from its wake-up to a
CPU, with the worst moments (monotonic seconds, as bench/e2e_latency.py's trace).

Record (as root, beside a benchmark run)::

    perf record -k mono -a -e sched:sched_switch -e sched:sched_waking \\
        -e workqueue:workqueue_queue_work -e workqueue:workqueue_execute_start \\
        -o /tmp/perf.data -- python bench/e2e_latency.py --trace /tmp/trace.txt ...
    perf script -i /tmp/perf.data -F tid,cpu,time,event,trace > /tmp/perf.txt
    python bench/perf_tty.py /tmp/perf.txt --tids LINE_TID,MACHINE_TID

(the machine's serving thread is named in the trace's first line; the line owner's thread
is the one of ``slot-agent-line`` that queues ``flush_to_ldisc`` at each poll).
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict

from benchlib import HelpDefaults

LINE = re.compile(r"^\s*(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s+(.*)$")
WORK = re.compile(r"work struct[= ](0x[0-9a-f]+)")


def summary(name: str, delays: list[tuple[float, float]], worst: int) -> str:
    """``delays``: (seconds waited, when it started)."""
    if not delays:
        return f"  {name}: none"
    ordered = sorted(d for d, _ in delays)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0

    top = sorted(delays, reverse=True)[:worst]
    return (f"  {name}: n {len(ordered)}, p50 {pct(0.5):.2f}, p99 {pct(0.99):.2f}, max "
            f"{ordered[-1] * 1000.0:.2f} ms; worst at "
            + ", ".join(f"{at:.4f} ({d * 1000.0:.1f} ms)" for d, at in top))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    parser.add_argument("script", help="perf script -F tid,cpu,time,event,trace output")
    parser.add_argument("--tids", required=True, help="thread ids, comma-separated")
    parser.add_argument("--worst", type=int, default=5)
    args = parser.parse_args()
    tids = {int(x) for x in args.tids.split(",")}
    waking: dict[int, float] = {}
    running: set[int] = set()
    to_cpu: dict[int, list[tuple[float, float]]] = defaultdict(list)
    queued: dict[str, tuple[float, int]] = {}
    flips: dict[int, list[tuple[float, float]]] = defaultdict(list)
    with open(args.script) as f:
        for text in f:
            m = LINE.match(text)
            if m is None:
                continue
            tid, t, event, rest = int(m[1]), float(m[3]), m[4], m[5]
            if tid in waking:  # it runs (its switch-in may be missing: perf drops chunks)
                woke = waking.pop(tid)
                to_cpu[tid].append((t - woke, woke))
            if event == "sched:sched_waking":
                pid = int(re.search(r" pid=(\d+)", rest)[1])  # type: ignore[index]
                if pid in tids and pid not in running:
                    waking.setdefault(pid, t)
            elif event == "sched:sched_switch":
                prev = int(re.search(r"prev_pid=(\d+)", rest)[1])  # type: ignore[index]
                nxt = int(re.search(r"next_pid=(\d+)", rest)[1])  # type: ignore[index]
                running.discard(prev)
                if nxt in tids:
                    running.add(nxt)
                    if nxt in waking:
                        woke = waking.pop(nxt)
                        to_cpu[nxt].append((t - woke, woke))
            elif "flush_to_ldisc" in rest:
                work = WORK.search(rest)
                if work is None:
                    continue
                if event == "workqueue:workqueue_queue_work":
                    queued.setdefault(work[1], (t, tid))
                elif event == "workqueue:workqueue_execute_start" and work[1] in queued:
                    at, by = queued.pop(work[1])
                    if by in tids:
                        flips[by].append((t - at, at))
    for tid in sorted(tids):
        print(f"thread {tid}")
        print(summary("its flush_to_ldisc work, queued -> running", flips[tid], args.worst))
        print(summary("itself, woken -> on a CPU", to_cpu[tid], args.worst))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
