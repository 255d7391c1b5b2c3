"""An in-process hub on port 0 and raw WebSocket peers with bounded waits (no sleeps)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api import wire
from hub.config import HubConfig
from hub.server import Hub

TOKENS = """\
tokens:
  - {token: tok-t1, role: terminal, terminalId: T1}
  - {token: tok-t2, role: terminal, terminalId: T2}
  - {token: tok-ops, role: operator, name: ops}
  - {token: tok-view, role: viewer, name: view}
"""
TERMINAL_TOKENS = {"T1": "tok-t1", "T2": "tok-t2"}
OPERATOR = "tok-ops"
VIEWER = "tok-view"
ACTION_KEY = b"hub-action-key-0123456789abcdef"


def write_tokens(directory: Path) -> Path:
    path = directory / "hub-tokens.yaml"
    path.write_text(TOKENS)
    return path


class HubRig:
    """A real :class:`Hub` on this loop; ``restart`` keeps its database and port."""

    def __init__(self, tmp_path: Path, **overrides: Any) -> None:
        key = tmp_path / "action.key"
        key.write_bytes(ACTION_KEY)
        static = tmp_path / "static"
        static.mkdir(exist_ok=True)
        self.static = static
        self.config = replace(HubConfig(
            tokens=write_tokens(tmp_path), database=tmp_path / "hub.db", host="127.0.0.1",
            port=0, plain=True, synchronous="NORMAL", auth_timeout=5.0,
            action_key_file=key,
        ), **overrides)
        self.hub: Hub | None = None

    async def start(self) -> Hub:
        self.hub = Hub(self.config, static_dir=self.static)
        port = await self.hub.start()
        self.config = replace(self.config, port=port)
        return self.hub

    async def stop(self) -> None:
        if self.hub is not None:
            await self.hub.stop()
            self.hub = None

    @property
    def base(self) -> str:
        return f"ws://127.0.0.1:{self.config.port}"


class Peer:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._pings = 0

    @classmethod
    async def open(cls, base: str, path: str, token: str | None) -> Peer:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return cls(await connect(base + path, additional_headers=headers, max_size=None))

    async def send(self, msg: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(msg if isinstance(msg, str | bytes) else wire.encode(msg))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            text = await self.ws.recv()
        msg: dict[str, Any] = json.loads(text)
        return msg

    async def recv_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.recv(timeout)
                if msg["type"] == kind:
                    return msg

    async def sync(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Every frame the hub sent before answering a ping (it answers in order)."""
        self._pings += 1
        ref = f"sync-{self._pings}"
        await self.send(wire.ping(ref))
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.recv(timeout)
                if msg["type"] == "pong" and msg.get("id") == ref:
                    return seen
                seen.append(msg)

    async def close_code(self, timeout: float = 5.0) -> int | None:
        async with asyncio.timeout(timeout):
            try:
                while True:
                    await self.ws.recv()
            except ConnectionClosed:
                pass
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()


async def terminal(rig: HubRig, terminal_id: str, last_seq: int = 0) -> tuple[Peer, int]:
    peer = await Peer.open(rig.base, "/ws/terminal", TERMINAL_TOKENS[terminal_id])
    await peer.send(wire.hello(terminal_id, "test", last_seq))
    welcome = await peer.recv_type("welcome")
    return peer, int(welcome["ackedSeq"])


async def client(rig: HubRig, token: str, **subscription: Any) -> Peer:
    peer = await Peer.open(rig.base, "/ws/client", token)
    await peer.recv_type("snapshot")
    if subscription:
        await peer.send(wire.subscribe(**subscription))
        await peer.recv_type("subscribed")
    return peer
