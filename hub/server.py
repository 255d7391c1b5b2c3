"""The reference hub: terminals publish, clients subscribe, operators act (docs/protocol.md).

One asyncio server on one port: ``/ws/terminal``, ``/ws/client``, the dashboard files,
``/healthz``, the history API and ``/metrics``. Events are stored (de-duplicated on terminal
and seq) before they are acknowledged and fanned out; each peer has a bounded outgoing queue
so one slow client cannot slow the rest (hub/peer.py).

This module holds the server's lifecycle, the HTTP side of the handshake, and the path every
stored event takes to the clients (:meth:`Hub.publish`). The connections are handled by
hub/terminal_sessions.py (``/ws/terminal``, group commit and acks) and
hub/client_sessions.py (``/ws/client``, subscriptions, snapshots, alert acknowledgements);
operator actions by hub/actions.py; a hub on its own thread is hub/running.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from api import wire
from api.wire import ActionStatus, CloseCode, ErrorCode, MessageType, Role, WireError
from hub import http_api, redact
from hub.actions import ActionRouter
from hub.client_sessions import ClientSessions
from hub.cluster_hooks import ClusterHooks
from hub.config import HubConfig, tls_context
from hub.connection import StopRequest, connection_class
from hub.fanout import GroupFanOut
from hub.floor import Floor, TerminalState
from hub.gaming_day import GamingDay
from hub.history_runner import HistoryRunner
from hub.http_answers import STATIC_DIR, secure_response, static_response, text_response
from hub.ingest import GroupCommitter, InflightGate
from hub.metrics import PATH as METRICS_PATH
from hub.metrics import HubMetrics
from hub.peer import Peer
from hub.store import EventWrite, data_text
from hub.store_api import open_audit, open_store
from hub.terminal_sessions import TerminalSessions
from hub.tokens import Principal, TokenTable, load_tokens
from hub.wsio import close_if_behind

if TYPE_CHECKING:
    from hub.cluster import Cluster


log = logging.getLogger("hub")

TERMINAL_PATH = "/ws/terminal"
CLIENT_PATH = "/ws/client"

_FINAL_STATUSES = frozenset(s.value for s in ActionStatus)

#: Seconds a close handshake the hub starts may take (websockets' ``close_timeout``).
_CLOSE_TIMEOUT = 1.0

#: Seconds ``stop`` waits for connections to close before it aborts them.
_STOP_TIMEOUT = 1.0

#: Seconds ``stop`` then waits for the aborted connections' handlers to end.
_ABORT_WAIT = 0.5

#: Seconds between two prunes of stored events older than ``retention_days``.
PRUNE_INTERVAL = 3600.0

#: Hub event seqs taken from the store at a time (hub/store_api.py ``reserve_hub_seqs``).
_HUB_SEQ_BLOCK = 100


@dataclass
class HubStats:
    """Counters for tests, the log and ``GET /metrics`` (hub/metrics.py)."""

    #: events this instance stored (with several instances, each counts its own)
    events_stored: int = 0
    #: events another instance stored, published here (hub/cluster.py)
    events_from_elsewhere: int = 0
    duplicates: int = 0
    slow_consumers_dropped: int = 0
    #: ``error`` replies sent, by ``code`` (protocol.md §6)
    errors_by_code: dict[ErrorCode, int] = field(default_factory=dict)

    def error_sent(self, code: ErrorCode) -> None:
        self.errors_by_code[code] = self.errors_by_code.get(code, 0) + 1

    @property
    def errors_sent(self) -> int:
        """``error`` replies sent, every code."""
        return sum(self.errors_by_code.values())


class Hub(ClusterHooks):
    """The hub server. ``await start()`` returns the bound port; ``await stop()`` ends it.

    ``store`` is public so tests and tools read what was stored in-process.
    """

    def __init__(
        self, config: HubConfig, *, tokens: TokenTable | None = None,
        clock: Callable[[], float] = time.time, static_dir: Path = STATIC_DIR,
        prune_interval: float = PRUNE_INTERVAL,
    ) -> None:
        redact.install()  # before any connection can log a header or a frame
        self.config = config
        self.tokens = tokens if tokens is not None else load_tokens(config.tokens)
        self.clock = clock
        self.static_dir = static_dir
        self.stats = HubStats()
        #: This instance among several sharing one PostgreSQL store (hub/cluster.py).
        self.instance_id = uuid.uuid4().hex[:12]
        self.store = open_store(config, origin=self.instance_id)
        self.gaming_day = GamingDay(config.timezone, config.gaming_day_start)
        self.audit = open_audit(self.store)
        #: the history API's worker threads (either store; hub.history_runner)
        self.history = HistoryRunner(self.store)
        self.floor = Floor(self.store, self.tokens.terminals(), clock(),
                           gaming_day=self.gaming_day, registry=self.tokens.registry())
        self._hub_seq = self._hub_seq_end = 0  # the block of hub seqs in hand
        self.cluster: Cluster | None = None
        if config.store is not None:
            from hub.cluster import Cluster
            from hub.store_pg import PgStore

            assert isinstance(self.store, PgStore)
            self.cluster = Cluster(self, self.store)
        self.terminals = TerminalSessions(self)
        self.clients = ClientSessions(self)
        self.actions = ActionRouter(self)
        # With several instances, own batches are fanned out in cursor order with the
        # others' (hub/cluster.py); the ingest's publish step waits for their turn.
        self.ingest = GroupCommitter(
            self.store, self.publish if self.cluster is None else self.cluster.publish_own_group,
            self.now)
        self.gate = InflightGate(config.max_inflight_events, config.max_inflight_per_terminal)
        #: ``GET /metrics``: reads the counters above when scraped (hub/metrics.py)
        self.metrics = HubMetrics(self)
        self._prune_interval = prune_interval
        self._pruner: asyncio.Task[None] | None = None
        self._server: Server | None = None
        self._stop_request = StopRequest()
        self.stopping = False
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> int:
        ssl_context: ssl.SSLContext | None = None
        if self.config.tls_cert is not None and self.config.tls_key is not None:
            ssl_context = tls_context(self.config.tls_cert, self.config.tls_key)
        self.ingest.start()
        if self.cluster is not None:
            await self.cluster.start()
            self._online_elsewhere()
        self._server = await serve(
            self._handle, self.config.host, self.config.port,
            process_request=self._process_request, process_response=secure_response,
            ssl=ssl_context,
            max_size=self.config.max_frame_bytes, ping_interval=self.config.ping_interval,
            ping_timeout=self.config.ping_timeout,
            # permessage-deflate is never negotiated (docs/protocol.md §1): every frame would
            # be compressed once per peer, and the CPU per frame bounds the event rate.
            compression=None,
            # A shutdown under load must not wait 10 s (the default) per unresponsive peer.
            close_timeout=_CLOSE_TIMEOUT,
            create_connection=connection_class(self._stop_request),
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.actions.start()
        if self.config.retention_days is not None:
            self._pruner = asyncio.create_task(self._prune_loop())
        log.info("hub listening on %s", self.url)
        return self.port

    def _netloc(self) -> str:
        host = self.config.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The dashboard's URL (``http`` or ``https``)."""
        scheme = "http" if self.config.tls_cert is None else "https"
        return f"{scheme}://{self._netloc()}/"

    @property
    def ws_url(self) -> str:
        """Base of the WebSocket URLs: append ``/ws/terminal`` or ``/ws/client``."""
        scheme = "ws" if self.config.tls_cert is None else "wss"
        return f"{scheme}://{self._netloc()}"

    def request_stop(self) -> None:
        """Say the hub stops: flags only, so a signal handler may call it at any moment (in
        the middle of a long event-loop turn under overload); :meth:`stop` does the rest.

        From then on terminal connections parse and store nothing more (what was not
        acknowledged is sent again by the terminals).
        """
        self.stopping = True
        self._stop_request.requested = True
        self.ingest.refuse()

    async def stop(self) -> None:
        """Stop within about :data:`_STOP_TIMEOUT` + :data:`_ABORT_WAIT` seconds plus the
        CPU it takes to close the connections, also overloaded (docs/operations.md).

        Nothing more is read from terminals or stored beyond the transaction being
        committed: an overloaded hub would otherwise parse and store its backlog first (20 s
        and more with 3,000 terminals flooding a hub with a tenth of a core). What was not
        acknowledged is sent again by the terminals; nothing acknowledged is lost (acks
        follow commits). Connections get 1001; a terminal connection with unread messages
        is aborted right after it (its close frame is behind the backlog), the others
        that have not finished closing after :data:`_STOP_TIMEOUT`.
        """
        started = time.monotonic()
        self.request_stop()
        self.gate.close()  # wake the terminals waiting for room: they read no more
        self.ingest.close_intake()  # the transaction being committed is the last
        self.actions.stop()
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        if self._server is not None:
            behind = sum(close_if_behind(conn.peer.ws, CloseCode.GOING_AWAY, "going away")
                         for conn in list(self.terminals.connections.values()))
            if behind:
                log.info("stopping: %d terminal connections with unread messages closed "
                         "without reading them", behind)
            self._server.close()  # closes every connection with 1001 going away
            try:
                async with asyncio.timeout(_STOP_TIMEOUT):
                    await self._server.wait_closed()
            except TimeoutError:
                # Overloaded: peers that did not finish closing are cut (a terminal resends
                # what was not acknowledged; nothing acknowledged is lost). all_connections:
                # also those CLOSING (1001 sent, no answer), which ``connections`` leaves out.
                still = [ws for ws in self._server.all_connections if ws.transport is not None]
                log.warning("%d connections still open after %.1f s: aborting them",
                            len(still), _STOP_TIMEOUT)
                for ws in still:
                    ws.transport.abort()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_ABORT_WAIT):
                        await self._server.wait_closed()
        await self.ingest.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        await asyncio.to_thread(self.history.close)  # lets running queries finish
        self.store.close()
        log.info("hub stopped in %.1f s", time.monotonic() - started)

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    # ------------------------------------------------------------------ retention

    async def prune(self) -> int:
        """Delete what is older than ``retention_days`` now; the number of events deleted.

        Open alerts that were deleted stop counting; the terminals whose count changed are
        broadcast. The acknowledged seqs are kept, so terminals resume where they were.
        """
        days = self.config.retention_days
        if days is None:
            return 0
        cutoff = self.now() - days * 86400.0
        deleted = await self.store.prune(cutoff, _FINAL_STATUSES)
        if deleted:
            log.info("pruned %d events received before %s (retention %g days)", deleted,
                     wire.format_timestamp(cutoff), days)
            for state in self.floor.recount_alerts():
                self.clients.broadcast_terminal(state)
        return deleted

    async def _prune_loop(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("pruning old events failed; next try in %.0f s",
                              self._prune_interval)
            await asyncio.sleep(self._prune_interval)

    # ------------------------------------------------------------------ HTTP

    async def _process_request(self, connection: ServerConnection, request: Request
                               ) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path in (TERMINAL_PATH, CLIENT_PATH):
            header = request.headers.get("Authorization")
            if header is None and path == CLIENT_PATH:
                return None  # browsers authenticate with the first message
            principal = self.bearer(header)
            if principal is None:
                resp = text_response(401, "missing or unknown bearer token\n")
                resp.headers["WWW-Authenticate"] = "Bearer"
                log.warning("refused %s from %s: bad token", path, connection.remote_address)
                if path == CLIENT_PATH:  # as a refused `auth` message (protocol.md §12 audit)
                    self.audit.login_refused(wire.format_timestamp(self.now()),
                                             connection.remote_address)
                return resp
            wanted_terminal = path == TERMINAL_PATH
            if (principal.role is Role.TERMINAL) != wanted_terminal:
                log.warning("refused %s for %s: role %s", path, principal.name,
                            principal.role.value)
                return text_response(403, f"{path} is not for {principal.role.value} tokens\n")
            return None
        if path == "/healthz":
            return text_response(200, "ok\n")
        if path == METRICS_PATH:
            return self.metrics.answer(request)
        if path.startswith(http_api.PREFIX):
            return await http_api.answer(self, request)
        if path == "/" or path.startswith("/static/"):
            return static_response(path, self.static_dir)
        return text_response(404, "not found\n")

    def bearer(self, header: str | None) -> Principal | None:
        """Who an ``Authorization: Bearer`` header names (None: missing or unknown)."""
        token = header[7:].strip() if header and header[:7].lower() == "bearer " else None
        return self.tokens.lookup(token)

    async def _handle(self, ws: ServerConnection) -> None:
        if ws.request is None:
            return
        path = ws.request.path.split("?", 1)[0]
        # process_request already refused a bad header; read the principal again here.
        principal = self.bearer(ws.request.headers.get("Authorization"))
        try:
            if path == TERMINAL_PATH and principal is not None:
                await self.terminals.serve(ws, principal)
            elif path == CLIENT_PATH:
                await self.clients.serve(ws, principal)
        except ConnectionClosed:
            pass

    # ------------------------------------------------------------------ for the sessions

    def dropped(self, peer: Peer) -> None:
        """A peer's queue overflowed (hub/peer.py): it is closed as a slow consumer."""
        self.stats.slow_consumers_dropped += 1
        log.warning("%s dropped: slow consumer (%d messages queued)", peer.principal.name,
                    peer.queue.qsize())

    def now(self) -> float:
        return self.clock()

    async def send_and_close(self, ws: ServerConnection, exc: WireError, code: int) -> None:
        """Send the error ``exc`` and close with ``code``: before the peer has a writer."""
        self.stats.error_sent(exc.code)
        with contextlib.suppress(ConnectionClosed):
            await ws.send(wire.encode(wire.error_from(exc)))
        # A close reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5: control frames <= 125).
        await ws.close(code, exc.message.encode()[:120].decode("utf-8", "ignore"))

    def reply_error(self, peer: Peer, exc: WireError) -> None:
        self.stats.error_sent(exc.code)
        log.info("error to %s: %s %s", peer.principal.name, exc.code.value, exc.message)
        peer.send(wire.error_from(exc))

    @staticmethod
    async def receive(ws: ServerConnection, timeout: float | None) -> str | bytes:
        if timeout is None:
            return await ws.recv()
        async with asyncio.timeout(timeout):
            return await ws.recv()

    def parse(self, text: str | bytes, accept: frozenset[MessageType]) -> dict[str, Any]:
        return wire.parse_message(text, max_bytes=self.config.max_message_bytes, accept=accept)

    # ------------------------------------------------------------------ publishing

    async def publish(self, group: Sequence[tuple[Sequence[EventWrite], Sequence[bool]]],
                      *, elsewhere: bool = False) -> None:
        """For the new events of one stored group, batch by batch and in order: update the
        floor and fan them out; after each batch, the state of each terminal it touched is
        broadcast once. Called by the ingest's publisher (hub/ingest.py) in storage order,
        which is thus the fan-out order (protocol.md §5: clients get events in the order the
        hub stored them). The frames are serialized once for all clients (hub/fanout.py).
        ``elsewhere``: events another instance stored (hub/cluster_hooks.py), counted apart
        from this instance's own."""
        now = self.now()
        fan_out = GroupFanOut(self.clients, self.config.client_queue) \
            if self.clients.connected else None
        stats = self.stats
        for writes, inserted in group:
            # Counted per batch (a C-level count), not per event: the metrics' counters.
            new_events = inserted.count(True)
            stats.duplicates += len(inserted) - new_events
            if elsewhere:
                stats.events_from_elsewhere += new_events
            else:
                stats.events_stored += new_events
            touched: dict[str, TerminalState] = {}
            for write, new in zip(writes, inserted, strict=True):
                if not new:
                    continue
                state = self.floor.apply(write.frame, now)
                if write.acked_seq is not None and write.source == state.terminal_id:
                    state.acked_seq = max(state.acked_seq, write.acked_seq)
                touched[state.terminal_id] = state
                if fan_out is not None and fan_out.event(write.frame, write.data_text):
                    await fan_out.flush()
            if fan_out is not None:
                for state in touched.values():
                    if fan_out.terminal(state):
                        await fan_out.flush()
        if fan_out is not None:
            await fan_out.flush()

    def emit_hub_event(self, name: str, terminal_id: str, data: dict[str, Any]) -> None:
        """Store and publish a hub event with the next batch of the ingest; not awaited:
        connection bookkeeping stays off the event path (its state is broadcast when the
        event is published, or at once if it cannot be stored)."""
        if self._hub_seq >= self._hub_seq_end:
            self._hub_seq = self.store.reserve_hub_seqs(_HUB_SEQ_BLOCK)
            self._hub_seq_end = self._hub_seq + _HUB_SEQ_BLOCK
        seq = self._hub_seq
        self._hub_seq += 1
        frame = wire.event(
            event_id=f"{wire.HUB_SOURCE}-{seq}", seq=seq, channel="alerts",
            terminal_id=terminal_id, name=name, timestamp=wire.format_timestamp(self.now()),
            data=data,
        )
        # acked_seq keeps the hub's counter even when old hub events are pruned.
        done = self.ingest.submit([EventWrite(frame, wire.HUB_SOURCE, acked_seq=seq,
                                              data_text=data_text(frame["data"]))])

        def settled(fut: asyncio.Future[list[bool]]) -> None:
            if fut.cancelled():
                return
            if fut.exception() is not None:
                # The connection it reports on carries on; the floor state still says it.
                log.error("cannot store %s for %s: %s", name, terminal_id, fut.exception())
                self.clients.broadcast_terminal(self.floor.get(terminal_id, self.now()))

        done.add_done_callback(settled)

