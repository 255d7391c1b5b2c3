"""Processes the benchmarks run beside the agent: the reference hub and the emulator, each in
its own process as on a real floor (the hub on a server, the machine a separate device);
a transport wrapper that timestamps the general polls the line owner writes, in this
process or in the line process (:class:`TimedFactory`); and the latency benchmarks' floor
(:func:`agent_floor`: the hub and ``slot-agent run`` polling a machine on a pty;
:func:`pty_floor`: the same with the machine emulated in this process; :func:`dashboard`,
a subscriber as the dashboard connects)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import secrets
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import beside_python
from websockets.asyncio.client import connect

from api import wire
from drivers.base import Transport, Word
from drivers.pseudo_tty import open_pty
from emulator.model import Machine, MachineConfig
from emulator.server import Emulator

ROOT = Path(__file__).resolve().parents[1]


SLOT_AGENT = beside_python("slot-agent")


class HubProcess:
    """``slot-agent hub`` on port 0 with one terminal token and one operator token."""

    def __init__(self, workdir: Path, terminal_id: str, *, sync: str = "NORMAL",
                 nice: int = 0) -> None:
        self.token = secrets.token_urlsafe(18)
        self.operator_token = secrets.token_urlsafe(18)
        tokens = workdir / "hub-tokens"
        tokens.write_text(f"{self.token} terminal {terminal_id}\n"
                          f"{self.operator_token} operator bench\n")
        tokens.chmod(0o600)
        self.token_file = workdir / "terminal-token"
        self.token_file.write_text(self.token + "\n")
        self.token_file.chmod(0o600)
        config = workdir / "hub.yaml"
        config.write_text(json.dumps({
            "listen": {"host": "127.0.0.1", "port": 0}, "plain": True, "tokens": str(tokens),
            "database": str(workdir / "hub.db"), "synchronous": sync}))
        prefix = ["nice", "-n", str(nice)] if nice else []
        self.proc = subprocess.Popen([*prefix, SLOT_AGENT, "hub", "--config", str(config),
                                      "--log-level", "WARNING"],
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r":(\d+)/?$", line.strip())
        if not match:
            raise SystemExit(f"the hub did not start: {line!r}")
        self.port = int(match.group(1))
        self.url = f"ws://127.0.0.1:{self.port}/ws/terminal"
        self.client_url = f"ws://127.0.0.1:{self.port}/ws/client"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


class EmulatorProcess:
    """``slot-agent emulate`` over a pty (``pty=True``) or TCP; ``url`` is for the agent.
    ``nice`` below 0 (root only) keeps a busy bench machine from starving the emulated
    machine, which a real one, a separate device, never is; ``rt_priority`` above 0 runs it
    SCHED_RR at that priority (``chrt``; root, or an RLIMIT_RTPRIO that allows it), which
    keeps it answering in time even beside processes of other sessions."""

    def __init__(self, *, scenario: str = "autoplay", games_per_minute: int = 30,
                 pty: bool = True, seed: int = 1, nice: int = 0, rt_priority: int = 0) -> None:
        where = ["--pty"] if pty else ["--tcp", "127.0.0.1:0"]
        prefix = ["nice", "-n", str(nice)] if nice else []
        if rt_priority:
            prefix = ["chrt", "--rr", str(rt_priority), *prefix]
        self.proc = subprocess.Popen(
            [*prefix, SLOT_AGENT, "emulate", *where, "--scenario", scenario, "--seed", str(seed),
             "--games-per-minute", str(games_per_minute)],
            stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        if not first:
            raise SystemExit("the emulator did not start")
        self.url = f"pty:{first}" if pty else f"tcp://{first}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


_STAMP = struct.Struct("<d")


class PassThrough(Transport):
    """Passes every call to ``inner``; the benchmarks' taps on a line build on it."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.name = inner.name
        self._last: Word | None = None

    def write(self, frame: bytes, *, wakeup: bool) -> None:
        self.inner.write(frame, wakeup=wakeup)

    def read(self, deadline: float, max_words: int = 512) -> list[Word]:
        return self.inner.read(deadline, max_words)

    def discard_input(self) -> None:
        self.inner.discard_input()

    def close(self) -> None:
        self.inner.close()

    def commands_read(self, words: list[Word]) -> list[int]:
        """The command byte of every long poll that begins in ``words`` as read by the
        machine's end, in order: an address word (wakeup bit) then a plain word, also when
        the two came in two reads (call it once for each read, in order)."""
        seen = ([self._last] if self._last is not None else []) + words
        if words:
            self._last = words[-1]
        return [b.value for a, b in itertools.pairwise(seen) if a.wakeup and not b.wakeup]


