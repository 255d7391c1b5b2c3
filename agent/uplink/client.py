"""The uplink: streams the outbox to the hub over WSS and carries remote actions back.

One connection at a time to ``/ws/terminal`` (docs/protocol.md §4):

- Handshake: ``Authorization: Bearer <token>`` (read again before every attempt, so a token
  file replaced on disk is picked up; registered as a secret so no log line shows it), then
  ``hello`` with the outbox's last seq and the hub's ``welcome``. The hub's ``ackedSeq`` is
  applied to the outbox at once (``ack``; or ``resync`` when the hub knows more seqs than this
  file ever assigned, i.e. the file was replaced) and sending resumes at ``ackedSeq + 1``,
  also when that is below the outbox cursor (a hub restored from a backup gets back the
  events the file still holds). A ``welcome`` for another terminal or protocol is refused.
  An ``ack`` counts only up to the last event sent (:meth:`SendWindow.on_ack`).
- Sending (:mod:`agent.uplink.window`): events are read from the outbox through a read-only
  connection of our own, in batches of ``uplink.batch``, never more than ``uplink.window``
  sent and unacknowledged; each comes as its ready ``event`` frame text
  (``OutboxReader.pending_frames``: the stored data text is spliced in, not decoded and
  encoded again). The connection offers no permessage-deflate (small frames: per-frame CPU,
  not bytes, bounds the drain rate). The cumulative ``ack`` frees the window; the outbox
  cursor is advanced by a separate task that coalesces acks (the hub acks every event; one
  fsync per ``ack_persist_delay_s``, a second by default, is enough: the hub's ``welcome``
  carries its own ``ackedSeq`` after a crash).
- New events: :meth:`Uplink.notify_new_events` (callable from any thread) wakes the sender.
  A bounded fallback timer (``fallback_poll_s``) re-reads the outbox in case a wake-up is ever
  missed; it is a safety net, not the mechanism.
- Backpressure: ``ws.send`` waits while the socket's buffer is full; only the uplink waits.
  The outbox is the buffer, so a slow or absent hub never blocks the line owner or the
  pipeline and never loses an event.
- Reconnect forever with jittered exponential backoff (``min_reconnect_delay_s`` doubling up
  to ``uplink.reconnect_max_delay_s``, each delay drawn from [d/2, d]), whatever the failure:
  network error, HTTP 401/403 (a token not yet or no longer valid), TLS verification failure,
  a refused ``hello``, a close by the hub. The reason is logged and kept as ``last_error``;
  every attempt after the first counts in ``slot_agent_uplink_reconnects_total``. The backoff
  starts over only after a ``welcome`` on a connection that was not then closed for a policy
  reason (1008, 4002 replaced, 4003 version), so two agents sharing one token do not
  flip-flop at full speed. (A hand-written loop, not ``async for connect()``: that one gives up
  on 401/403 and TLS errors, reconnects at once after a connection that opened and closed,
  and keeps the first token for ever.)
- Several hub URLs (``uplink.url`` as a list: instances serving one floor from one
  database, docs/scaling.md): each attempt uses the next URL in turn after the one that
  failed or whose connection ended, at once; the backoff waits only once every URL was tried
  since the last wait (or the last good session). Resuming on another instance is the same
  as resuming on the same hub after a restart: ``hello`` / ``welcome`` with ``ackedSeq``.
- Heartbeats: WebSocket pings every ``heartbeat_interval_s``; no pong within
  ``heartbeat_timeout_s`` drops the connection (then: reconnect).

Remote actions (:mod:`agent.uplink.dispatch`): each ``action`` frame is handed to the actions
handler on a task of its own (the reader keeps reading). An ``action`` frame that
``api.decode`` refuses (a missing field, a lone surrogate...) never reaches the
handler; it is answered ``rejected`` with the parser's code (``bad_message: ...``) when its id
can be echoed. The ``actionAck`` and ``actionResult`` frames go through :meth:`reply`, a queue
the sender drains before events.
What happens to a result when the connection is down:

1. it waits in that queue (at most ``max_pending_replies``, oldest dropped first) and is sent
   right after the next ``welcome``; a frame is removed from the queue only once ``send``
   returned, so a frame may be sent twice (the hub ignores a repeated answer to a settled
   action);
2. independently, the actions module has already stored the result with the action id in the
   outbox (a repeated action id is answered from there) and committed an ``actionCompleted``
   event, which reaches the hub with the other events whatever happens to the connection or
   to this process.

:meth:`stop` closes with 1001 (going away), persists the last ack and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from agent import __version__
from agent.config import ConfigError, Problem, UplinkConfig, hub_urls
from agent.ops.logs import register_secret
from agent.ops.metrics import AgentMetrics
from agent.retry import jittered_doubling
from agent.store.outbox import Outbox, OutboxReader
from agent.uplink.dispatch import ActionDispatch, ActionHandler
from agent.uplink.tls import client_ssl_context
from agent.uplink.window import SendWindow, WorkerCalls
from api import decode, messages, wire
from api.wire import CloseCode, ErrorCode

__all__ = ["ActionHandler", "Uplink", "UplinkError", "UplinkState"]

log = logging.getLogger("agent.uplink.client")

#: The hub's acks are persisted to the outbox at most this often (one fsync for the acks of
#: that time; :meth:`agent.uplink.window.SendWindow.ack_loop`).
ACK_PERSIST_DELAY_S = 1.0

#: Closes after which the backoff does not start over (see the module docstring).
_POLICY_CLOSES = frozenset({CloseCode.POLICY_VIOLATION, CloseCode.REPLACED,
                            CloseCode.UNSUPPORTED_VERSION})


class UplinkError(Exception):
    """The hub refused or broke the session (``hello`` refused, protocol error)."""


@dataclass(frozen=True, slots=True)
class UplinkState:
    """A snapshot for diagnostics and the control socket."""

    url: str
    connected: bool  # a session is established (after ``welcome``)
    last_error: str | None  # why the last connection or attempt ended
    last_error_at: float | None  # epoch seconds
    last_ack_at: float | None  # epoch seconds of the last ``ack`` from the hub
    hub_acked_seq: int  # highest seq the hub acknowledged (this run)
    sent_seq: int  # highest seq sent on the current connection
    in_flight: int  # events sent and not yet acknowledged
    reconnects: int  # attempts after the first one
    sessions: int  # welcomes received
    pending_replies: int  # action frames waiting for a connection


def _describe(exc: BaseException) -> str:
    """One line saying why a connection failed, fit for a log and ``last_error``."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        why = {401: "token missing or unknown", 403: "token not allowed here"}.get(status, "")
        return f"hub refused the connection: HTTP {status}" + (f" ({why})" if why else "")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: hub certificate not trusted: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, ConnectionClosed):
        rcvd = exc.rcvd
        if rcvd is None:
            return "connection lost (no close frame)"
        return f"closed by the hub: {rcvd.code} {rcvd.reason}".rstrip()
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConfigError):
        return f"token: {exc.problems[0] if exc.problems else exc}"
    if isinstance(exc, OSError):
        return f"network: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


