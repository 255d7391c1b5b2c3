"""Floor load: many terminals publishing small bursts to one hub, viewers subscribed to all.

The hub is the product (``slot-agent hub``, its own process, a fresh database, a generated
token file with one token per terminal, ``synchronous: FULL`` by default). The load generator
is written from docs/protocol.md alone: each terminal is one WebSocket connection that
authenticates with its own token, says ``hello`` and sends ``betPlaced`` events in bursts of
``--burst`` at random phases, so that all terminals together send ``--rate`` events/s; it
keeps at most ``--window`` events unacknowledged (the agent's default window), as an agent
does. Viewers connect to ``/ws/client`` with their tokens and subscribe to everything.
Terminals run in ``--workers`` processes, viewers in one more, so the generator is not one
saturated event loop; both use bench/rawws.py, a minimal RFC 6455 client (a burst in one
write, acks read from ``data_received``, viewers counting event frames in the byte stream),
because the generator shares the 2 cores with the hub it measures.

Printed, per phase: events/s stored (acknowledged; checked against the database at the end),
ack latency p50 / p99 (from the send of an event to the ack covering it), errors (error
frames, unexpected closes, failed connections, events never acknowledged), events/s each
viewer received and viewers dropped, the hub's peak RSS, and the load average of the machine
(it is shared: figures move with it). Verdicts against the target: ``--terminals`` 3,000,
>= ``--rate`` 10,000 events/s for ``--duration`` 60 s, ack p99 <= 50 ms, zero errors,
RSS <= 500 MB, no viewer dropped.

``--ceiling`` runs 10 s phases at rising rates and reports the highest that met the latency
and error targets; ``--quick`` is a short smoke run (200 terminals, 2,000 events/s, 5 s).
``--py-spy FILE`` samples the hub with py-spy during the phases (collapsed stacks;
``--gil``: only while it holds the interpreter lock); ``--profile FILE`` runs it under
cProfile instead.
Run: ``.venv/bin/python bench/hub_load.py [--quick | --ceiling] [--help]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import random
import re
import resource
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import HelpDefaults, Verdict, beside_python, exit_with, header, percentile, verdicts
from prometheus_client.parser import text_string_to_metric_families
from rawws import CountingWs, RawWs

ROOT = Path(__file__).resolve().parents[1]
SLOT_AGENT = beside_python("slot-agent")

#: Seconds of quiet between phases, so one phase's backlog does not count in the next.
PHASE_GAP = 3.0

#: Seconds after the last phase for the last acks to arrive before events count as lost.
FINAL_WAIT = 15.0

#: Connections opened at once while the floor comes up.
CONNECT_CONCURRENCY = 100

EVENT = ('{"type":"event","id":"%s-%d","seq":%d,"channel":"game","terminalId":"%s",'
         '"event":"betPlaced","timestamp":"%s","data":{"amount":100,"credits":100,'
         '"denomination":1,"games":1,"gameNumber":%d,"meters":{"coinIn":[%d,%d]}}}')


@dataclass(frozen=True)
class Phase:
    rate: float  # events/s, all terminals together
    duration: float


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


# ----------------------------------------------------------------------------- the hub

def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process so far (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu(pid: int | None) -> dict[int, tuple[float, float]]:
    """Per thread of a process: (user, system) CPU seconds so far, by thread id."""
    out: dict[int, tuple[float, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                out[int(task.name)] = (int(fields[11]) / tick, int(fields[12]) / tick)
    return out


def _thread_split(pid: int, before: dict[int, tuple[float, float]],
                  after: dict[int, tuple[float, float]], events: int) -> str:
    """The CPU between two :func:`_thread_cpu` readings, per stored event: the event loop's
    thread (the process's first) and the others (the store's writer), user and system."""
    def delta(tids: list[int], i: int) -> float:
        return sum(after[t][i] - before.get(t, (0.0, 0.0))[i] for t in tids)
    others = [t for t in after if t != pid]
    per = 1e6 / max(events, 1)
    return (f"loop user {delta([pid], 0) * per:.0f} + sys {delta([pid], 1) * per:.0f} µs, "
            f"other threads user {delta(others, 0) * per:.0f} + sys "
            f"{delta(others, 1) * per:.0f} µs")


def _histogram(base: str, token: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts (``le`` -> count) of one of the hub's histograms, read from
    its ``GET /metrics`` (docs/operations.md, "The hub's metrics") with a viewer token."""
    request = urllib.request.Request(base.replace("ws://", "http://", 1) + "/metrics",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        text = reply.read().decode()
    return {float(sample.labels["le"]): sample.value
            for family in text_string_to_metric_families(text) if family.name == name
            for sample in family.samples if sample.name == f"{name}_bucket"}


def _hub_clock(before: dict[float, float], after: dict[float, float]) -> str:
    """The share of batches the hub acknowledged within 50 ms of their submission, and the
    bucket its p99 falls in: the hub's own view of the ack latency, without the generator's."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if not total:
        return "no batch acknowledged"
    within = dict(zip(bounds, counts, strict=True)).get(0.05, math.nan) / total
    p99 = next(b for b, c in zip(bounds, counts, strict=True) if c >= 0.99 * total)
    return (f"{total:,.0f} batches, {100 * within:.1f} % acknowledged within 50 ms of their "
            f"submission, p99 at most {1000 * p99:,.0f} ms")


class Hub:
    def __init__(self, workdir: Path, terminals: int, viewers: int, sync: str,
                 profile: Path | None = None, wrapper: list[str] | None = None) -> None:
        self.terminals = [(f"T{i:05d}", secrets.token_urlsafe(18)) for i in range(terminals)]
        self.viewers = [secrets.token_urlsafe(18) for _ in range(viewers)]
        lines = [f"{tok} terminal {tid}" for tid, tok in self.terminals]
        lines += [f"{tok} viewer viewer-{i}" for i, tok in enumerate(self.viewers)]
        tokens = workdir / "tokens"
        tokens.write_text("\n".join(lines) + "\n")
        tokens.chmod(0o600)
        self.db = workdir / "hub.db"
        config = workdir / "hub.yaml"
        config.write_text(json.dumps({
            "listen": {"host": "127.0.0.1", "port": 0}, "plain": True, "tokens": str(tokens),
            "database": str(self.db), "synchronous": sync}))
        command = [SLOT_AGENT, "hub", "--config", str(config), "--log-level", "WARNING"]
        if profile is not None:
            command[:1] = [sys.executable, "-m", "cProfile", "-o",
                           str(profile), "-m", "cli.main"]
        command[:0] = wrapper or []  # e.g. nice: a hub starved of CPU (bench/hub_stop.py)
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE, text=True, cwd=ROOT, preexec_fn=_raise_fd_limit)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r":(\d+)/?$", line.strip())
        if not match:
            raise SystemExit(f"the hub did not start: {line!r}")
        self.base = f"ws://127.0.0.1:{match.group(1)}"
        self.rss_peak = 0
        self._phase_peak = 0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def _sample(self) -> None:
        while self._sampling:
            rss = self.rss_mb()
            self.rss_peak = max(self.rss_peak, int(rss))
            self._phase_peak = max(self._phase_peak, int(rss))
            time.sleep(0.2)

    def cpu_seconds(self) -> float:
        """User + system CPU of the hub process so far (all its threads)."""
        return _cpu_seconds(self.proc.pid)

    def phase_peak(self) -> int:
        """Peak RSS (MB) since the last call."""
        peak, self._phase_peak = self._phase_peak, 0
        return peak

    def stop(self) -> float:
        """SIGTERM; the seconds until it exited."""
        self._sampling = False
        start = time.monotonic()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - start

    def stored(self) -> int:
        with sqlite3.connect(self.db) as db:
            return int(db.execute("SELECT count(*) FROM events WHERE source != 'hub'")
                       .fetchone()[0])


# ----------------------------------------------------------------------------- terminals

class _Terminal(RawWs):
    """One terminal: ``hello``, then bursts of events within its window (rawws.RawWs)."""

    ACK = b'{"type":"ack","upTo":'

    def __init__(self, host: str, port: int, path: str, token: str, tid: str,
                 stats: dict[str, Any]) -> None:
        super().__init__(host, port, path, token)
        self.tid = tid
        self.stats = stats
        self.seq = 0
        self.sent: deque[tuple[int, float, int]] = deque()  # seq, send time, phase
        self.acked = 0
        self.room = asyncio.Event()
        self.welcome: asyncio.Future[dict[str, Any]] = \
            asyncio.get_running_loop().create_future()

    async def hello(self) -> None:
        self.send_texts([json.dumps({"type": "hello", "protocol": 1, "terminalId": self.tid,
                                     "version": "load", "lastSeq": 0}).encode()])
        welcome = await asyncio.wait_for(self.welcome, 60)
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"{self.tid}: {welcome}")
        self.seq = self.acked = welcome["ackedSeq"]

    def frame(self, payload: bytes) -> None:
        up_to: int | None = None
        if payload.startswith(self.ACK) and payload.endswith(b"}"):
            with contextlib.suppress(ValueError):
                up_to = int(payload[len(self.ACK):-1])
        if up_to is None:
            msg = json.loads(payload)
            kind = msg.get("type")
            if kind == "ack" and isinstance(msg.get("upTo"), int):
                up_to = msg["upTo"]
            elif kind == "welcome" and not self.welcome.done():
                self.welcome.set_result(msg)
                return
            elif kind == "error":
                self.stats["errors"].append(f"{self.tid}: error {msg.get('code')}")
                return
            else:
                return
        assert up_to is not None
        now = time.time()
        lat = self.stats["latency"]
        acked = self.stats["acked"]
        sent = self.sent
        while sent and sent[0][0] <= up_to:
            _, t, phase = sent.popleft()
            lat[phase].append(now - t)
            acked[phase] += 1
        self.acked = up_to
        self.room.set()

    def lost(self) -> None:
        if not self.stats["finishing"]:
            self.stats["errors"].append(f"{self.tid}: closed {self.close_code}")
        if not self.welcome.done():
            self.welcome.set_exception(ConnectionError(f"closed {self.close_code}"))
        self.room.set()

    async def send_bursts(self, phases: list[Phase], start_at: float, n_terminals: int,
                          burst: int, window: int) -> None:
        t0 = start_at
        for index, phase in enumerate(phases):
            interval = burst * n_terminals / phase.rate
            t = t0 + random.uniform(0, interval)
            end = t0 + phase.duration
            while t < end:
                delay = t - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                while self.seq - self.acked + burst > window and not self.closed.done():
                    self.room.clear()
                    await self.room.wait()
                if self.closed.done():
                    return
                now = time.time()
                stamp = _stamp(now)
                texts = []
                for _ in range(burst):
                    self.seq += 1
                    s = self.seq
                    texts.append((EVENT % (self.tid, s, s, self.tid, stamp, s, 100 * s,
                                           100 * s + 100)).encode())
                    self.sent.append((s, now, index))
                self.send_texts(texts)  # the burst in one write
                self.stats["sent"][index] += burst
                t += interval
            t0 = end + PHASE_GAP


def _host_port(base: str) -> tuple[str, int]:
    host, port = base.rsplit("://", 1)[1].rsplit(":", 1)
    return host, int(port)


async def connect_terminals(base: str, creds: list[tuple[str, str]],
                            stats: dict[str, Any]) -> list[_Terminal]:
    """Connect and ``hello`` every terminal, ``CONNECT_CONCURRENCY`` at a time; a failure is
    counted in ``stats["errors"]``. Returns the terminals that are up."""
    host, port = _host_port(base)
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    live: list[_Terminal] = []

    async def up(tid: str, token: str) -> None:
        async with gate:
            try:
                term = await _Terminal.connect(host, port, "/ws/terminal", token, tid, stats)
                assert isinstance(term, _Terminal)
                await term.hello()
                live.append(term)
            except Exception as exc:
                stats["errors"].append(f"{tid}: connect failed: {exc!r}"[:200])

    await asyncio.gather(*(up(tid, tok) for tid, tok in creds))
    return live


async def _terminals_main(base: str, creds: list[tuple[str, str]], phases: list[Phase],
                          n_terminals: int, burst: int, window: int, ready: Any, go: Any,
                          start_at: Any, out: Any) -> None:
    stats: dict[str, Any] = {
        "latency": [array("d") for _ in phases], "acked": [0] * len(phases),
        "sent": [0] * len(phases), "errors": [], "finishing": False}
    live = await connect_terminals(base, creds, stats)
    ready.put(len(live))
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    await asyncio.gather(*(t.send_bursts(phases, start_at.value, n_terminals, burst, window)
                           for t in live), return_exceptions=True)
    deadline = time.time() + FINAL_WAIT
    while time.time() < deadline and any(t.sent and not t.closed.done() for t in live):
        await asyncio.sleep(0.1)
    lost = sum(len(t.sent) for t in live)
    if lost:
        stats["errors"].append(f"{lost} events never acknowledged")
    stats["finishing"] = True
    for t in live:
        t.close()
    out.put({"latency": [a.tobytes() for a in stats["latency"]], "acked": stats["acked"],
             "sent": stats["sent"], "errors": stats["errors"]})


def _terminals_process(*args: Any) -> None:
    _raise_fd_limit()
    asyncio.run(_terminals_main(*args))


# ----------------------------------------------------------------------------- viewers

async def _viewers_main(base: str, tokens: list[str], phases: list[Phase], ready: Any,
                        go: Any, start_at: Any, out: Any) -> None:
    counts = [[0] * len(phases) for _ in tokens]
    dropped: list[str] = []
    finishing = False
    bounds: list[tuple[float, float]] = []
    host, port = _host_port(base)

    def counter(i: int) -> Callable[[int], None]:
        row = counts[i]

        def on_events(n: int) -> None:
            if bounds:
                now = time.time()
                for p, (lo, hi) in enumerate(bounds):
                    if lo <= now < hi:
                        row[p] += n
        return on_events

    conns: list[CountingWs] = []
    for i, token in enumerate(tokens):
        ws = await CountingWs.connect(host, port, "/ws/client", token, counter(i))
        assert isinstance(ws, CountingWs)
        ws.send_texts([b'{"type":"subscribe"}'])
        conns.append(ws)
    ready.put(len(conns))
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    t0 = start_at.value
    for phase in phases:
        bounds.append((t0, t0 + phase.duration + 1.0))  # events of the phase still arriving
        t0 += phase.duration + PHASE_GAP
    await asyncio.sleep(max(0.0, t0 - time.time()) + 2.0)
    for i, ws in enumerate(conns):
        if ws.closed.done():
            dropped.append(f"viewer-{i}: closed {ws.close_code}")
    finishing = True
    assert finishing
    for ws in conns:
        ws.close()
    out.put({"counts": counts, "dropped": dropped})


def _viewers_process(*args: Any) -> None:
    _raise_fd_limit()
    asyncio.run(_viewers_main(*args))


# ----------------------------------------------------------------------------- the run

@dataclass
class PhaseResult:
    rate: float
    duration: float
    stored_per_s: float
    p50_ms: float
    p99_ms: float
    sent: int
    viewer_rate: float  # events/s per viewer (median viewer)
    rss_mb: int
    hub_cpu: float  # the hub's CPU during the phase, in cores (1.0 = one core busy)
    generator_cpu: float  # the load generator's processes together, in cores
    load: float  # the machine's 1-minute load average at the phase's end


def run(args: argparse.Namespace, phases: list[Phase]) -> tuple[list[PhaseResult], list[str],
                                                                 int, int, float, int]:
    workdir = Path(tempfile.mkdtemp(prefix="hub-load-"))
    try:
        hub = Hub(workdir, args.terminals, args.viewers, args.sync, args.profile,
                  wrapper=["nice", "-n", str(args.nice)] if args.nice else None)
        ctx = mp.get_context("spawn")
        ready, out, go, start_at = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
        slices = [hub.terminals[i::args.workers] for i in range(args.workers)]
        procs = [ctx.Process(target=_terminals_process, args=(
            hub.base, s, phases, args.terminals, args.burst, args.window, ready, go,
            start_at, out)) for s in slices if s]
        if args.viewers:
            procs.append(ctx.Process(target=_viewers_process, args=(
                hub.base, hub.viewers, phases, ready, go, start_at, out)))
        for p in procs:
            p.start()
        connected = sum(ready.get(timeout=600) for _ in procs)
        print(f"# {connected} connections up; hub RSS {hub.rss_mb():.0f} MB; "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        hub.phase_peak()
        spy: subprocess.Popen[bytes] | None = None
        if args.py_spy is not None:
            # Sampled from outside (all threads, native frames off): the hub runs at full
            # speed, unlike under cProfile. Collapsed stacks, one line each, for grep/sort.
            spy = subprocess.Popen([
                beside_python("py-spy", on_path=True), "record", "--pid", str(hub.proc.pid),
                "--rate", "100", "--nonblocking", "--format", "raw", "--output",
                str(args.py_spy), "--duration", str(int(sum(p.duration for p in phases)) + 1),
                *(["--gil"] if args.gil else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start_at.value = time.time() + 1.0
        go.set()
        rss: list[int] = []
        cpu: list[float] = []
        gen: list[float] = []
        loads: list[float] = []
        t0 = start_at.value
        time.sleep(max(0.0, t0 - time.time()))
        cpu_start = hub.cpu_seconds()
        threads_start = _thread_cpu(hub.proc.pid)
        clock: list[str] = []
        for phase in phases:
            time.sleep(max(0.0, t0 - time.time()))
            acks0 = _histogram(hub.base, hub.viewers[0], "slot_hub_ack_latency_seconds") \
                if hub.viewers else {}
            cpu0 = hub.cpu_seconds()
            gen0 = sum(_cpu_seconds(p.pid) for p in procs)
            time.sleep(max(0.0, t0 + phase.duration - time.time()))
            cpu.append((hub.cpu_seconds() - cpu0) / phase.duration)
            gen.append((sum(_cpu_seconds(p.pid) for p in procs) - gen0) / phase.duration)
            rss.append(hub.phase_peak())
            loads.append(os.getloadavg()[0])
            if hub.viewers:
                # Read at the phase's end: the terminals leave soon after it, and the hub's
                # deviceOffline events (3,000 batches at once) are no part of the phase.
                clock.append(_hub_clock(acks0, _histogram(
                    hub.base, hub.viewers[0], "slot_hub_ack_latency_seconds")))
            t0 += phase.duration + PHASE_GAP
            time.sleep(PHASE_GAP)
        if spy is not None:
            spy.wait(60)
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(30)
        # Also what was done after the phases (a backlog acknowledged late, viewers served
        # late): the CPU of the whole run per stored event compares runs that fell behind.
        run_cpu = hub.cpu_seconds() - cpu_start
        threads_end = _thread_cpu(hub.proc.pid)
        stop_s = hub.stop()
        stored = hub.stored()
        lat = [array("d") for _ in phases]
        acked = [0] * len(phases)
        sent = [0] * len(phases)
        errors: list[str] = []
        viewer_counts: list[list[int]] = []
        for r in results:
            if "counts" in r:
                viewer_counts = r["counts"]
                errors += r["dropped"]
                continue
            for i in range(len(phases)):
                a = array("d")
                a.frombytes(r["latency"][i])
                lat[i].extend(a)
                acked[i] += r["acked"][i]
                sent[i] += r["sent"][i]
            errors += r["errors"]
        out_phases = []
        for i, phase in enumerate(phases):
            ms = [x * 1000 for x in lat[i]]
            per_viewer = sorted(c[i] / phase.duration for c in viewer_counts)
            out_phases.append(PhaseResult(
                phase.rate, phase.duration, acked[i] / phase.duration, percentile(ms, 50),
                percentile(ms, 99), sent[i],
                per_viewer[len(per_viewer) // 2] if per_viewer else math.nan, rss[i], cpu[i],
                gen[i], loads[i]))
        print(f"# hub CPU over the whole run (phases and the drain after them): {run_cpu:.1f} s"
              f", {1e6 * run_cpu / max(stored, 1):.0f} µs per stored event ("
              f"{_thread_split(hub.proc.pid, threads_start, threads_end, stored)})",
              flush=True)
        for phase, line in zip(phases, clock, strict=False):
            print(f"# the hub's own clock at {phase.rate:,.0f} events/s (GET /metrics, a batch"
                  f" from its submission to its ack): {line}", flush=True)
        return out_phases, errors, stored, sum(sent), stop_s, hub.rss_peak
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    parser.add_argument("--terminals", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=10_000, help="events/s, all terminals")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--burst", type=int, default=5, help="events per burst")
    parser.add_argument("--window", type=int, default=2000, help="unacknowledged per terminal")
    parser.add_argument("--workers", type=int, default=2, help="terminal processes")
    parser.add_argument("--sync", choices=["FULL", "NORMAL"], default="FULL")
    parser.add_argument("--nice", type=int, default=0,
                        help="the hub's nice value relative to the generator's (below 0 "
                             "needs root or CAP_SYS_NICE): a hub with a priority over the "
                             "rest of its machine, as a unit's Nice= gives it")
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--profile", type=Path, help="run the hub under cProfile, stats here")
    parser.add_argument("--py-spy", type=Path,
                        help="sample the hub with py-spy (pip install py-spy) during the "
                             "phases; collapsed stacks here")
    parser.add_argument("--gil", action="store_true",
                        help="with --py-spy: only the thread holding the interpreter lock")
    parser.add_argument("--ceiling", action="store_true",
                        help="10 s phases at rising rates up to --rate")
    args = parser.parse_args()
    if args.quick:
        args.terminals, args.rate, args.duration = min(args.terminals, 200), 2000.0, 5.0
        args.viewers = min(args.viewers, 2)
        args.workers = 1
    if args.ceiling:
        steps = [r for r in (2500, 5000, 7500, 10_000, 12_500, 15_000, 20_000, 25_000,
                             30_000) if r <= args.rate]
        phases = [Phase(r, 10.0) for r in steps]
    else:
        phases = [Phase(args.rate, args.duration)]

    header("hub under floor load (many terminals, small bursts, viewers subscribed to all)")
    print(f"# {args.terminals:,} terminals in {args.workers} processes, bursts of "
          f"{args.burst}, window {args.window}; {args.viewers} viewers; hub nice {args.nice}, "
          f"synchronous="
          f"{args.sync}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
          flush=True)
    results, errors, stored, sent, stop_s, rss_peak = run(args, phases)
    print(f"{'rate':>8} {'stored/s':>9} {'ack p50':>8} {'ack p99':>8} {'viewer/s':>9} "
          f"{'RSS MB':>7} {'hub CPU':>8} {'µs/event':>9} {'gen CPU':>8} {'load':>5}")
    for r in results:
        print(f"{r.rate:8,.0f} {r.stored_per_s:9,.0f} {r.p50_ms:6.1f}ms {r.p99_ms:6.1f}ms "
              f"{r.viewer_rate:9,.0f} {r.rss_mb:7d} {r.hub_cpu:7.2f}c "
              f"{1e6 * r.hub_cpu / max(r.stored_per_s, 1):9,.0f} {r.generator_cpu:7.2f}c "
              f"{r.load:5.2f}")
    print(f"# events sent {sent:,}, stored (in the database) {stored:,}; errors {len(errors)}"
          f"; hub RSS peak {rss_peak} MB; SIGTERM -> exit {stop_s:.1f} s; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for e in errors[:10]:
        print(f"  error: {e}")

    def ok(r: PhaseResult) -> bool:
        return r.stored_per_s >= 0.98 * r.rate and r.p99_ms <= 50

    if args.ceiling:
        passing = [r.rate for r in results if ok(r)]
        ceiling = max(passing) if passing else 0.0
        print(f"ceiling: {ceiling:,.0f} events/s with ack p99 <= 50 ms "
              f"({args.terminals:,} terminals, {args.viewers} viewers)")
        return verdicts([Verdict("ceiling events/s", ceiling, 10_000, at_least=True),
                         Verdict("errors", len(errors), 0, at_least=False)])
    r = results[0]
    checks = [
        Verdict("stored events/s (of the offered rate)", r.stored_per_s, 0.98 * args.rate,
                at_least=True),
        Verdict("ack p99 ms", r.p99_ms, 50, at_least=False),
        Verdict("errors (incl. dropped viewers, lost events)", len(errors), 0,
                at_least=False),
        Verdict("events stored = events sent", float(stored == sent), 1, at_least=True),
        Verdict("hub RSS MB", rss_peak, 500, at_least=False),
        Verdict("seconds from SIGTERM to exit", stop_s, 5, at_least=False),
    ]
    if args.viewers:
        checks.append(Verdict("events/s per viewer (of stored)", r.viewer_rate,
                              0.98 * r.stored_per_s, at_least=True))
    if not args.quick:
        checks.append(Verdict("offered rate events/s", args.rate, 10_000, at_least=True))
        checks.append(Verdict("terminals", args.terminals, 3000, at_least=True))
    return verdicts(checks)


if __name__ == "__main__":
    exit_with(main())
