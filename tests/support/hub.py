"""The one in-process hub for tests, and raw WebSocket peers to talk to it.

:class:`HubHarness` runs a real :class:`hub.server.Hub` on port 0 with a temporary database
and a token file from :mod:`tests.support.tokens`, either on the test's event loop
(``await start()``) or on its own thread (``start_in_thread()``, for tests whose code under test
blocks). A restart keeps the database, the tokens and the port. Every wait is bounded; nothing
sleeps to wait.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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
from hub.http_answers import STATIC_DIR
from hub.running import RunningHub, run_in_thread
from hub.server import Hub
from tests.support import ROOT
from tests.support.tokens import HUB_TOKENS, TERMINAL_TOKENS, Token, write_token_file

SCHEMA_DIR = ROOT / "docs" / "schemas"


# --------------------------------------------------------------------------- schemas


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


# --------------------------------------------------------------------------- peers


class Peer:
    """A raw WebSocket peer with bounded waits (no sleeps). With ``traffic``, every message
    sent as a dict and every one received is recorded there (for the schema check)."""

    def __init__(self, ws: ClientConnection, traffic: Traffic | None = None) -> None:
        self.ws = ws
        self.traffic = traffic
        self._pings = 0

    def _record(self, msg: dict[str, Any]) -> None:
        if self.traffic is not None:
            self.traffic.frames.append(msg)

    async def send(self, msg: dict[str, Any]) -> None:
        self._record(msg)
        await self.ws.send(wire.encode(msg))

    async def send_raw(self, data: str | bytes) -> None:
        """Send as is (not recorded: it may be anything)."""
        await self.ws.send(data)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            text = await self.ws.recv()
        msg: dict[str, Any] = json.loads(text)
        self._record(msg)
        if self.traffic is not None:
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

    async def recv_terminal(self, terminal_id: str, timeout: float = 5.0, **state: Any
                            ) -> dict[str, Any]:
        """Receive until a ``terminal`` message (protocol.md §5) about ``terminal_id`` whose
        state has every value of ``state`` (wire names: ``online=True``); return that state.

        A connection's state reaches the clients when its ``deviceOnline`` is stored and
        published, after the ``welcome`` (hub/server.py ``emit_hub_event``): a test that
        asserts what a client got next waits for it first."""
        def about(m: dict[str, Any]) -> bool:
            if m["type"] != "terminal" or m["terminal"]["terminalId"] != terminal_id:
                return False
            return all(m["terminal"].get(key) == value for key, value in state.items())

        msg, _ = await self.recv_until(about, timeout)
        found: dict[str, Any] = msg["terminal"]
        return found

    async def sync(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Everything queued for this peer before a ping's pong (the hub answers in order)."""
        self._pings += 1
        ref = f"sync-{self._pings}"
        await self.send(wire.ping(ref))
        _, before = await self.recv_until(
            lambda m: m["type"] == "pong" and m.get("id") == ref, timeout)
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
    """A terminal's ``event`` frame as the agent would send it (docs/protocol.md §4)."""
    channel = CATALOG[name].value
    stamp = wire.format_timestamp(time.time() if timestamp is None else timestamp)
    body = data if data is not None else ({"amount": 100, "credits": 100, "denomination": 1}
                                          if name in ("betPlaced", "winPaid") else {})
    return wire.event(event_id=f"{terminal_id}-{seq}", seq=seq, channel=channel,
                      terminal_id=terminal_id, name=name, timestamp=stamp, data=body)


# --------------------------------------------------------------------------- the hub


