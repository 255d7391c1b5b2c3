"""The daemon: runs the agent's parts until SIGTERM.

The parts are built and wired by :func:`agent.assembly.assemble` (the same wiring the test
rigs and the benchmarks use); the daemon orders their start and stop around its own work
(``agentStarted``, the card reader, the control socket, metrics, systemd).

Start order, each step only after the previous one worked:

1. the outbox (SQLite; a damaged file is moved aside and an ``outboxFault`` alert raised);
2. the pipeline (interpreter + outbox writer thread), then ``agentStarted`` (version, config
   hash) and the results of actions a previous run left unfinished (``failed``,
   ``interrupted``);
3. the line owner: in a process of its own (:class:`agent.line.process.LineProcess`) for a
   line the configuration names (uart, tcp, pty), so no work of this process delays a
   poll; on a thread of this process for a transport a test or the demo hands in. Either
   reopens the transport through the same factory when it fails. Then the card reader, when
   one is configured (a reader that does not open is logged, not fatal);
4. the remote actions and the uplink (when ``uplink.url`` is set);
5. metrics over HTTP, the control socket (for ``diag``), the status and watchdog tasks;
6. ``READY=1`` to systemd: the outbox is open and the line runs.

Stop (SIGTERM, SIGINT): ``STOPPING=1``; the line owner finishes the poll in flight and
stops; ``agentStopping`` is queued and the pipeline commits everything; the uplink gets a
bounded moment to deliver what is left, then closes with a close frame (1001); the outbox is
closed. Reload (SIGHUP): ``RELOADING=1``, re-read the file; a file with errors is refused as a
whole; the log level, the poll cadence and the uplink settings are applied; every other change
is logged as needing a restart (:func:`agent.config.reloadable_diff`); ``READY=1``.

The watchdog is fed from the event loop, and only while the line owner's cycle counter
advances and the pipeline thread is alive: a stuck event loop, a hung serial read or a dead
thread all stop the pings, and systemd restarts the service (``WatchdogSec=``).

A line process that dies (killed, crashed) is not waited for: its machine links are reported
down, the daemon stops in order and :meth:`Daemon.run` returns :data:`EXIT_LINE_FAILED`, so
systemd restarts the whole service at once (``Restart=on-failure``), as for any failure.

Size: over 500 lines on purpose: start-up, reload and shutdown are ordered sequences over the
same parts (line, pipeline, outbox, uplink, control socket, metrics), read top to bottom in
one place; what each part does lives in its own module.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any

from agent import __version__
from agent.assembly import Agent, LineSeam, LineStartError, assemble
from agent.card_poller import CardPoller
from agent.config import (
    Config,
    ConfigError,
    config_hash,
    load_config,
    read_token,
    reloadable_diff,
)
from agent.derive.meters import meter_name
from agent.line.commands import CommandKind, CommandRejectedError, MachineCommand
from agent.line.interface import Line
from agent.line.messages import TransportFactory
from agent.line.process import open_line
from agent.ops.control import ControlServer
from agent.ops.diag_line import priority_facts
from agent.ops.diagnostics import MAIN_METERS, LineFacts, outbox_facts
from agent.ops.heap import HeapSweeper
from agent.ops.logs import register_secret, set_level
from agent.ops.metrics import AgentMetrics, stop_server
from agent.ops.progress import Progress, Snapshot, status_text
from agent.store.outbox import Outbox
from agent.store.pipeline import Pipeline
from agent.uplink.actions import Actions
from agent.uplink.client import Uplink
from api.capture import build_header as build_capture_header
from api.events import Event, StoredEvent, utc_timestamp
from drivers.card_reader import CardReader
from servicekit.sdnotify import Notifier

__all__ = ["EXIT_LINE_FAILED", "Daemon", "DaemonError"]

log = logging.getLogger("agent.daemon")

#: How often the STATUS line, the outbox gauges and the progress line are refreshed.
STATUS_INTERVAL_S = 2.0
#: Acknowledged events older than the retention are pruned this often.
PRUNE_INTERVAL_S = 3600.0
#: On stop, how long the uplink may take to deliver the last events (agentStopping).
DRAIN_TIMEOUT_S = 3.0
#: The longest ``slot-agent capture`` (seconds): the frames are held in memory meanwhile.
MAX_CAPTURE_S = 600
#: How long ``diag`` over the control socket waits for a fresh meter read.
DIAG_READ_TIMEOUT_S = 5.0
#: What :meth:`Daemon.run` returns after the line process died: not 0, so systemd's
#: ``Restart=on-failure`` restarts the service.
EXIT_LINE_FAILED = 3


class DaemonError(Exception):
    """The daemon cannot start (the serial port does not open, the outbox is unusable...)."""


#: The line the configuration names. With this factory the line owner runs in a process of
#: its own (the factory is pickled to it by name).
default_transport: TransportFactory = open_line


class _Tally:
    """Counts of committed events for the progress line (pipeline thread writes)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_event: Counter[str] = Counter()
        self.coin_in_cents = 0
        self.games = 0

    def __call__(self, stored: list[StoredEvent]) -> None:
        with self.lock:
            for item in stored:
                self.by_event[item.event.name] += 1
                if item.event.name == "betPlaced":
                    amount = item.event.data.get("amount")
                    if isinstance(amount, int):
                        self.coin_in_cents += amount
                    # one betPlaced may cover several games (one meter delta); games is null
                    # when the games meter was not read
                    games = item.event.data.get("games")
                    self.games += games if isinstance(games, int) and games > 0 else 1


