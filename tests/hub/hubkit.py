"""Test kit for the hub: a hub on port 0, raw WebSocket peers, schema checks of all traffic."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api import wire
from api.events import CATALOG
from hub.config import HubConfig
from hub.server import Hub

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "docs" / "schemas"

TOKENS = """\
tokens:
  - {token: tok-t1, role: terminal, terminalId: T1, bank: B1, area: Main floor}
  - {token: tok-t2, role: terminal, terminalId: T2, bank: B2, area: High limit}
  - {token: tok-t3, role: terminal, terminalId: T3}
  - {token: tok-alice, role: operator, name: alice}
  - {token: tok-bob, role: operator, name: bob}
  - {token: tok-carol, role: viewer, name: carol}
"""
TERMINAL_TOKENS = {"T1": "tok-t1", "T2": "tok-t2", "T3": "tok-t3"}


def _load_schemas() -> tuple[dict[str, dict[str, Any]], Registry[Any]]:
    by_type: dict[str, dict[str, Any]] = {}
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
        if path.stem != "common":
            by_type[path.stem] = schema
    return by_type, Registry().with_resources(resources)


SCHEMAS, REGISTRY = _load_schemas()


def validate_frame(msg: dict[str, Any]) -> None:
    """Check one message against docs/schemas/<type>.json."""
    schema = SCHEMAS[msg["type"]]
    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(msg)


@dataclass
class Traffic:
    """Every valid frame sent and every frame received by the test peers."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    #: the frames the hub sent (a test may send a frame the hub must refuse)
    received: list[dict[str, Any]] = field(default_factory=list)

    def types(self) -> set[str]:
        return {m["type"] for m in self.frames}


class Peer:
    """A raw WebSocket peer with bounded waits (no sleeps)."""

    def __init__(self, ws: ClientConnection, traffic: Traffic) -> None:
        self.ws = ws
        self.traffic = traffic

    async def send(self, msg: dict[str, Any]) -> None:
        self.traffic.frames.append(msg)
        await self.ws.send(wire.encode(msg))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            text = await self.ws.recv()
        msg: dict[str, Any] = json.loads(text)
        self.traffic.frames.append(msg)
        self.traffic.received.append(msg)
        return msg

    async def recv_until(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 5.0
                         ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Receive until ``pred`` holds; return that message and every one before it."""
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.recv(timeout)
                if pred(msg):
                    return msg, seen
                seen.append(msg)

    async def recv_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        msg, _ = await self.recv_until(lambda m: m["type"] == kind, timeout)
        return msg

    async def sync(self) -> list[dict[str, Any]]:
        """Everything queued for this peer before a ping's pong (the hub answers in order)."""
        await self.send(wire.ping("sync"))
        _, before = await self.recv_until(lambda m: m["type"] == "pong" and m.get("id") == "sync")
        return before

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Wait for the close; return its code. Frames received meanwhile are recorded."""
        async with asyncio.timeout(timeout):
            try:
                while True:
                    await self.recv(timeout)
            except ConnectionClosed:
                pass
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()


def event_frame(terminal_id: str, seq: int, name: str = "betPlaced", *,
                data: dict[str, Any] | None = None, timestamp: float | None = None
                ) -> dict[str, Any]:
    channel = CATALOG[name].value
    stamp = wire.format_timestamp(time.time() if timestamp is None else timestamp)
    body = data if data is not None else ({"amount": 100, "credits": 100, "denomination": 1}
                                          if name in ("betPlaced", "winPaid") else {})
    return wire.event(event_id=f"{terminal_id}-{seq}", seq=seq, channel=channel,
                      terminal_id=terminal_id, name=name, timestamp=stamp, data=body)


class HubHarness:
    def __init__(self, tmp_path: Path, traffic: Traffic) -> None:
        tokens = tmp_path / "tokens.yaml"
        tokens.write_text(TOKENS)
        self.static_dir = tmp_path / "static"
        self.static_dir.mkdir()
        self.config = HubConfig(tokens=tokens, database=tmp_path / "hub.db", host="127.0.0.1",
                                port=0, plain=True, auth_timeout=3.0, synchronous="NORMAL")
        self.traffic = traffic
        self.hub: Hub | None = None
        self.peers: list[Peer] = []

    async def start(self, **overrides: Any) -> Hub:
        if overrides:
            self.config = replace(self.config, **overrides)
        self.hub = Hub(self.config, static_dir=self.static_dir)
        await self.hub.start()
        return self.hub

    async def restart(self) -> Hub:
        assert self.hub is not None
        await self.hub.stop()
        return await self.start()

    async def restart_with(self, **overrides: Any) -> Hub:
        """Restart with some configuration changed (same database and tokens)."""
        assert self.hub is not None
        await self.hub.stop()
        return await self.start(**overrides)

    @property
    def base(self) -> str:
        assert self.hub is not None
        return self.hub.ws_url

    async def connect(self, path: str, token: str | None = None, **kwargs: Any) -> Peer:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        ws = await connect(self.base + path, additional_headers=headers, **kwargs)
        peer = Peer(ws, self.traffic)
        self.peers.append(peer)
        return peer

    async def terminal(self, terminal_id: str, *, last_seq: int = 0
                       ) -> tuple[Peer, dict[str, Any]]:
        peer = await self.connect("/ws/terminal", TERMINAL_TOKENS[terminal_id])
        await peer.send(wire.hello(terminal_id, "test", last_seq))
        welcome = await peer.recv()
        assert welcome["type"] == "welcome", welcome
        return peer, welcome

    async def client(self, token: str, *, subscribe: dict[str, Any] | None = None
                     ) -> tuple[Peer, dict[str, Any]]:
        """Authenticate with the ``auth`` message; optionally subscribe."""
        peer = await self.connect("/ws/client")
        await peer.send(wire.auth(token))
        ok = await peer.recv()
        assert ok["type"] == "authOk", ok
        snap = await peer.recv()
        assert snap["type"] == "snapshot", snap
        if subscribe is not None:
            await peer.send(wire.subscribe(**subscribe))
            assert (await peer.recv())["type"] == "subscribed"
        return peer, snap

    async def close(self) -> None:
        for peer in self.peers:
            await peer.ws.close()
        if self.hub is not None:
            await self.hub.stop()


async def http_get(hub: Hub, path: str, token: str | None = None
                   ) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP/1.1 GET on the hub's port (optionally with a bearer token)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}\r\n".encode())
    await writer.drain()
    async with asyncio.timeout(5):
        data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


async def http_json(hub: Hub, path: str, token: str | None = "tok-carol") -> Any:
    status, _, body = await http_get(hub, path, token)
    assert status == 200, (status, body[:300])
    return json.loads(body)