class HubHarness:
    """A real :class:`Hub` for one test.

    ``config`` overrides any :class:`HubConfig` field (``tls_cert``/``tls_key`` turn TLS on);
    ``dashboard`` serves the real dashboard (else an empty static folder, ``static_dir``);
    ``action_key`` writes an action-signing key file and configures it; ``hub_options`` are
    passed to ``Hub`` on every (re)start (``clock``, ``prune_interval``). The first start binds
    port 0; later starts reuse that port. ``async with`` starts it and closes it.
    """

    def __init__(self, tmp_path: Path, traffic: Traffic | None = None, *,
                 tokens: Iterable[Token] = HUB_TOKENS, dashboard: bool = False,
                 action_key: bytes | None = None, **config: Any) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.tokens = tuple(tokens)
        if dashboard:
            self.static_dir = STATIC_DIR
        else:
            self.static_dir = tmp_path / "static"
            self.static_dir.mkdir(exist_ok=True)
        if action_key is not None:
            key_file = tmp_path / "action.key"
            key_file.write_bytes(action_key)
            config.setdefault("action_key_file", key_file)
        settings: dict[str, Any] = {
            "tokens": write_token_file(tmp_path, self.tokens), "database": tmp_path / "hub.db",
            "host": "127.0.0.1", "port": 0, "plain": "tls_cert" not in config,
            "synchronous": "NORMAL", "auth_timeout": 5.0}
        self.config = HubConfig(**(settings | config))
        self.traffic = traffic
        self.hub_options: dict[str, Any] = {}
        self.hub: Hub | None = None
        self.running: RunningHub | None = None
        self.peers: list[Peer] = []

    # -- on the test's loop ----------------------------------------------------------------

    async def start(self, **overrides: Any) -> Hub:
        """Start (configuration ``overrides`` are kept for later restarts)."""
        if overrides:
            self.config = replace(self.config, **overrides)
        self.hub = Hub(self.config, static_dir=self.static_dir, **self.hub_options)
        port = await self.hub.start()
        self.config = replace(self.config, port=port)
        return self.hub

    async def stop(self) -> None:
        if self.hub is not None:
            hub, self.hub = self.hub, None
            await hub.stop()

    async def restart(self, **overrides: Any) -> Hub:
        """Stop and start again: same database, tokens and port."""
        await self.stop()
        return await self.start(**overrides)

    async def close(self) -> None:
        """Close every peer opened by :meth:`connect`, then stop. A peer that stopped reading
        (its library's queue full, megabytes still buffered) never reads the hub's closing
        frame: its closing handshake would wait out the 10 s close timeout, so after a short
        bound its connection is dropped instead (nothing is asserted at teardown)."""
        for peer in self.peers:
            try:
                async with asyncio.timeout(1.0):
                    await peer.ws.close()
            except TimeoutError:
                peer.ws.transport.abort()
        await self.stop()

    async def published(self, timeout: float = 10.0) -> None:
        """Until every event submitted to the hub so far, its own ``deviceOnline`` /
        ``deviceOffline`` too, is stored and fanned out (with the ``terminal`` states they
        change): a batch of no events goes through the ingest behind them, which commits and
        publishes in submission order (hub/ingest.py). For a client connected afterwards
        that must get nothing it did not ask for."""
        assert self.hub is not None
        async with asyncio.timeout(timeout):
            await self.hub.ingest.submit([])

    async def __aenter__(self) -> HubHarness:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- on its own thread -------------------------------------------------------------------

    def start_in_thread(self) -> RunningHub:
        """Serve on a thread of its own (with the real dashboard), for blocking tests."""
        self.running = run_in_thread(self.config)
        self.config = replace(self.config, port=self.running.port)
        return self.running

    def stop_thread(self) -> None:
        if self.running is not None:
            running, self.running = self.running, None
            running.stop()

    # -- where it is -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.config.port

    @property
    def base(self) -> str:
        """Base of the WebSocket URLs: append ``/ws/terminal`` or ``/ws/client``."""
        scheme = "ws" if self.config.tls_cert is None else "wss"
        return f"{scheme}://{self.config.host}:{self.port}"

    @property
    def terminal_url(self) -> str:
        return f"{self.base}/ws/terminal"

    @property
    def client_url(self) -> str:
        return f"{self.base}/ws/client"

    @property
    def page_url(self) -> str:
        """The dashboard's URL."""
        scheme = "http" if self.config.tls_cert is None else "https"
        return f"{scheme}://{self.config.host}:{self.port}/"

    def token(self, name: str) -> str:
        """The token of terminal or principal ``name`` in this hub's table."""
        return next(t.token for t in self.tokens if t.name == name)

    @property
    def terminal_token(self) -> str:
        """The first terminal token of the table (the one a one-terminal hub knows)."""
        return next(t.token for t in self.tokens if t.role == "terminal")

    # -- what it stored ------------------------------------------------------------------------

    def seqs(self, terminal_id: str) -> list[int]:
        """Seqs of the terminal's own events stored by the hub, in storage order."""
        assert self.hub is not None
        return [int(f["seq"]) for f in self.hub.store.events(terminal_id)
                if not str(f["id"]).startswith("hub-")]

    def stored(self, terminal_id: str, *, own: bool = True) -> list[dict[str, Any]]:
        """The terminal's events as stored (see :func:`stored_events`), read over a connection
        of its own (safe while the hub runs on another thread)."""
        assert self.config.database is not None, "a PostgreSQL hub: read its store instead"
        return stored_events(self.config.database, terminal_id, own=own)

    def event_names(self, terminal_id: str) -> list[str]:
        """Names of every event stored about the terminal (the hub's own too), in order."""
        return [e["event"] for e in self.stored(terminal_id, own=False)]

    # -- peers ---------------------------------------------------------------------------------

    async def connect(self, path: str, token: str | None = None, **kwargs: Any) -> Peer:
        """A peer on ``path``; ``token`` goes in the Authorization header."""
        headers = {"Authorization": f"Bearer {token}"} if token else None
        ws = await connect(self.base + path, additional_headers=headers, **kwargs)
        peer = Peer(ws, self.traffic)
        self.peers.append(peer)
        return peer

    async def terminal(self, terminal_id: str, *, last_seq: int = 0
                       ) -> tuple[Peer, dict[str, Any]]:
        """A terminal connection after ``hello``; returns it and the ``welcome``."""
        peer = await self.connect("/ws/terminal", TERMINAL_TOKENS[terminal_id])
        await peer.send(wire.hello(terminal_id, "test", last_seq))
        welcome = await peer.recv()
        assert welcome["type"] == "welcome", welcome
        return peer, welcome

    async def client(self, token: str, *, subscribe: dict[str, Any] | None = None,
                     header: bool = False) -> tuple[Peer, dict[str, Any]]:
        """A client connection, authenticated by the ``auth`` message (or, with ``header``,
        the Authorization header); optionally subscribed. Returns it and its snapshot."""
        if header:
            peer = await self.connect("/ws/client", token, max_size=None)
        else:
            peer = await self.connect("/ws/client")
            await peer.send(wire.auth(token))
        ok = await peer.recv()
        assert ok["type"] == "authOk", ok
        snap = await peer.recv()
        assert snap["type"] == "snapshot", snap
        if subscribe is not None:
            await peer.send(wire.subscribe(**subscribe))
            assert (await peer.recv_type("subscribed"))["type"] == "subscribed"
        return peer, snap