class Uplink:
    """The WSS client of one terminal. Run with :meth:`start` (or ``await run()``).

    ``outbox`` is the writer (the uplink calls only ``ack``, ``resync``, ``last_seq`` and
    ``path`` on it, from a worker thread); ``token`` returns the bearer token and is called
    before every attempt (the daemon passes ``lambda: read_token(config)``); ``actions``
    handles ``action`` frames (``Actions.handle``; None: every action is rejected).
    Raises :class:`ConfigError` for a URL that is not allowed (``ws://`` without
    ``allow_insecure``) or a TLS file that cannot be loaded.
    """

    def __init__(
        self,
        config: UplinkConfig,
        *,
        terminal_id: str,
        outbox: Outbox,
        token: Callable[[], str],
        actions: ActionHandler | None = None,
        metrics: AgentMetrics | None = None,
        version: str = __version__,
        ssl_context: ssl.SSLContext | None = None,
        min_reconnect_delay_s: float = 1.0,
        open_timeout_s: float = 10.0,
        fallback_poll_s: float = 5.0,
        ack_persist_delay_s: float = ACK_PERSIST_DELAY_S,
        max_message_bytes: int = 1 << 20,
        max_pending_replies: int = 1000,
        rng: Callable[[], float] = random.random,
        machine_status: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        urls = hub_urls(config)
        if not urls:
            raise ConfigError([Problem("uplink.url", "not set: there is no hub to connect to")])
        self._ssl: ssl.SSLContext | None = None
        for url in urls:
            if url.startswith("ws://"):
                if not config.allow_insecure:
                    raise ConfigError([Problem("uplink.url", "ws:// sends the token and events "
                                                             "in clear text; use wss:// or set "
                                                             "uplink.allow_insecure: true")])
            elif url.startswith("wss://"):
                if self._ssl is None:
                    self._ssl = (ssl_context if ssl_context is not None
                                 else client_ssl_context(config))
            else:
                raise ConfigError([Problem("uplink.url", f"must start with wss:// (or ws://), "
                                                         f"got {url[:60]!r}")])
        self.config = config
        self._urls = urls
        #: The hub URL of the current (or next) attempt.
        self.url = urls[0]
        self.terminal_id = terminal_id
        self._outbox = outbox
        self._token = token
        self._metrics = metrics
        self._version = version
        self._min_delay = min_reconnect_delay_s
        self._open_timeout = open_timeout_s
        self._max_bytes = max_message_bytes
        self._rng = rng
        #: The machine's state reported in ``hello`` (protocol.md §4): the hub shows the
        #: real lock state from the first moment, before any event.
        self._machine_status = machine_status

        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop_event = asyncio.Event()
        self._stopping = False
        self._ws: ClientConnection | None = None
        self._calls = WorkerCalls()
        self._window = SendWindow(config, outbox, self._calls, metrics=metrics,
                                  fallback_poll_s=fallback_poll_s,
                                  max_pending_replies=max_pending_replies,
                                  ack_persist_delay_s=ack_persist_delay_s)
        self._dispatch = ActionDispatch(terminal_id, actions, self.reply)

        self._connected = False
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._reconnects = 0
        self._sessions = 0
        self._good_session = False  # the last session restarts the backoff (see _session)

    # ------------------------------------------------------------------ public

    @property
    def state(self) -> UplinkState:
        window = self._window
        return UplinkState(
            url=self.url, connected=self._connected, last_error=self._last_error,
            last_error_at=self._last_error_at, last_ack_at=window.last_ack_at,
            hub_acked_seq=window.hub_acked, sent_seq=window.sent,
            in_flight=len(window.in_flight), reconnects=self._reconnects,
            sessions=self._sessions, pending_replies=len(window.replies),
        )

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> asyncio.Task[None]:
        """Run :meth:`run` on a task of the running loop; :meth:`stop` ends it."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="uplink")
        return self._task

    def notify_new_events(self) -> None:
        """New events were committed: wake the sender. Safe from any thread, never blocks."""
        loop = self._loop
        if loop is None:
            return  # not running yet: the first session reads everything pending anyway
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._window.wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to wake
                loop.call_soon_threadsafe(self._window.wake.set)

    def reply(self, frame: dict[str, Any]) -> None:
        """Queue an ``actionAck``/``actionResult`` (or ``pong``) frame for the hub."""
        self._window.reply(frame)

    async def stop(self, timeout: float = 10.0, *, cancel_actions: bool = True) -> None:
        """Close with 1001 (going away), persist the last ack and return.

        ``cancel_actions``: cancel actions still running (agent shutdown: their ids stay
        "running" in the outbox and :meth:`Actions.recover_unfinished` closes them at the next
        start). Pass False when this uplink is replaced by a new one (configuration reload):
        the actions finish, store their result and commit their ``actionCompleted`` event;
        only their direct ``actionResult`` is not sent (the hub gets the event).
        """
        self._stopping = True
        self._stop_event.set()
        self._window.wake.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    await ws.close(CloseCode.GOING_AWAY, "agent stopping")
        task = self._task
        if task is not None and task is not asyncio.current_task():
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if cancel_actions:
            await self._dispatch.cancel_all()

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Connect, stream and reconnect until :meth:`stop`."""
        self._loop = asyncio.get_running_loop()
        reader = await self._calls.run(Outbox.open_reader, self._outbox.path)
        delays = jittered_doubling(self._min_delay, self.config.reconnect_max_delay_s, self._rng)
        attempts = 0
        index = 0  # of the URL being tried (several hub instances: tried in turn)
        untried = len(self._urls)  # URLs left before the next wait
        try:
            while not self._stopping:
                self.url = self._urls[index]
                if attempts > 0:
                    self._reconnects += 1
                    if self._metrics is not None:
                        self._metrics.uplink_reconnects.inc()
                attempts += 1
                self._good_session = False
                try:
                    await self._session(reader)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._note_error(_describe(exc))
                    log.debug("uplink: connection ended", exc_info=True)
                if self._stopping:
                    break
                if self._good_session:
                    delays = jittered_doubling(self._min_delay,
                                               self.config.reconnect_max_delay_s, self._rng)
                    untried = len(self._urls)  # a fresh round after a good session
                # The next hub instance at once; a wait only once each was tried.
                index = (index + 1) % len(self._urls)
                self.url = self._urls[index]  # the state names the next attempt's URL
                untried -= 1
                if untried > 0:
                    log.info("uplink: trying %s next (%s)", self._urls[index],
                             self._last_error)
                    continue
                untried = len(self._urls)
                delay = next(delays)
                log.info("uplink: reconnecting in %.2f s (%s)", delay, self._last_error)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stop_event.wait()
        finally:
            self._set_connected(False)
            self._ws = None
            await asyncio.shield(self._window.persist_ack())
            await self._calls.drain()
            reader.close()

    def _note_error(self, text: str) -> None:
        self._last_error = text
        self._last_error_at = time.time()
        log.warning("uplink: %s", text)

    def _set_connected(self, value: bool) -> None:
        self._connected = value
        if self._metrics is not None:
            self._metrics.uplink_connected.set(1 if value else 0)

    async def _session(self, reader: OutboxReader) -> None:
        """One connection, from handshake to close (or failure). Sets ``_good_session``
        (restart the backoff) when it had a ``welcome`` and did not end in a policy close,
        however it ended: a clean close, a network error, a close with 1011 or 4001..."""
        token = self._token()
        register_secret(token)
        try:
            ws = await connect(
                self.url, additional_headers={"Authorization": f"Bearer {token}"},
                ssl=self._ssl if self.url.startswith("wss://") else None,
                open_timeout=self._open_timeout,
                ping_interval=self.config.heartbeat_interval_s,
                ping_timeout=self.config.heartbeat_timeout_s, close_timeout=5.0,
                max_size=self._max_bytes, user_agent_header=f"slot-agent/{self._version}",
                # No permessage-deflate: the frames are small and the CPU per frame, not
                # the bytes, bounds the drain rate (docs/protocol.md §1, docs/performance.md).
                compression=None,
            )
        except InvalidURI as exc:
            raise UplinkError(f"bad uplink.url: {exc}") from None
        self._ws = ws
        welcomed = False
        try:
            if self._stopping:
                return
            last_seq = await self._calls.run(lambda: reader.last_seq)
            machine = self._machine_status() if self._machine_status is not None else None
            await ws.send(wire.encode(wire.hello(self.terminal_id, self._version, last_seq,
                                                 machine)))
            async with asyncio.timeout(self._open_timeout):
                welcome = await self._await_welcome(ws)
            await self._calls.run(self._window.apply_welcome, welcome.acked_seq)
            welcomed = True
            self._sessions += 1
            self._set_connected(True)
            log.info("uplink: connected to %s (hub has up to seq %d, we have %d)", self.url,
                     self._window.hub_acked, last_seq)
            await self._stream(ws, reader)
            if not self._stopping:  # the hub closed the connection cleanly
                # (the receiver's iteration ended, so the connection is CLOSED: close_exc
                # holds the codes; a hand-made ConnectionClosed without rcvd_then_sent
                # fails websockets' own assertion)
                self._note_error(_describe(ws.protocol.close_exc))
        finally:
            self._set_connected(False)
            self._ws = None
            self._window.in_flight.clear()
            await ws.close()
            rcvd = ws.protocol.close_rcvd
            self._good_session = welcomed and (rcvd is None or rcvd.code not in _POLICY_CLOSES)

    async def _await_welcome(self, ws: ClientConnection) -> messages.Welcome:
        async with contextlib.aclosing(self._messages(ws)) as frames:
            async for msg in frames:
                if isinstance(msg, messages.Welcome):
                    if msg.terminal_id != self.terminal_id or msg.protocol != wire.PROTOCOL_VERSION:
                        # Its ackedSeq is not about this outbox: applying it could mark events
                        # acknowledged that this hub never stored.
                        raise UplinkError(f"hub welcomed terminal {msg.terminal_id!r} with "
                                          f"protocol {msg.protocol}; this is "
                                          f"{self.terminal_id!r}, protocol "
                                          f"{wire.PROTOCOL_VERSION}")
                    return msg
                if isinstance(msg, messages.Error):
                    raise UplinkError(f"hub refused hello: {msg.code.value}: {msg.message}")
                if isinstance(msg, messages.Ping):
                    await ws.send(wire.encode(wire.pong(msg.id)))
        raise ws.protocol.close_exc  # closed before a welcome (the iteration ended: CLOSED)

    async def _stream(self, ws: ClientConnection, reader: OutboxReader) -> None:
        """Send, receive and persist acks until the connection ends (or fails)."""
        tasks = [
            asyncio.create_task(self._receive_loop(ws), name="uplink-receive"),
            asyncio.create_task(self._window.send_loop(ws, reader), name="uplink-send"),
            asyncio.create_task(self._window.ack_loop(), name="uplink-ack"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._window.persist_ack()
        for task in done:
            exc = task.exception()
            if exc is not None:
                raise exc

    # ------------------------------------------------------------------ receiving

    async def _messages(self, ws: ClientConnection
                        ) -> AsyncGenerator[messages.ToTerminal, None]:
        """The hub's frames, read as typed messages (:func:`api.decode.from_hub_to_terminal`).
        A bad one is skipped: the terminal path has no ``error`` message towards the hub, so
        it is logged, and a refused action is still answered, so its sender is not left
        waiting."""
        async for text in ws:
            try:
                yield decode.from_hub_to_terminal(text, max_bytes=self._max_bytes)
            except wire.WireError as exc:
                log.warning("uplink: ignored a bad frame from the hub: %s", exc)
                self._dispatch.refuse(text, exc)

    async def _receive_loop(self, ws: ClientConnection) -> None:
        async with contextlib.aclosing(self._messages(ws)) as frames:
            async for msg in frames:
                self._received(msg)

    def _received(self, msg: messages.ToTerminal) -> None:
        """One frame from the hub, in a session."""
        match msg:
            case messages.AckUpTo(up_to=up_to):
                self._window.on_ack(up_to)
            case messages.Action():
                self._dispatch.start(msg)
            case messages.Ping(id=request_id):
                self.reply(wire.pong(request_id))
            case messages.Error(code=code, message=message, id=ref):
                log.warning("uplink: hub error %s for %s: %s", code.value, ref or "-", message)
                if code is ErrorCode.INTERNAL:
                    # The hub did not store an event: start over from its ackedSeq.
                    raise UplinkError(f"hub error {code.value}: {message}")
            case messages.Welcome():
                log.warning("uplink: unexpected second welcome ignored")
            case _:
                pass  # an alert ack (AckAlert, ...): not for a terminal
