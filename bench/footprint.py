"""Footprint: RSS and CPU of ``slot-agent run`` polling at 200 ms with a connected hub.

The agent is two processes, the daemon and its line process (agent/line/process.py): RSS
and CPU are summed over both, and PSS (shared pages split between them) is printed beside.

The agent polls ``slot-agent emulate`` (autoplay, 30 games a minute, over TCP) and streams to
the reference hub; each runs in its own process. After a warm-up, the agent's RSS
(``/proc/PID/status`` VmRSS) is sampled every second and its CPU time (``/proc/PID/stat``
utime + stime) is read at both ends of the window. The baseline, measured in the same run:
an idle Python interpreter that imported the same modules (``agent.daemon``), i.e. what the
interpreter and the libraries cost before the agent does anything.

Targets: PSS <= 50 MB, CPU <= 1 % of one core; for a run of 10 minutes or more
(``--duration 600``; an hour: ``--duration 3600``) growth <= 1 MB per hour: the slope of a
least-squares line through the RSS samples (and, beside it, through the PSS samples),
extrapolated to an hour, and the median of the last tenth of the run against the first
tenth's (the run's duration is printed with it: a slope from ten minutes says less than one
from an hour). ``--samples FILE`` writes every sample (seconds, RSS, PSS) for a plot.
Run: ``python bench/footprint.py [--duration 60] [--interval-ms 200]`` with the Python of
the environment where slot-agent is installed. The agent runs with the ``Environment=`` of
the shipped unit (systemd/slot-agent.service), as it runs on a terminal.
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

from benchlib import HelpDefaults, Verdict, exit_with, header, verdicts
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


def unit_environment() -> dict[str, str]:
    """The ``Environment=`` settings of the shipped unit (systemd/slot-agent.service): the
    agent is measured as the unit runs it (``MALLOC_ARENA_MAX`` changes its footprint)."""
    env: dict[str, str] = {}
    for line in (ROOT / "systemd" / "slot-agent.service").read_text().splitlines():
        if line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            env[key] = value
    return env


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, MB) points, in MB per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mt) * (v - mv) for t, v in points) / var * 3600.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--interval-ms", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--games-per-minute", type=int, default=30,
                        help="the emulator's autoplay rate (raise it, with --interval-ms 40, "
                             "to age the agent faster when hunting growth)")
    parser.add_argument("--samples", type=Path, default=None,
                        help="write every sample (seconds, RSS MB, PSS MB) to this file")
    args = parser.parse_args()
    header("footprint of slot-agent run (RSS, CPU)")
    print(f"# poll every {args.interval_ms} ms; {args.duration:.0f} s measured after "
          f"{args.warmup:.0f} s warm-up; hub connected; emulator autoplay over TCP")
    workdir = Path(tempfile.mkdtemp(prefix="fp-bench-", dir="/tmp"))
    hub = HubProcess(workdir, TERMINAL)
    emulator = EmulatorProcess(scenario="autoplay", games_per_minute=args.games_per_minute,
                               pty=False)
    config = workdir / "agent.yaml"
    config.write_text(
        f"terminal_id: {TERMINAL}\nserial:\n  port: {emulator.url}\n"
        "machines:\n  - address: 1\n"
        f"poll:\n  interval_ms: {args.interval_ms}\n"
        f"  reply_timeout_ms: {min(50, args.interval_ms // 2)}\n"
        f"outbox:\n  path: {workdir / 'outbox.db'}\n"
        f"uplink:\n  url: {hub.url}\n  allow_insecure: true\n  token_file: {hub.token_file}\n"
        "metrics:\n  port: 0\nlogging:\n  level: warning\n  format: json\n"
        f"control_socket: {workdir / 'c.sock'}\n")
    unit_env = unit_environment()
    print("# the unit's environment: " + " ".join(f"{k}={v}" for k, v in unit_env.items()))
    agent = subprocess.Popen([SLOT_AGENT, "run", "--config", str(config)], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, **unit_env})
    samples: list[tuple[float, float]] = []
    pss: list[float] = []
    per_process: list[list[float]] = []
    try:
        time.sleep(args.warmup)  # the warm-up period of the measurement
        if agent.poll() is not None:
            raise SystemExit(f"slot-agent run exited with {agent.returncode}")
        pids = tree(agent.pid)
        start = time.monotonic()
        cpu0 = [cpu_seconds(p) for p in pids]
        while time.monotonic() - start < args.duration:
            rss_sum, pss_sum, each = sample(pids)
            samples.append((time.monotonic() - start, rss_sum))
            pss.append(pss_sum)
            if args.samples is not None:
                with args.samples.open("a") as out:
                    out.write(f"{samples[-1][0]:.1f} {rss_sum:.3f} {pss_sum:.3f}\n")
            per_process.append(each)
            time.sleep(1.0)  # the sampling period
        elapsed = time.monotonic() - start
        cpu_each = [(cpu_seconds(p) - c0) / elapsed * 100.0 for p, c0 in zip(pids, cpu0,
                                                                          strict=True)]
        cpu = sum(cpu_each)
    finally:
        agent.terminate()
        agent.wait(20)
        emulator.stop()
        hub.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    base = baseline_rss()
    rss = [r for _, r in samples]
    window = args.duration / 10
    first = statistics.median([r for t, r in samples if t < window])
    last = statistics.median([r for t, r in samples if t >= args.duration - window])
    rss_slope = slope_per_hour(samples)
    pss_slope = slope_per_hour([(t, p) for (t, _), p in zip(samples, pss, strict=True)])
    print(f"  processes {len(pids)} (the daemon and its line process); RSS each, median: "
          + ", ".join(f"{statistics.median(col):.1f} MB" for col in zip(*per_process, strict=True)))
    print(f"  RSS    max {max(rss):6.1f} MB  median {statistics.median(rss):6.1f} MB  "
          f"summed over the processes (baseline: idle interpreter with the daemon's "
          f"imports {base:.1f} MB; ratio {max(rss) / base:.2f})")
    print(f"  PSS    max {max(pss):6.1f} MB  median {statistics.median(pss):6.1f} MB  "
          "(shared pages counted once)")
    print(f"  RSS    first {window:.0f} s median {first:6.1f} MB, last {window:.0f} s median "
          f"{last:6.1f} MB: growth {last - first:+.2f} MB")
    late = slope_per_hour([(t, r) for t, r in samples if t >= args.duration / 2])
    print(f"  growth over {args.duration / 60:.1f} min, least-squares slope extrapolated to an "
          f"hour: RSS {rss_slope:+.2f} MB/h, PSS {pss_slope:+.2f} MB/h; RSS over the second "
          f"half only (past any warm-up plateau) {late:+.2f} MB/h")
    print(f"  CPU    {cpu:.2f} % of one core (each: "
          + ", ".join(f"{c:.2f} %" for c in cpu_each) + ")")
    # Two processes: a sum of RSS counts the pages they share (the interpreter, libraries)
    # twice; the PSS sum is what the pair costs the machine.
    items = [Verdict("PSS max, both processes (MB)", max(pss), 50.0, at_least=False),
             Verdict("CPU (% of one core)", cpu, 1.0, at_least=False)]
    if args.duration >= 600:
        items.append(Verdict(f"RSS growth, slope over {args.duration / 60:.1f} min (MB/h)",
                             rss_slope, 1.0, at_least=False))
    else:
        print("  (growth is judged only with --duration 600 or more)")
    return verdicts(items)


if __name__ == "__main__":
    exit_with(main())