@contextmanager
def hub_in_thread(tmp_path: Path, tokens: Iterable[Token] = HUB_TOKENS, **config: Any
                  ) -> Iterator[HubHarness]:
    """A :class:`HubHarness` serving on its own thread for the ``with`` block."""
    harness = HubHarness(tmp_path, tokens=tokens, **config)
    harness.start_in_thread()
    try:
        yield harness
    finally:
        harness.stop_thread()


def stored_events(database: Path, terminal_id: str, *, own: bool = True
                  ) -> list[dict[str, Any]]:
    """A terminal's events stored in a hub database, in storage order, read over a read-only
    connection (``[]`` while the database or its schema is not there yet): its own, or with
    ``own=False`` also those the hub adds about it (``deviceOffline``, ...)."""
    column = "source" if own else "terminal_id"
    if not database.exists():
        return []
    conn = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(f"SELECT id, seq, event, data FROM events WHERE {column} = ? "
                            "ORDER BY n", (terminal_id,)).fetchall()
    except sqlite3.OperationalError:  # the schema is not there yet
        return []
    finally:
        conn.close()
    return [{"id": r[0], "seq": int(r[1]), "event": r[2], "data": json.loads(r[3])}
            for r in rows]


# --------------------------------------------------------------------------- HTTP


async def http_get(hub: Hub, path: str, token: str | None = None, *,
                   timeout: float | None = 5.0) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP/1.1 GET on the hub's port (optionally with a bearer token), the path sent
    exactly as written; ``timeout=None`` leaves the bound to the caller."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}\r\n".encode())
    await writer.drain()
    async with asyncio.timeout(timeout):
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


async def publish_all(term: Any, frames: list[dict[str, Any]]) -> None:
    """Send ``frames`` on a terminal connection and wait until the last one is acked."""
    for frame in frames:
        await term.send(frame)
    while (await term.recv_type("ack"))["upTo"] < frames[-1]["seq"]:
        pass


#: The history tests' floor starts at this moment (epoch seconds: 2026-05-11T10:00:00Z).
HISTORY_BASE = 1_778_493_600.0


async def publish_history_floor(harness: HubHarness) -> None:
    """T1: 30 events a minute apart from :data:`HISTORY_BASE` (every third a bill of 100 x
    seq cents, the rest bets); T2: 5 bets a second apart. What the history tests page."""
    t1, _ = await harness.terminal("T1")
    t2, _ = await harness.terminal("T2")
    base = HISTORY_BASE
    await publish_all(t1, [event_frame("T1", i, "betPlaced" if i % 3 else "billAccepted",
                                       data={"amount": 100 * i}, timestamp=base + i * 60)
                           for i in range(1, 31)])
    await publish_all(t2, [event_frame("T2", i, timestamp=base + i) for i in range(1, 6)])
