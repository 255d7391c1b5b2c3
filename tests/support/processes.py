"""The real ``slot-agent`` as a subprocess for tests (emulator, agent, hub, one-shot commands),
and what such tests need around it: an agent config, a short directory for unix sockets.

No sleeps: a reader thread puts each output line on a queue, and tests wait for the line they
need with a bounded timeout.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from tests.support import ROOT
from tests.support.tokens import write_agent_token

if TYPE_CHECKING:  # the hub is imported only by the tests that run one
    from tests.support.hub import HubHarness

SCRIPT = ROOT / ".venv" / "bin" / "slot-agent"
#: What systemd gives a service: a test's subprocess must not inherit it from the runner.
SYSTEMD_ENV = ("INVOCATION_ID", "JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC",
               "WATCHDOG_PID")


def command(*args: str) -> list[str]:
    """The console script when installed, else ``python -m cli.main``."""
    if SCRIPT.exists():
        return [str(SCRIPT), *args]
    return [sys.executable, "-m", "cli.main", *args]


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without systemd's variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_ENV}
    env.update(extra or {})
    return env


class Proc:
    """A running ``slot-agent`` with its stdout and stderr lines on queues."""

    def __init__(self, args: Sequence[str], *, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.args = list(args)
        self.popen = subprocess.Popen(
            command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=clean_env(env), cwd=cwd or ROOT, bufsize=1,
        )
        self.stdout: queue.Queue[str | None] = queue.Queue()
        self.stderr: queue.Queue[str | None] = queue.Queue()
        self.out_lines: list[str] = []
        self.err_lines: list[str] = []
        assert self.popen.stdout is not None and self.popen.stderr is not None
        self._pumps = [threading.Thread(target=self._pump, args=(stream, q, keep), daemon=True)
                       for stream, q, keep in ((self.popen.stdout, self.stdout, self.out_lines),
                                               (self.popen.stderr, self.stderr, self.err_lines))]
        for pump in self._pumps:
            pump.start()

    @staticmethod
    def _pump(stream: IO[str], q: queue.Queue[str | None], keep: list[str]) -> None:
        for line in stream:
            keep.append(line.rstrip("\n"))
            q.put(line.rstrip("\n"))
        q.put(None)

    def first_line(self, timeout: float = 30.0) -> str:
        return self.wait_for(lambda line: True, timeout=timeout)

    def wait_for(self, predicate: Callable[[str], bool], *, timeout: float = 30.0,
                 stream: str = "stdout") -> str:
        """The first (next) line on ``stream`` matching ``predicate``; AssertionError when the
        stream ends or ``timeout`` passes first."""
        q = self.stdout if stream == "stdout" else self.stderr
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching line on {stream} within {timeout} s; "
                                     f"stdout: {self.out_lines[-20:]} stderr: "
                                     f"{self.err_lines[-20:]}")
            try:
                line = q.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                q.put(None)  # keep the end marker for later waits
                raise AssertionError(f"{stream} ended before a matching line; rc="
                                     f"{self.popen.poll()} stdout: {self.out_lines[-20:]} "
                                     f"stderr: {self.err_lines[-20:]}")
            if predicate(line):
                return line

    def wait_for_re(self, pattern: str, *, timeout: float = 30.0,
                    stream: str = "stdout") -> re.Match[str]:
        rx = re.compile(pattern)
        line = self.wait_for(lambda s: rx.search(s) is not None, timeout=timeout, stream=stream)
        match = rx.search(line)
        assert match is not None
        return match

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: no clean stop, nothing flushed."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and the exit code (SIGKILL after ``timeout``)."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.wait(10)

    def wait(self, timeout: float = 30.0) -> int:
        """The exit code; by then ``out_lines`` and ``err_lines`` hold all the output."""
        code = self.popen.wait(timeout)
        for pump in self._pumps:
            pump.join(10)
        return code

    def stop(self) -> None:
        """Terminate (then kill) if still running; used in ``finally`` blocks."""
        self.terminate(10)


def start_emulator(*extra: str) -> tuple[Proc, str]:
    """``slot-agent emulate --tcp 127.0.0.1:0``; returns the process and ``tcp://HOST:PORT``."""
    proc = Proc(["emulate", "--tcp", "127.0.0.1:0", *extra])
    address = proc.first_line()
    assert re.fullmatch(r"[\d.]+:\d+", address), address
    return proc, f"tcp://{address}"


def run_cli(*args: str, timeout: float = 60.0,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=clean_env(env))


#: util-linux's setpriv: as root, the tests run a command as an unprivileged user with it
SETPRIV = shutil.which("setpriv")
#: the user (and group) such a command runs as when the tests run as root: nobody
NOBODY = 65534


def run_cli_unprivileged(*args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """``slot-agent ARGS`` as a user without root's access (what ``sudo -u slot-agent``
    meets): as root, through setpriv as :data:`NOBODY`; else as this user. The result and
    the uid it ran as. Callers skip where SETPRIV is None and the tests run as root."""
    cmd = [str(Path(sys.executable).parent / "slot-agent"), *args]
    if os.geteuid() != 0:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60), os.geteuid()
    assert SETPRIV is not None
    cmd = [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60), NOBODY


def write_agent_config(tmp: Path, *, port: str, hub: HubHarness | None = None,
                       terminal_id: str = "EGM-T1", token: str | None = None,
                       level: str = "info", extra: str = "") -> Path:
    """An agent config for tests: port 0 metrics, files under ``tmp``; with ``hub``, an uplink
    to it with ``token`` (default: the first terminal token of the hub's table)."""
    uplink = ""
    if hub is not None:
        token_file = write_agent_token(tmp / "terminal-token", token or hub.terminal_token)
        uplink = (f"uplink:\n  url: {hub.terminal_url}\n  allow_insecure: true\n"
                  f"  token_file: {token_file}\n  reconnect_max_delay_s: 1\n")
    cfg = tmp / "agent.yaml"
    cfg.write_text(
        f"terminal_id: {terminal_id}\n"
        f"serial:\n  port: {port}\n"
        "machines:\n  - address: 1\n"
        "poll:\n  interval_ms: 40\n  reply_timeout_ms: 30\n"
        f"outbox:\n  path: {tmp / 'outbox.db'}\n"
        f"{uplink}"
        "metrics:\n  port: 0\n"
        f"logging:\n  level: {level}\n  format: json\n"
        f"control_socket: {short_dir() / 'control.sock'}\n"
        f"{extra}"
    )
    return cfg


def short_dir() -> Path:
    """A fresh directory with a short path: AF_UNIX paths are limited to 107 bytes. Removed
    when the test process exits (it sits outside pytest's tmp_path)."""
    path = Path(tempfile.mkdtemp(prefix="sa-", dir="/tmp"))
    atexit.register(shutil.rmtree, path, True)
    return path


def json_logs(lines: Sequence[str]) -> list[dict[str, object]]:
    """The JSON log records among output lines."""
    out = []
    for line in lines:
        text = line[line.index("{"):] if "{" in line else ""
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out
