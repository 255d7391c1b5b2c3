"""Footprint: RSS and CPU of ``slot-agent run`` polling at 200 ms with a connected hub.

The agent is two processes, the daemon and its line process (agent/line/process.py): RSS
and CPU are summed over both, and PSS (shared pages split between them) is printed beside.

The agent polls ``slot-agent emulate`` (autoplay, 30 games a minute, over TCP) and streams to
the reference hub; each runs in its own process. After a warm-up, the agent's RSS
(``/proc/PID/status`` VmRSS) is sampled every second and its CPU time (``/proc/PID/stat``
utime + stime) is read at both ends of the window. The baseline, measured in the same run:
an idle Python interpreter that imported the same modules (``agent.daemon``), i.e. what the
interpreter and the libraries cost before the agent does anything.

Targets: RSS <= 50 MB, CPU <= 1 % of one core; no RSS growth over a 10-minute run
(``--duration 600``: the median RSS of the last minute within 1 MB of the first minute's).
Run: ``.venv/bin/python bench/footprint.py [--duration 60] [--interval-ms 200]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import Verdict, exit_with, header, verdicts
from procs import ROOT, SLOT_AGENT, EmulatorProcess, HubProcess

TERMINAL = "BENCH-FP"
TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")




def pss_mb(pid: int) -> float:
    """Proportional set size: shared pages split between the processes that map them."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no Pss")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants: the daemon and its line process (agent/line/process.py)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def sample(pids: list[int]) -> tuple[float, float, list[float]]:
    """(RSS sum, PSS sum, RSS per process) in MB."""
    rss = [rss_mb(p) for p in pids]
    return sum(rss), sum(pss_mb(p) for p in pids), rss


def baseline_rss() -> float:
    proc = subprocess.Popen([sys.executable, "-c", "import agent.daemon, cli.main, sys; "
                             "print('ok', flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdout.readline()
    value = rss_mb(proc.pid)
    proc.stdin.close()
    proc.wait(10)
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--interval-ms", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=10.0)
    args = parser.parse_args()
    header("footprint of slot-agent run (RSS, CPU)")
    print(f"# poll every {args.interval_ms} ms; {args.duration:.0f} s measured after "
          f"{args.warmup:.0f} s warm-up; hub connected; emulator autoplay over TCP")
    workdir = Path(tempfile.mkdtemp(prefix="fp-bench-", dir="/tmp"))
    hub = HubProcess(workdir, TERMINAL)
    emulator = EmulatorProcess(scenario="autoplay", games_per_minute=30, pty=False)
    config = workdir / "agent.yaml"
    config.write_text(
        f"terminal_id: {TERMINAL}\nserial:\n  port: {emulator.url}\n"
        "machines:\n  - address: 1\n"
        f"poll:\n  interval_ms: {args.interval_ms}\n"
        f"outbox:\n  path: {workdir / 'outbox.db'}\n"
        f"uplink:\n  url: {hub.url}\n  allow_insecure: true\n  token_file: {hub.token_file}\n"
        "metrics:\n  port: 0\nlogging:\n  level: warning\n  format: json\n"
        f"control_socket: {workdir / 'c.sock'}\n")
    agent = subprocess.Popen([SLOT_AGENT, "run", "--config", str(config)], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[tuple[float, float]] = []
    pss: list[float] = []
    per_process: list[list[float]] = []
    try:
        time.sleep(args.warmup)  # the warm-up period of the measurement
        if agent.poll() is not None:
            raise SystemExit(f"slot-agent run exited with {agent.returncode}")
        pids = tree(agent.pid)
        start = time.monotonic()
        cpu0 = sum(cpu_seconds(p) for p in pids)
        while time.monotonic() - start < args.duration:
            rss_sum, pss_sum, each = sample(pids)
            samples.append((time.monotonic() - start, rss_sum))
            pss.append(pss_sum)
            per_process.append(each)
            time.sleep(1.0)  # the sampling period
        cpu = (sum(cpu_seconds(p) for p in pids) - cpu0) / (time.monotonic() - start) * 100.0
    finally:
        agent.terminate()
        agent.wait(20)
        emulator.stop()
        hub.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    base = baseline_rss()
    rss = [r for _, r in samples]
    window = min(60.0, args.duration / 6)
    first = statistics.median([r for t, r in samples if t < window])
    last = statistics.median([r for t, r in samples if t >= args.duration - window])
    print(f"  processes {len(pids)} (the daemon and its line process); RSS each, median: "
          + ", ".join(f"{statistics.median(col):.1f} MB" for col in zip(*per_process, strict=True)))
    print(f"  RSS    max {max(rss):6.1f} MB  median {statistics.median(rss):6.1f} MB  "
          f"summed over the processes (baseline: idle interpreter with the daemon's "
          f"imports {base:.1f} MB; ratio {max(rss) / base:.2f})")
    print(f"  PSS    max {max(pss):6.1f} MB  median {statistics.median(pss):6.1f} MB  "
          "(shared pages counted once)")
    print(f"  RSS    first {window:.0f} s median {first:6.1f} MB, last {window:.0f} s median "
          f"{last:6.1f} MB: growth {last - first:+.2f} MB")
    print(f"  CPU    {cpu:.2f} % of one core")
    # Two processes: a sum of RSS counts the pages they share (the interpreter, libraries)
    # twice; the PSS sum is what the pair costs the machine.
    items = [Verdict("PSS max, both processes (MB)", max(pss), 50.0, at_least=False),
             Verdict("CPU (% of one core)", cpu, 1.0, at_least=False)]
    if args.duration >= 600:
        items.append(Verdict("RSS growth over the run (MB)", last - first, 1.0, at_least=False))
    else:
        print("  (growth is judged only with --duration 600 or more)")
    return verdicts(items)


if __name__ == "__main__":
    exit_with(main())
