"""One wiring of an agent: line -> pipeline (interpreter) -> outbox -> uplink, and back.

The daemon (:mod:`agent.daemon`), the in-process test rigs and the benchmarks all run the
same parts connected the same way; :func:`assemble` is the one place that connects them:

- the line owner's observations go to :meth:`Pipeline.put`, and the meter reads the
  interpreter asks for go back to :meth:`Line.request_reads`;
- every commit wakes the sender of the uplink that runs at that moment (a reload may have
  replaced it), after the caller's own listeners;
- the uplink hands ``action`` frames to :meth:`Actions.handle`, which submits commands to the
  line, emits to the pipeline and stores results in the outbox;
- ``hello`` reports the host and game locks from the pipeline's state
  (:meth:`Agent.machine_status`).

Everything comes from the :class:`agent.config.Config` (terminal id, machines, poll cadence,
outbox path and cap, hub URL list, TLS, actions key), as the daemon has it. The seams a test or
a benchmark needs are the keyword options: how the line is reached (:class:`LineSeam`: the
configured line in a process of its own, the configured line on a thread, an in-memory end),
the clock, the metrics, the interpreter's windows (:class:`Tuning`), the hub token.

The parts are built first and started in stages, because the daemon does work between the
stages (``agentStarted`` is committed before the line opens; the card reader and the actions
of a previous run come before the uplink)::

    agent = assemble(config, line=LineSeam.memory(host_end))
    agent.start()            # start_pipeline() + start_line()
    ...
    agent.close()            # line, pipeline, transport, outbox, in that order

The uplink, on the running asyncio loop: ``agent.start_actions(report)``, then
``agent.start_uplink()``; ``await agent.stop_uplink()`` before :meth:`Agent.close`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.config import Config, read_token
from agent.derive.interpreter import Interpreter
from agent.line.interface import Line
from agent.line.messages import TransportFactory
from agent.line.owner import LineOwner
from agent.line.process import LineProcess, LineProcessError, open_line
from agent.ops.metrics import AgentMetrics
from agent.store.outbox import Outbox
from agent.store.pipeline import Listener, Pipeline
from agent.uplink.actions import Actions
from agent.uplink.client import Uplink
from api.events import StoredEvent
from drivers import Transport

__all__ = ["Agent", "LineSeam", "LineStartError", "Tuning", "assemble"]


class LineStartError(Exception):
    """The line did not start: its transport did not open, or the line process failed."""


@dataclass(frozen=True)
class LineSeam:
    """How the line is reached.

    ``factory`` opens the transport from the configuration: by default the line
    ``serial.port`` names (uart, tcp, pty: :func:`agent.line.process.open_line`); a test
    hands in an in-memory end with :meth:`memory`. ``process``: run the line owner in a
    process of its own (the factory is pickled to it by name, so it must be picklable);
    None: exactly when ``factory`` is the default one (the daemon's rule).
    """

    factory: TransportFactory = open_line
    process: bool | None = None

    @property
    def in_child(self) -> bool:
        return self.factory is open_line if self.process is None else self.process

    @classmethod
    def memory(cls, transport: Transport) -> LineSeam:
        """A transport already open (an in-memory pair's host end), on a thread."""
        return cls(factory=lambda _config: transport, process=False)


@dataclass(frozen=True)
class Tuning:
    """The interpreter's windows, shortened by tests (the defaults are the daemon's)."""

    backlog_window_s: float = 10.0
    ticket_settle_s: float = 10.0


class Agent:
    """The wired parts of one agent. Built by :func:`assemble`; started in stages.

    ``line``, ``actions`` and ``uplink`` are None until their stage started; ``transport``
    is the transport an in-thread line started with (a line process opens its own).
    """

    def __init__(self, config: Config, outbox: Outbox, interpreter: Interpreter,
                 *, seam: LineSeam, metrics: AgentMetrics | None,
                 clock: Callable[[], float], listeners: Sequence[Listener],
                 token: Callable[[], str] | None,
                 on_line_exit: Callable[[str], None] | None) -> None:
        self.config = config
        self.outbox = outbox
        self.interpreter = interpreter
        self.seam = seam
        self.metrics = metrics
        self.clock = clock
        self.pipeline = Pipeline(outbox, interpreter, listeners=[*listeners, self._committed],
                                 metrics=metrics)
        self.line: Line | None = None
        self.transport: Transport | None = None
        self.actions: Actions | None = None
        self.uplink: Uplink | None = None
        self._token = token
        self._on_line_exit = on_line_exit

    # ------------------------------------------------------------------ stages

    def start(self) -> Line:
        """The pipeline, then the line (the stages an agent without an uplink needs)."""
        self.start_pipeline()
        return self.start_line()

    def start_pipeline(self) -> None:
        self.pipeline.start()

    def start_line(self) -> Line:
        """Open the line and start its owner (blocks while it opens); :class:`LineStartError`
        when it does not open."""
        config, seam = self.config, self.seam
        line: Line
        if seam.in_child:
            process = LineProcess(config, self.pipeline.put, metrics=self.metrics,
                                  transport_factory=seam.factory, on_exit=self._on_line_exit)
            try:
                process.start()
            except LineProcessError as exc:
                raise LineStartError(str(exc)) from exc
            line = process
        else:
            try:
                self.transport = seam.factory(config)
            except Exception as exc:
                raise LineStartError(
                    f"cannot open the serial line {config.serial.port}: {exc}") from exc
            # ``reopen``: an unplugged USB adapter or a dropped TCP link is opened again
            # (the port cannot change without a restart, so this configuration is right)
            owner = LineOwner(self.transport, config.machines, config.poll, self.pipeline.put,
                              reopen=lambda: seam.factory(config), metrics=self.metrics,
                              clock=self.clock)
            owner.start()
            line = owner
        self.line = line
        self.pipeline.set_reads_sink(line.request_reads)
        return line

    def start_actions(self, diagnostics_report: Callable[[], Mapping[str, Any]]) -> Actions:
        """Remote actions on the running line (reads ``actions.hmac_key_file``)."""
        line = self.line
        if line is None:
            raise RuntimeError("start the line before the actions")
        self.actions = Actions.from_config(
            self.config, store=self.outbox, submit=line.submit, emit=self.pipeline.emit,
            observe=self.pipeline.put, diagnostics_report=diagnostics_report,
            metrics=self.metrics, clock=self.clock)
        return self.actions

    def make_uplink(self, config: Config | None = None) -> Uplink:
        """An uplink for ``config.uplink`` (this agent's by default; a reload passes the new
        configuration), not started. Raises :class:`agent.config.ConfigError` for a URL or
        TLS file that is not allowed."""
        config = config if config is not None else self.config
        token = self._token if self._token is not None else (lambda: read_token(config))
        return Uplink(config.uplink, terminal_id=config.terminal_id, outbox=self.outbox,
                      token=token, actions=self.actions.handle if self.actions else None,
                      metrics=self.metrics, machine_status=self.machine_status)

    def start_uplink(self, config: Config | None = None) -> Uplink:
        """Make the uplink and run it on the running asyncio loop."""
        self.uplink = self.make_uplink(config)
        self.uplink.start()
        return self.uplink

    async def stop_uplink(self) -> None:
        if self.uplink is not None:
            await self.uplink.stop()

    def close(self) -> None:
        """Stop the line (the poll in flight ends), commit what is queued, close the
        transport and the outbox. Safe after a partial start."""
        if self.line is not None:
            self.line.stop()
        self.pipeline.stop()
        self.close_line()
        self.outbox.close()

    def close_line(self) -> None:
        """Release the line's transport once it stopped: the one the owner ends with (it may
        have reopened it) and the one it started with."""
        if self.line is not None:
            self.line.close()
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.close()

    # ------------------------------------------------------------------ wiring

    def machine_status(self) -> dict[str, Any]:
        """What ``hello`` reports: the host lock the agent holds and the game lock LP 74
        last read (both persisted with its state, so also right after a restart); locked if
        any of its machines is."""
        machines = list(self.pipeline.state.machines.values())
        return {"hostLocked": any(m.host_locked for m in machines),
                "gameLocked": any(m.game_locked for m in machines)}

    def _committed(self, _stored: list[StoredEvent]) -> None:
        """Pipeline listener (its thread): wake the sender of the uplink running now."""
        uplink = self.uplink
        if uplink is not None:
            uplink.notify_new_events()


def assemble(
    config: Config,
    *,
    line: LineSeam | None = None,
    metrics: AgentMetrics | None = None,
    clock: Callable[[], float] = time.time,
    listeners: Sequence[Listener] = (),
    tuning: Tuning | None = None,
    outbox: Outbox | None = None,
    token: Callable[[], str] | None = None,
    on_line_exit: Callable[[str], None] | None = None,
) -> Agent:
    """Open the outbox (``config.outbox``) and build the interpreter and the pipeline; the
    line and the uplink are built by their stages (:class:`Agent`). Blocks on the outbox.

    ``line``: how the line is reached (default: the configured line, in a process of its
    own). ``listeners`` see every commit before the uplink is woken. ``outbox``: one
    already open (a test's faulty one); the agent closes it with the rest. ``token``: the
    hub token (default: read from ``uplink.token_file`` / ``token_env`` before every
    attempt). ``on_line_exit``: called when a line process ends unasked.
    """
    tuning = tuning if tuning is not None else Tuning()
    if outbox is None:
        outbox = Outbox.open(config.outbox.path, terminal_id=config.terminal_id,
                             max_events=config.outbox.max_events,
                             retention_seconds=config.outbox.retention_seconds)
    interpreter = Interpreter(config.terminal_id,
                              rte=any(m.rte for m in config.machines),
                              card_reader=config.card_reader.port is not None,
                              clock_skew_threshold=config.poll.clock_max_skew_s,
                              backlog_window=tuning.backlog_window_s,
                              ticket_settle=tuning.ticket_settle_s)
    return Agent(config, outbox, interpreter, seam=line if line is not None else LineSeam(),
                 metrics=metrics, clock=clock, listeners=listeners, token=token,
                 on_line_exit=on_line_exit)