class TimedTransport(PassThrough):
    """Delegates to ``inner``; records ``time.monotonic()`` of every general poll written to
    ``address`` (a one-byte frame ``0x80 | address`` with the wakeup bit), in
    ``general_polls`` and, with ``log_path``, appended to that file (8 bytes each; the
    monotonic clock is the same in every process of the machine)."""

    def __init__(self, inner: Transport, address: int = 1, *,
                 log_path: str | None = None) -> None:
        super().__init__(inner)
        self._poll = bytes((0x80 | address,))
        self.general_polls: list[float] = []
        self._log_fd = (os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                        if log_path is not None else None)

    def write(self, frame: bytes, *, wakeup: bool) -> None:
        if wakeup and frame == self._poll:
            at = time.monotonic()
            self.general_polls.append(at)
            if self._log_fd is not None:
                os.write(self._log_fd, _STAMP.pack(at))
        self.inner.write(frame, wakeup=wakeup)

    def close(self) -> None:
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None
        self.inner.close()


@dataclass(frozen=True)
class TimedFactory:
    """A picklable transport factory for the daemon or the line process: the configured line
    (``agent.line.process.open_line``) wrapped in a :class:`TimedTransport` logging to
    ``log_path``; :func:`read_poll_log` reads the times back."""

    log_path: str
    address: int = 1

    def __call__(self, config: Any) -> Transport:
        from agent.line.process import open_line

        return TimedTransport(open_line(config), self.address, log_path=self.log_path)


def read_poll_log(path: str | Path) -> list[float]:
    """The general-poll times a :class:`TimedTransport` logged so far."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    usable = len(data) - len(data) % _STAMP.size
    return [t for (t,) in _STAMP.iter_unpack(data[:usable])]


_SLEEPER = """
import os, struct, sys, time
path, interval, mode, ahead, rt = (sys.argv[1], float(sys.argv[2]), sys.argv[3],
                                   int(sys.argv[4]), int(sys.argv[5]))
try:
    if mode == "realtime":
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(rt))
    elif mode == "nice":
        os.setpriority(os.PRIO_PROCESS, 0, max(-20, os.getpriority(os.PRIO_PROCESS, 0) - ahead))
except OSError:
    pass
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
due = time.monotonic()
while True:
    due += interval
    time.sleep(max(0.0, due - time.monotonic()))
    now = time.monotonic()
    os.write(fd, struct.pack("<d", now))
    if now > due + interval:
        due += (now - due) // interval * interval
"""


class GridSleeper:
    """The noise floor of a busy bench machine: a bare Python process that only wakes on a
    fixed grid (absolute deadlines, like the line owner's cycles) and logs each wake-up as a
    :class:`TimedTransport` logs polls (:func:`read_poll_log`). Started like the line process
    (a session of its own, at the scheduling ``priority`` the line process got: ``realtime``
    SCHED_RR at ``rt_priority``, ``nice`` ``nice_ahead`` levels ahead, or ``normal``), it shows
    what the operating system alone adds to a sleeper's timing in the same moment."""

    def __init__(self, log_path: str, interval_s: float, *, priority: str = "normal",
                 nice_ahead: int = 0, rt_priority: int = 10) -> None:
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SLEEPER, log_path, str(interval_s), priority,
             str(nice_ahead), str(rt_priority)],
            start_new_session=True)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def agent_config(workdir: Path, serial: str, hub: HubProcess, interval_ms: int, *,
                 terminal_id: str, priority: str = "nice") -> Path:
    """The agent's config for a latency bench: one machine on ``serial``, streaming to
    ``hub``, quiet logs, no metrics port."""
    path = workdir / "agent.yaml"
    path.write_text(
        f"terminal_id: {terminal_id}\n"
        f"serial:\n  port: {serial}\n"
        "machines:\n  - address: 1\n"
        f"poll:\n  interval_ms: {interval_ms}\n  reply_timeout_ms: 30\n"
        f"  line_priority: {priority}\n"
        f"outbox:\n  path: {workdir / 'outbox.db'}\n"
        f"uplink:\n  url: {hub.url}\n  allow_insecure: true\n  token_file: {hub.token_file}\n"
        "metrics:\n  enabled: false\n"
        "logging:\n  level: warning\n  format: json\n"
        f"control_socket: {workdir / 'c.sock'}\n")
    return path


@dataclass
class AgentFloor:
    """``slot-agent run`` (its line process beside it) polling one machine, and the hub."""

    hub: HubProcess
    agent: subprocess.Popen[bytes]


