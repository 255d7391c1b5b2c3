"""Processes the benchmarks run beside the agent: the reference hub and the emulator, each in
its own process as on a real floor (the hub on a server, the machine a separate device);
and a transport wrapper that timestamps the general polls the line owner writes."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from pathlib import Path

from drivers.base import Transport, Word

ROOT = Path(__file__).resolve().parents[1]
SLOT_AGENT = str(ROOT / ".venv" / "bin" / "slot-agent")


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
    """``slot-agent emulate`` over a pty (``pty=True``) or TCP; ``url`` is for the agent."""

    def __init__(self, *, scenario: str = "autoplay", games_per_minute: int = 30,
                 pty: bool = True, seed: int = 1) -> None:
        where = ["--pty"] if pty else ["--tcp", "127.0.0.1:0"]
        self.proc = subprocess.Popen(
            [SLOT_AGENT, "emulate", *where, "--scenario", scenario, "--seed", str(seed),
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


class TimedTransport(Transport):
    """Delegates to ``inner``; records ``time.monotonic()`` of every general poll written to
    ``address`` (a one-byte frame ``0x80 | address`` with the wakeup bit)."""

    def __init__(self, inner: Transport, address: int = 1) -> None:
        self.inner = inner
        self.name = inner.name
        self._poll = bytes((0x80 | address,))
        self.general_polls: list[float] = []

    def write(self, frame: bytes, *, wakeup: bool) -> None:
        if wakeup and frame == self._poll:
            self.general_polls.append(time.monotonic())
        self.inner.write(frame, wakeup=wakeup)

    def read(self, deadline: float, max_words: int = 512) -> list[Word]:
        return self.inner.read(deadline, max_words)

    def discard_input(self) -> None:
        self.inner.discard_input()

    def close(self) -> None:
        self.inner.close()