class Daemon:
    """One agent. ``await run()`` returns the exit code once stopped.

    ``transport_factory`` opens the serial line (tests pass an in-memory pair);
    ``line_process`` runs the line owner in a child process (:mod:`agent.line.process`)
    rather than on a thread; by default it does exactly when ``transport_factory`` is the
    default one (a picklable factory can be passed with ``line_process=True``).
    ``notifier`` talks to systemd (inert when ``$NOTIFY_SOCKET`` is unset); ``progress``
    prints the human status line (None: nothing).
    """

    def __init__(
        self,
        config: Config,
        *,
        config_path: str | None = None,
        transport_factory: TransportFactory = default_transport,
        notifier: Notifier | None = None,
        progress: Progress | None = None,
        metrics: AgentMetrics | None = None,
        clock: Callable[[], float] = time.time,
        line_process: bool | None = None,
        heap: HeapSweeper | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path or config.source or None
        self._transport_factory = transport_factory
        self._line_process = (transport_factory is default_transport if line_process is None
                              else line_process)
        self.notifier = notifier if notifier is not None else Notifier.from_env()
        self.progress = progress
        self.metrics = metrics if metrics is not None else AgentMetrics()
        #: Freezes start-up's objects and sweeps the free lists (agent/ops/heap.py): given by
        #: ``slot-agent run`` only, as a freeze holds for the whole interpreter.
        self._heap = heap
        self._clock = clock
        self.tally = _Tally()
        #: The wired parts (outbox, pipeline, line, actions, uplink); None before the start.
        self.agent: Agent | None = None
        self.card_poller: CardPoller | None = None
        self._retired_uplinks: list[Uplink] = []  # replaced on reload, actions may still run
        self.control: ControlServer | None = None
        self.metrics_port: int | None = None
        self._metrics_server: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._reload_requested = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._watchdog_cycles = -1
        self._exit_code = 0
        #: Set once READY=1 was sent (tests and the demo wait on it).
        self.ready = threading.Event()
        self.reloads: list[tuple[list[str], list[str]]] = []
        #: The last snapshot, taken just before the outbox closed (the demo's summary).
        self.final_snapshot: Snapshot | None = None

    # ------------------------------------------------------------------ the parts

    @property
    def outbox(self) -> Outbox | None:
        return self.agent.outbox if self.agent is not None else None

    @property
    def pipeline(self) -> Pipeline | None:
        return self.agent.pipeline if self.agent is not None else None

    @property
    def line(self) -> Line | None:
        return self.agent.line if self.agent is not None else None

    @property
    def actions(self) -> Actions | None:
        return self.agent.actions if self.agent is not None else None

    @property
    def uplink(self) -> Uplink | None:
        return self.agent.uplink if self.agent is not None else None

    # ------------------------------------------------------------------ control (any thread)

    def request_stop(self) -> None:
        """Ask the daemon to stop; safe from any thread and from a signal handler."""
        loop = self._loop
        if loop is None:
            self._stop.set()  # not running yet: run() stops right after starting
            return
        loop.call_soon_threadsafe(self._stop.set)

    def request_reload(self) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._reload_requested.set)

    # ------------------------------------------------------------------ life cycle

    async def run(self, *, install_signals: bool = True) -> int:
        """Start everything, serve until stopped, stop in order. Returns 0, or
        :data:`EXIT_LINE_FAILED` when the line process died."""
        self._loop = asyncio.get_running_loop()
        if install_signals:
            self._install_signals()
        try:
            await self._start()
            self.notifier.ready(self._status_line())
            self.ready.set()
            log.info("slot-agent running", extra={
                "terminal": self.config.terminal_id, "version": __version__,
                "config_hash": config_hash(self.config), "metrics_port": self.metrics_port})
            if self._heap is not None:
                self._heap.freeze()
                self._tasks.append(asyncio.create_task(self._heap_loop(), name="heap"))
            while not self._stop.is_set():
                reload_wait = asyncio.ensure_future(self._reload_requested.wait())
                stop_wait = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait({reload_wait, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                for fut in (reload_wait, stop_wait):
                    fut.cancel()
                if self._reload_requested.is_set() and not self._stop.is_set():
                    self._reload_requested.clear()
                    await self.reload()
        finally:
            await self._shutdown()
        return self._exit_code

    def _install_signals(self) -> None:
        loop = self._loop
        assert loop is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_requested.set)

    async def _start(self) -> None:
        config = self.config
        if config.uplink.url is not None:
            # Read (and mask) the token before anything can log it; a missing token is a
            # start-up error rather than a reconnect loop that can never succeed.
            register_secret(await asyncio.to_thread(read_token, config))
        self.agent = agent = await asyncio.to_thread(
            assemble, config, line=LineSeam(self._transport_factory, self._line_process),
            metrics=self.metrics, clock=self._clock, listeners=[self.tally, self._committed],
            on_line_exit=self._line_died)
        outbox, pipeline = agent.outbox, agent.pipeline
        agent.start_pipeline()
        now = self._clock()
        pipeline.emit(Event("agentStarted", utc_timestamp(now), {
            "version": __version__, "configHash": config_hash(config)}))
        if outbox.recovered_from is not None:
            log.error("the outbox was damaged and moved aside; started a fresh one",
                      extra={"moved_to": outbox.recovered_from})
            pipeline.emit(Event("outboxFault", utc_timestamp(now), {
                "reason": "corrupt", "movedTo": outbox.recovered_from,
                "detail": "the outbox file failed its integrity check at start and was "
                          "moved aside; events not yet delivered from it are in that file"}))

        try:
            await asyncio.to_thread(agent.start_line)
        except LineStartError as exc:
            raise DaemonError(str(exc)) from exc
        if config.card_reader.port is not None:
            await asyncio.to_thread(self._start_card_reader, config)

        actions = agent.start_actions(diagnostics_report=self.status)
        recovered = await asyncio.to_thread(actions.recover_unfinished)
        if recovered:
            log.warning("finished %d action(s) a previous run left running, as failed",
                        recovered)
        if config.uplink.url is not None:
            agent.start_uplink(config)

        if config.metrics.enabled:
            try:
                server, thread = self.metrics.serve(config.metrics.address, config.metrics.port)
            except OSError as exc:
                log.error("metrics not served on %s:%d: %s", config.metrics.address,
                          config.metrics.port, exc)
            else:
                self._metrics_server = (server, thread)
                self.metrics_port = server.server_port
        if config.control_socket:
            control = ControlServer(config.control_socket, {
                "status": lambda params: self.status(),
                "diag": lambda params: self.diag_facts(),
                "capture": self.capture_frames,
            })
            try:
                await asyncio.to_thread(control.start)
            except Exception as exc:  # diag then falls back to asking nobody: say why
                log.error("control socket %s not served: %s", config.control_socket, exc)
            else:
                self.control = control
        self._tasks = [
            asyncio.create_task(self._status_loop(), name="status"),
            asyncio.create_task(self._prune_loop(), name="prune"),
        ]
        if self.notifier.watchdog_ping_interval() is not None:
            self._tasks.append(asyncio.create_task(self._watchdog_loop(), name="watchdog"))

    def _line_died(self, how: str) -> None:
        """The line process ended unasked (its reader thread): stop with a failure status,
        so systemd restarts the service (the line process already reported the links down)."""
        log.error("stopping: the line process %s; exiting with status %d for a restart",
                  how, EXIT_LINE_FAILED)
        self._exit_code = EXIT_LINE_FAILED
        self.request_stop()

    def _start_card_reader(self, config: Config) -> None:
        """The card reader is optional: a reader that does not open (or is lost later) is
        logged and reopened with backoff by the poller, never fatal (money is tracked
        without it; only player sessions need it)."""
        assert self.pipeline is not None
        card = config.card_reader
        assert card.port is not None
        url = card.port.removeprefix("serial:").removeprefix("pty:")
        if url.startswith("tcp://"):
            url = "socket://" + url[len("tcp://"):]  # ASCII lines: no 9-bit encoding here

        def open_reader() -> CardReader:
            return CardReader(url, pattern=card.pattern, removal_pattern=card.removal_pattern,
                              player_prefixes=card.player_prefixes,
                              employee_prefixes=card.employee_prefixes,
                              baudrate=card.baudrate)

        self.card_poller = CardPoller(open_reader, self.pipeline.put,
                                      address=config.machines[0].address, clock=self._clock)
        self.card_poller.start()

    def _machine_status(self) -> dict[str, Any]:
        """What ``hello`` reports (:meth:`agent.assembly.Agent.machine_status`)."""
        if self.agent is None:
            return {"hostLocked": False, "gameLocked": False}
        return self.agent.machine_status()

    def _committed(self, stored: list[StoredEvent]) -> None:
        """Pipeline listener (its thread): label ``slot_agent_machine_info`` with the
        identity discovery learnt (the assembly then wakes the uplink's sender)."""
        for item in stored:
            if item.event.name == "machineIdentified":
                self._machine_identified(item.event.data)

    def _machine_identified(self, data: Mapping[str, Any]) -> None:
        """Publish a ``machineIdentified`` event's identity as the machine-info metric."""
        denomination = data.get("denomination")
        self.metrics.set_machine(
            address=int(data.get("address") or 0),
            sas_version=str(data.get("sasVersion") or ""),
            serial_number=str(data.get("serialNumber") or ""),
            game_id=str(data.get("gameId") or ""),
            denomination_cents=denomination if isinstance(denomination, int) else 0,
        )

    async def _shutdown(self) -> None:
        self.notifier.stopping("stopping")
        log.info("slot-agent stopping")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.control is not None:
            await asyncio.to_thread(self.control.close)
        if self.card_poller is not None:
            await asyncio.to_thread(self.card_poller.stop)
        if self.line is not None:
            await asyncio.to_thread(self.line.stop)  # finishes the poll in flight
        pipeline = self.pipeline
        if pipeline is not None:
            reason = "lineFailed" if self._exit_code == EXIT_LINE_FAILED else "signal"
            pipeline.emit(Event("agentStopping", utc_timestamp(self._clock()), {
                "version": __version__, "reason": reason}))
            await asyncio.to_thread(pipeline.wait_idle, 10.0)
        if self.uplink is not None:
            await self._drain_uplink()
            with contextlib.suppress(Exception):
                self.final_snapshot = self.snapshot()
            await self.uplink.stop()
        for retired in self._retired_uplinks:
            await retired.stop()  # cancels an action that still runs on a replaced uplink
        if pipeline is not None:
            await asyncio.to_thread(pipeline.stop)
        # the line owner thread may have replaced the transport it started with (reopen); a
        # line process closes its own
        if self.agent is not None:
            self.agent.close_line()
        if self._metrics_server is not None:
            await asyncio.to_thread(stop_server, *self._metrics_server)
        if self.final_snapshot is None:
            with contextlib.suppress(Exception):
                self.final_snapshot = self.snapshot()
        if self.outbox is not None:
            await asyncio.to_thread(self.outbox.close)
        if self.progress is not None:
            with contextlib.suppress(OSError):
                self.progress.close()
        self.notifier.close()
        log.info("slot-agent stopped")

    async def _drain_uplink(self) -> None:
        """Give a connected uplink a bounded moment to deliver the last events."""
        uplink, outbox = self.uplink, self.outbox
        if uplink is None or outbox is None or not uplink.connected:
            return
        last = outbox.last_seq
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and uplink.connected:
            if uplink.state.hub_acked_seq >= last:
                return
            uplink.notify_new_events()
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ reload

    async def reload(self) -> tuple[list[str], list[str]] | None:
        """Re-read the config file and apply what can change; None if it was refused."""
        self.notifier.reloading("reloading the configuration")
        try:
            if self.config_path is None:
                log.warning("reload requested but the configuration has no file to re-read")
                return None
            try:
                new = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                log.error("configuration reload refused; keeping the running configuration",
                          extra={"problems": [str(p) for p in exc.problems
                                              if p.severity == "error"]})
                return None
            applied, restart = reloadable_diff(self.config, new)
            old = self.config
            self.config = new
            if "logging.level" in applied:
                set_level(new.logging.level)
                log.debug("debug logging on")  # shows at once that the new level applies
            if "poll.interval_ms" in applied and self.line is not None:
                self.line.set_poll_interval(new.poll.interval_ms)  # from the next cycle
            if any(k.startswith("uplink.") for k in applied):
                await self._replace_uplink(old, new)
            if restart:
                # Keep running with the old values of what needs a restart: only the
                # reloadable parts of the new file are in effect.
                self.config = _merge_reloadable(old, new, applied)
            self.reloads.append((applied, restart))
            log.info("configuration reloaded", extra={
                "applied": applied, "restart_required": restart,
                "config_hash": config_hash(new)})
            if restart:
                log.warning("these settings changed and need a restart (systemctl restart "
                            "slot-agent): %s", ", ".join(restart),
                            extra={"restart_required": restart})
            return applied, restart
        finally:
            self.notifier.ready(self._status_line())

    async def _replace_uplink(self, old: Config, new: Config) -> None:
        agent = self.agent
        assert agent is not None
        if agent.uplink is not None:
            # Actions still running finish: they store their result and commit their
            # actionCompleted event (the hub learns the outcome from that event). The old
            # uplink is kept until shutdown, which cancels what may still run on it.
            await agent.uplink.stop(cancel_actions=False)
            self._retired_uplinks.append(agent.uplink)
            agent.uplink = None
        if new.uplink.url is not None:
            try:
                register_secret(await asyncio.to_thread(read_token, new))
                agent.start_uplink(new)
            except ConfigError as exc:
                log.error("uplink not restarted: %s", exc)

    # ------------------------------------------------------------------ periodic tasks

    def snapshot(self) -> Snapshot:
        with self.tally.lock:
            by_event = dict(self.tally.by_event)
            coin_in = self.tally.coin_in_cents
            games = self.tally.games
        link = "starting"
        if self.line is not None:
            links = self.line.links_up().values()  # not status(): no query to the child
            link = "up" if links and all(links) else "down"
        uplink = "off"
        if self.uplink is not None:
            state = self.uplink.state
            uplink = "connected" if state.connected else (
                f"connecting ({state.last_error})" if state.last_error else "connecting")
        depth = 0
        if self.outbox is not None:
            last, acked = self.outbox.seqs()  # the writer's own: no query on the event loop
            depth = max(0, last - acked)
        return Snapshot(link=link, events=sum(by_event.values()),
                        games=games, coin_in_cents=coin_in,
                        outbox_depth=depth, uplink=uplink, by_event=by_event)

    def _status_line(self) -> str:
        return status_text(self.snapshot())

    async def _status_loop(self) -> None:
        while True:
            snap = self.snapshot()
            self.notifier.status(status_text(snap))
            if self.progress is not None:
                try:
                    self.progress.update(snap)
                except OSError as exc:  # the terminal went away (closed pipe): go on quietly
                    log.warning("status line disabled: %s", exc)
                    self.progress = None
            outbox = self.outbox
            if outbox is not None:
                with contextlib.suppress(Exception):
                    last, acked = outbox.seqs()
                    # Everything acknowledged (nearly always): no query, no worker thread.
                    depth, oldest = ((0, None) if last <= acked
                                     else await asyncio.to_thread(outbox.backlog))
                    self.metrics.set_outbox(depth, None if oldest is None
                                            else max(0.0, self._clock() - oldest))
            await asyncio.sleep(STATUS_INTERVAL_S)

    async def _prune_loop(self) -> None:
        while True:
            if self.outbox is not None:
                try:
                    deleted = await asyncio.to_thread(self.outbox.prune)
                    if deleted:
                        log.info("pruned %d acknowledged events past retention", deleted)
                except Exception as exc:
                    log.error("outbox prune failed: %s", exc)
            await asyncio.sleep(PRUNE_INTERVAL_S)

    async def _heap_loop(self) -> None:
        heap = self._heap
        assert heap is not None
        while True:
            await asyncio.sleep(heap.every)
            heap.sweep()

    async def _watchdog_loop(self) -> None:
        interval = self.notifier.watchdog_ping_interval()
        assert interval is not None
        while True:
            if self._alive():
                self.notifier.watchdog()
            else:
                log.error("watchdog not fed: the line owner or the pipeline is stuck")
            await asyncio.sleep(interval)

    def _alive(self) -> bool:
        """The line owner completed a cycle since the last check and the pipeline runs."""
        line, pipeline = self.line, self.pipeline
        if line is None or pipeline is None or not line.running or not pipeline.running:
            return False
        cycles = line.cycles
        advanced = cycles != self._watchdog_cycles
        self._watchdog_cycles = cycles
        return advanced

    # ------------------------------------------------------------------ control socket

    def status(self) -> dict[str, Any]:
        """Everything a person needs to see what the daemon does (control ``status``)."""
        uplink = (dataclasses.asdict(self.uplink.state) if self.uplink is not None else None)
        snap = self.snapshot()
        return {
            "terminalId": self.config.terminal_id,
            "version": __version__,
            "configHash": config_hash(self.config),
            "line": self.line.status() if self.line is not None else None,
            "outbox": dataclasses.asdict(self.outbox.stats()) if self.outbox else None,
            "recoveredFrom": self.outbox.recovered_from if self.outbox else None,
            "uplink": uplink,
            "events": dict(snap.by_event),
            "metricsPort": self.metrics_port,
            "reloads": [{"applied": a, "restartRequired": r} for a, r in self.reloads],
        }

    def diag_facts(self) -> dict[str, Any]:
        """The facts ``slot-agent diag`` builds its report from (control ``diag``)."""
        lines: list[dict[str, Any]] = []
        if self.line is not None:
            status = self.line.status()
            for machine in status["machines"].values():
                lines.append(self._line_facts(status, machine).to_json())
        outbox = outbox_facts(self.config.outbox.path, terminal_id=self.config.terminal_id)
        if self.outbox is not None:
            outbox["recoveredFrom"] = self.outbox.recovered_from
        uplink: dict[str, Any] | None = None
        if self.uplink is not None:
            state = self.uplink.state
            uplink = {"url": state.url,
                      "state": "connected" if state.connected else
                      f"not connected ({state.last_error or 'connecting'})",
                      "connected": state.connected,
                      "reconnects": state.reconnects, "hubAckedSeq": state.hub_acked_seq}
        return {"lines": lines, "outbox": outbox, "uplink": uplink}

    def capture_frames(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Control ``capture``: every frame on the line for ``params["seconds"]`` (blocks this
        control thread that long; the line owner only appends to a buffer meanwhile)."""
        seconds = params.get("seconds")
        if (not isinstance(seconds, int | float) or isinstance(seconds, bool)
                or not 0 < seconds <= MAX_CAPTURE_S):
            raise ValueError(f"seconds must be a number above 0 and at most {MAX_CAPTURE_S}")
        line = self.line
        if line is None:
            raise RuntimeError("the line is not running")
        started = self._clock()
        machines = {key: {"linkUp": bool(m.get("linkUp")), "identity": m.get("machine") or {}}
                    for key, m in line.status()["machines"].items()}
        line.start_capture()
        try:
            threading.Event().wait(float(seconds))
        finally:
            taken = line.stop_capture()
        header = build_capture_header(
            terminal_id=self.config.terminal_id, port=self.config.serial.port,
            addresses=[m.address for m in self.config.machines],
            sync_address=self.config.poll.sync_address,
            started_at=started, seconds=float(seconds), agent_version=__version__,
            rte=any(m.rte for m in self.config.machines),
            link_down_after=self.config.poll.link_down_after,
            dropped=int(taken.get("dropped", 0)))
        header["machines"] = machines
        if taken.get("error"):
            header["error"] = taken["error"]
        return {"header": header, "frames": taken.get("frames", [])}

    def _line_facts(self, status: Mapping[str, Any], machine: Mapping[str, Any]) -> LineFacts:
        line = self.line
        assert line is not None
        address = int(machine["address"])
        facts = LineFacts(port=self.config.serial.port, address=address, port_opened=True)
        facts.general_poll_ok = bool(machine["linkUp"])
        error = status.get("error")
        if error and not facts.general_poll_ok:
            # The line itself failed (TCP refused, adapter gone, permission): that is the
            # cause to report, not the cable or the address of a machine never reached.
            facts.port_opened, facts.port_error = False, f"in the running agent: {error}"
        if not facts.general_poll_ok:
            facts.general_poll_error = (status.get("error") or
                                        f"link down since {machine.get('since') or 'start'}")
        identity: dict[str, Any] = dict(machine.get("machine") or {})
        meters: dict[str, int] = dict(machine.get("lastMeters") or {})
        if facts.general_poll_ok:
            identity.update(_command_data(line, address, CommandKind.MACHINE_INFO))
            meters.update(_command_data(line, address, CommandKind.READ_METERS).get("meters")
                          or {})
        facts.link_up = facts.general_poll_ok
        facts.sas_version = identity.get("sasVersion") or None
        facts.serial_number = identity.get("serialNumber")
        if identity.get("gameId") is not None:
            facts.machine_info = {
                "gameId": identity.get("gameId"), "additionalId": identity.get("additionalId"),
                "denominationCode": None, "denominationCents": identity.get("denomination"),
                "maxBet": identity.get("maxBet"), "paytableId": identity.get("paytableId"),
                "basePercent": identity.get("basePercent")}
        by_code = {int(k, 16): int(v) for k, v in meters.items()}
        facts.credits = by_code.get(0x0C)
        facts.meters = {meter_name(c): by_code[c] for c in MAIN_METERS if c in by_code}
        facts.ignored_polls = [f"LP {p}" for p in machine.get("ignoredPolls", [])]
        polls: dict[str, int] = dict(machine.get("polls") or {})
        counters = {k: int(v) for k, v in polls.items()}
        counters["polls"] = sum(polls.values())
        counters["badFrames"] = sum(int(v) for v in (machine.get("badFrames") or {}).values())
        facts.counters = counters
        facts.last_frames = [{"dir": f["dir"], "hex": f["hex"], "at": f.get("at", "")}
                             for f in machine.get("lastFrames", [])][-16:]
        facts.priority = priority_facts(status.get("priority"))
        return facts


def _command_data(line: Line, address: int,
                  kind: CommandKind) -> dict[str, Any]:
    """Run a command through the line owner's queue and wait (control thread only)."""
    try:
        future = line.submit(MachineCommand(kind, address))
        result = future.result(timeout=DIAG_READ_TIMEOUT_S)
    except (CommandRejectedError, FutureTimeoutError) as exc:
        log.info("diag: %s not answered: %s", kind.value, exc)
        return {}
    return dict(result.data) if result.ok else {}


def _merge_reloadable(old: Config, new: Config, applied: list[str]) -> Config:
    """``old`` with the parts of ``new`` that were applied (log level, poll cadence, uplink)."""
    interval = new.poll.interval_ms if "poll.interval_ms" in applied else old.poll.interval_ms
    return dataclasses.replace(
        old,
        logging=dataclasses.replace(old.logging, level=new.logging.level),
        poll=dataclasses.replace(old.poll, interval_ms=interval),
        uplink=new.uplink,
    )