@contextlib.asynccontextmanager
async def agent_floor(workdir: Path, terminal_id: str, serial: str, interval_ms: int, *,
                      priority: str, nice: int = 0) -> AsyncIterator[AgentFloor]:
    """The hub and ``slot-agent run`` in their own processes, the agent polling the machine
    at ``serial`` (``pty:PATH`` or ``tcp://HOST:PORT``) at ``interval_ms`` with
    ``poll.line_priority`` ``priority``; ``nice`` (below 0: root) runs both the hub and the
    agent's daemon at that nice value (the line process takes its own lead from there).
    ``BENCH_AGENT_LOG=path`` keeps the agent's log (warnings and above) for a post-mortem."""
    hub = HubProcess(workdir, terminal_id, nice=nice)
    config = agent_config(workdir, serial, hub, interval_ms, terminal_id=terminal_id,
                          priority=priority)
    log_path = os.environ.get("BENCH_AGENT_LOG")
    stderr = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    prefix = ["nice", "-n", str(nice)] if nice else []
    agent = subprocess.Popen([*prefix, SLOT_AGENT, "run", "--config", str(config)], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        yield AgentFloor(hub, agent)
    finally:
        agent.terminate()
        agent.wait(20)
        if stderr is not subprocess.DEVNULL:
            stderr.close()
        hub.stop()


@dataclass
class Floor:
    """One machine emulated in this process (``machine``, served by ``emulator``: act on the
    model under ``emulator.lock``), ``slot-agent run`` polling it, and the hub."""

    hub: HubProcess
    machine: Machine
    emulator: Emulator
    agent: subprocess.Popen[bytes]


@contextlib.asynccontextmanager
async def pty_floor(workdir: Path, terminal_id: str, interval_ms: int, *, priority: str,
                    wrap: Callable[[Transport], Transport] | None = None,
                    machine_ahead: int = 0) -> AsyncIterator[Floor]:
    """The money benchmark's floor: :func:`agent_floor` polling a machine (1-cent
    denomination) served over a pty in this process, so one monotonic clock times the model
    and the subscriber. ``wrap`` wraps the machine's end of the line (to timestamp what
    reaches the machine). ``machine_ahead`` lowers the nice value of the machine's thread
    (only) by that much where allowed: a real machine has its own CPU and answers within
    20 ms (reference §3.6); one starved by the bench's own load answers after the host gave
    up. The thread still shares this process's interpreter lock with the subscriber: the
    door benchmark runs its machine in a process of its own (bench/door_machine.py)."""
    master, slave = open_pty()
    machine = Machine(MachineConfig(denomination_cents=1), now=time.monotonic())
    emulator = Emulator(machine, wrap(master) if wrap is not None else master, address=1)
    own_nice = os.getpriority(os.PRIO_PROCESS, 0)
    # Linux: the nice value is per thread and a new thread inherits its creator's
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, own_nice - machine_ahead)
    try:
        emulator.start()
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, own_nice)
    try:
        async with agent_floor(workdir, terminal_id, f"pty:{slave}", interval_ms,
                               priority=priority) as floor:
            yield Floor(floor.hub, machine, emulator, floor.agent)
    finally:
        emulator.stop()
        master.close()


#: ``on_event(frame, monotonic, wall)``: an ``event`` frame and when the subscriber had it.
EventSink = Callable[[dict[str, Any], float, float], None]


@contextlib.asynccontextmanager
async def dashboard(hub: HubProcess, terminal_id: str, on_event: EventSink,
                    ready_timeout: float = 60.0) -> AsyncIterator[None]:
    """Subscribe to ``terminal_id`` on ``/ws/client`` as the dashboard does and hand every
    ``event`` frame to ``on_event``; entered once the first ``meterSnapshot`` came (discovery
    finished: the agent polls steadily from then on)."""
    ready = asyncio.Event()
    async with connect(hub.client_url, additional_headers={
            "Authorization": f"Bearer {hub.operator_token}"}) as ws:
        await ws.send(wire.encode(wire.subscribe(terminals=[terminal_id])))

        async def reader() -> None:
            async for text in ws:
                mono, now = time.monotonic(), time.time()
                msg = json.loads(text)
                if msg.get("type") != "event":
                    continue
                if msg["event"] == "meterSnapshot":
                    ready.set()
                on_event(msg, mono, now)

        task = asyncio.create_task(reader())
        try:
            await asyncio.wait_for(ready.wait(), ready_timeout)
            yield
        finally:
            task.cancel()
