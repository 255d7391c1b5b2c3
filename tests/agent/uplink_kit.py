"""Test kit for the uplink and actions: an operator client, a cuttable TCP proxy, outboxes, a
fake line owner, certificates made with the openssl CLI (the hub itself: tests.support.hub).
No sleeps: waits poll a condition with a bounded timeout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from agent.config import UplinkConfig
from agent.line.commands import CommandResult, MachineCommand
from agent.observations import Observation
from agent.store.outbox import Outbox
from agent.uplink.client import Uplink
from api import wire
from api.events import Event, utc_timestamp
from tests.support.tokens import OPERATOR, TERMINAL_TOKENS
from tests.support.waits import wait_for

TERMINAL = "T1"
TERMINAL_TOKEN = TERMINAL_TOKENS[TERMINAL]


def bet(n: int = 1) -> list[Event]:
    return [Event("betPlaced", utc_timestamp(time.time()),
                  {"amount": 100, "credits": 100, "denomination": 1}) for _ in range(n)]


def open_outbox(path: Path) -> Outbox:
    return Outbox.open(path, terminal_id=TERMINAL)


def uplink_config(url: str, **overrides: Any) -> UplinkConfig:
    base = UplinkConfig(url=url, allow_insecure=url.startswith("ws://"),
                        token_env="UNUSED", window=50, batch=20,
                        reconnect_max_delay_s=0.05, heartbeat_interval_s=5.0,
                        heartbeat_timeout_s=5.0)
    return replace(base, **overrides)


def make_uplink(url: str, outbox: Outbox, *, token: str = TERMINAL_TOKEN, **overrides: Any
                ) -> Uplink:
    """An uplink of terminal T1 with short reconnect delays; ``overrides`` are Uplink keyword
    arguments or UplinkConfig fields."""
    kwargs = {k: overrides.pop(k) for k in list(overrides)
              if k in ("metrics", "actions", "fallback_poll_s", "ssl_context",
                       "machine_status", "ack_persist_delay_s", "rng", "open_timeout_s",
                       "min_reconnect_delay_s", "max_message_bytes")}
    kwargs.setdefault("min_reconnect_delay_s", 0.01)
    return Uplink(uplink_config(url, **overrides), terminal_id=TERMINAL, outbox=outbox,
                  token=lambda: token, **kwargs)


@contextlib.asynccontextmanager
async def running(uplink: Uplink) -> AsyncIterator[Uplink]:
    uplink.start()
    try:
        yield uplink
    finally:
        await uplink.stop()


# --------------------------------------------------------------------------- hub clients


class Operator:
    """A client connection with the operator token, subscribed to the terminal's events."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, port: int, *, subscribe: bool = True) -> Operator:
        ws = await connect(f"ws://127.0.0.1:{port}/ws/client",
                           additional_headers={"Authorization": f"Bearer {OPERATOR}"})
        op = cls(ws)
        await op.wait(lambda m: m["type"] == "snapshot")
        if subscribe:
            await ws.send(wire.encode(wire.subscribe(terminals=[TERMINAL])))
            await op.wait(lambda m: m["type"] == "subscribed")
        return op

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for text in self.ws:
                self.frames.append(json.loads(text))

    async def wait(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0
                   ) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def check() -> bool:
            found[:] = [m for m in self.frames if pred(m)]
            return bool(found)

        await wait_for(check, timeout, "operator frame")
        return found[0]

    def events(self) -> list[dict[str, Any]]:
        return [m for m in self.frames if m["type"] == "event" and m["terminalId"] == TERMINAL
                and not m["id"].startswith("hub-")]

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


# --------------------------------------------------------------------------- TCP proxy


@dataclass
class _Pipe:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class Proxy:
    """A TCP proxy on port 0 in front of ``target_port``.

    ``hold_downstream``: bytes from the server are kept back (the hub's acks never arrive);
    ``cut()`` aborts every connection at once, like a network drop.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.hold_downstream = False
        self.connections = 0
        self._pipes: list[_Pipe] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        pipe = _Pipe(writer, up_writer)
        pipe.tasks = [asyncio.create_task(self._copy(reader, up_writer, downstream=False)),
                      asyncio.create_task(self._copy(up_reader, writer, downstream=True))]
        self._pipes.append(pipe)

    async def _copy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    downstream: bool) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                if downstream and self.hold_downstream:
                    continue  # swallowed: the peer never sees these bytes
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    def cut(self) -> None:
        for pipe in self._pipes:
            pipe.client.transport.abort()
            pipe.upstream.transport.abort()
        self._pipes.clear()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


# --------------------------------------------------------------------------- line owner


class FakeLine:
    """A fake line owner: records commands; answers at once or holds them for the test."""

    def __init__(self, *, hold: bool = False) -> None:
        self.hold = hold
        self.commands: list[MachineCommand] = []
        self.futures: list[Future[CommandResult]] = []
        self.answer: Callable[[MachineCommand], CommandResult] = lambda c: CommandResult(True)

    def submit(self, command: MachineCommand) -> Future[CommandResult]:
        self.commands.append(command)
        future: Future[CommandResult] = Future()
        self.futures.append(future)
        if not self.hold and future.set_running_or_notify_cancel():
            future.set_result(self.answer(command))
        return future


@dataclass
class Sinks:
    """What an Actions object emitted (events) and observed (observations)."""

    events: list[Event] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)


# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path


def make_pki(directory: Path, name: str) -> Pki:
    """A CA and a server certificate for localhost/127.0.0.1 signed by it (EC P-256)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = directory / f"{name}-ca.key", directory / f"{name}-ca.pem"
    key, csr, cert = (directory / f"{name}.key", directory / f"{name}.csr",
                      directory / f"{name}.pem")
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                   "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", f"/CN={name} test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return Pki(ca, cert, key)
