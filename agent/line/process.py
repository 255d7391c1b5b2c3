"""The line owner in a process of its own, so SAS timing does not share an interpreter lock.

A thread is not enough: while the uplink drains a backlog, the asyncio thread encodes and
sends thousands of frames a second and the line-owner thread waits for the GIL, so general
polls leave up to ~16 ms late (docs/performance.md, "Poll timing isolation"). In a process of
its own the line owner has an interpreter to itself; the daemon meets it only through one
socket pair carrying pickled messages, as it met the thread through queues.

Daemon side, :class:`LineProcess` offers what the daemon, the actions and diagnostics use of
:class:`agent.line.owner.LineOwner` (``start``, ``stop``, ``submit``, ``request_reads``,
``set_poll_interval``, ``status``, ``idle``, ``running``, ``cycles``, ``skipped_slots``). A
reader thread dispatches what the child sends:

- observations to ``on_observation`` (the pipeline's ``put``), in the order the line produced
  them;
- command results to the futures ``submit`` returned (``running()`` once the child started
  the command; ``cancel()`` asks the child, so a command cancelled at its deadline never
  starts on the line, as with the thread);
- poll counts, latencies, schedule deviations, bad frames and link states to the daemon's
  :class:`agent.ops.metrics.AgentMetrics` (the ``slot_agent_*`` metrics live in the daemon, which
  serves them);
- log records to the daemon's logging (same handlers, same format, same journal).

Child side (``python -m agent.line.child``, agent/line/child.py): it opens the transport from
the configuration with the factory the daemon names (a picklable, module-level callable),
runs an ordinary :class:`~agent.line.owner.LineOwner` and a sender thread, so the line thread never
blocks on the socket. The child ignores SIGINT and SIGHUP (the daemon decides); SIGTERM, or
the daemon going away (end of file on the socket), stops it in order, like ``stop``: the poll
in flight is finished first.

When the child dies unexpectedly (killed, crashed), the reader thread fails the commands in
flight, reports every machine link that was up as down (``LinkDown``, reason "the line
process exited: ...") and calls ``on_exit``; the daemon then stops in order with a failure
status and systemd restarts the service (docs/operations.md).

Size: over 500 lines on purpose: one class, the proxy, whose start, stop, submit, queries
and reader thread all guard the same child and the same futures; split, each part would
need the others' locks.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from agent.config import Config
from agent.line.capture import CaptureError
from agent.line.commands import CommandRejectedError, CommandResult, MachineCommand
from agent.line.interface import OpenCommands
from agent.line.messages import (
    EXIT_LINE_CRASHED,
    STOP_GRACE_S,
    Answer,
    CancelAnswer,
    CancelQuery,
    CaptureAnswer,
    CaptureQuery,
    Finished,
    IdleAnswer,
    IdleQuery,
    Init,
    Log,
    OpenFailed,
    Query,
    Reads,
    Ready,
    SetInterval,
    SetLogLevel,
    Started,
    StatusAnswer,
    StatusQuery,
    Stop,
    Stopped,
    Submit,
    Tick,
    TransportFactory,
)
from agent.observations import LinkDown, LinkUp, Observation
from agent.ops.metrics import AgentMetrics
from agent.reads import ReadRequest
from drivers.base import Transport

__all__ = ["LineProcess", "LineProcessError", "child_environment", "open_line"]

log = logging.getLogger(__name__)

#: How long ``start`` waits for the child to open the line and say so.
START_TIMEOUT_S = 30.0
#: How long ``status``, ``idle`` and a cancel wait for the child's answer.
QUERY_TIMEOUT_S = 2.0
#: glibc's arena limit for the line process (docs/performance.md, "Footprint: what the line
#: process grew"). With the default (eight per core), each of the child's threads that calls
#: ``malloc`` (the line thread, the sender, the receive loop) gets an arena of its own, and
#: each holds its own free space: the blocks above pymalloc's 512 bytes (frames, pickled
#: messages) freed in one arena are not reused by another, so the arenas grew by about 0.2 MB
#: a minute under an accelerated load while the main heap had 1.5 MB free. One arena shares
#: that free space; the threads do not contend for it, as they allocate holding the GIL.
MALLOC_ARENAS = "1"


class LineProcessError(Exception):
    """The line process did not start (the line did not open, the child did not answer)."""


def child_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The line process's environment: the daemon's, with ``MALLOC_ARENA_MAX`` set to
    :data:`MALLOC_ARENAS`, also where the daemon's is set (the unit gives the daemon, with its
    nine threads, two: systemd/slot-agent.service). glibc reads it when the process starts;
    other C libraries ignore it."""
    env = dict(os.environ if environ is None else environ)
    env["MALLOC_ARENA_MAX"] = MALLOC_ARENAS
    return env


def open_line(config: Config) -> Transport:
    """The serial line ``config.serial`` names (the daemon's default transport factory)."""
    from agent.line.port import transport_options
    from drivers import open_transport

    port = config.serial.port
    return open_transport(port, **transport_options(port, config.serial))


# ---------------------------------------------------------------------- the daemon's side


class _RemoteFuture(Future[CommandResult]):
    """A command's future in the daemon. ``cancel()`` asks the child, which alone knows
    whether the command already started on the line (machine_commands: a command cancelled
    at its deadline must not start)."""

    def __init__(self, owner: LineProcess, command_id: int) -> None:
        super().__init__()
        self._owner = owner
        self._command_id = command_id

    def cancel(self) -> bool:
        if self.done() or self.running():
            return super().cancel()  # the base class answers: nothing to ask the child
        if not self._owner._cancel_in_child(self._command_id):
            return False
        return super().cancel()


@dataclass
class _Waiting:
    done: threading.Event = field(default_factory=threading.Event)
    answer: Answer | None = None


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "closed its end of the socket"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    if returncode == EXIT_LINE_CRASHED:
        return f"exited with status {returncode} (the line owner crashed)"
    return f"exited with status {returncode}"


class LineProcess:
    """The line owner of ``config`` run by ``python -m agent.line.child``.

    ``on_observation`` is called on the reader thread for every observation, in order; it
    must not block (give it ``Pipeline.put``). ``transport_factory`` opens the line in the
    child (and reopens it after a failure); it is pickled, so it must be a module-level
    callable (or a picklable object), and the child imports its module with the daemon's
    ``sys.path``. ``on_exit`` is called on the reader thread with a description ("killed by
    SIGKILL") when the child ends without being asked to. Observation times come from the
    child's ``time.time``.
    """

    def __init__(
        self,
        config: Config,
        on_observation: Callable[[Observation], None],
        *,
        metrics: AgentMetrics | None = None,
        transport_factory: TransportFactory = open_line,
        on_exit: Callable[[str], None] | None = None,
        frame_log_size: int = 64,
        max_pending_commands: int = 32,
        start_timeout: float = START_TIMEOUT_S,
        python: str = sys.executable,
    ) -> None:
        if not config.machines:
            raise ValueError("the line owner needs at least one machine")
        self.config = config
        self._emit = on_observation
        self._metrics = metrics
        self._factory = transport_factory
        self._on_exit = on_exit
        self._frame_log_size = frame_log_size
        self._max_pending = max_pending_commands
        self._start_timeout = start_timeout
        self._python = python
        self._addresses = {m.address for m in config.machines}
        self._interval_ms = config.poll.interval_ms
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        # submitted, not finished
        self._open: OpenCommands[_RemoteFuture] = OpenCommands(self._addresses,
                                                               max_pending_commands)
        self._waiting: dict[int, _Waiting] = {}  # queries sent, not answered
        self._links: dict[int, bool] = {}
        self._conn: Connection | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._stopping = False
        self._ended = threading.Event()
        self._log_level = logging.getLogger().getEffectiveLevel()
        self._last_status: dict[str, Any] | None = None
        self.transport_name = config.serial.port
        self.cycles = 0
        self.skipped_slots = 0
        #: How the child ended, once it did ("exited with status 0", "killed by SIGKILL").
        self.exit_description: str | None = None
        self.error: str | None = None

    # ------------------------------------------------------------------ life cycle

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return (self._reader is not None and not self._ended.is_set()
                and not self._stopping)

    def start(self) -> None:
        """Start the child and wait until it opened the line; ``LineProcessError`` when the
        line does not open or the child does not answer within ``start_timeout``."""
        if self._proc is not None:
            raise RuntimeError("line process already started")
        try:
            pickle.dumps(self._factory)
        except Exception as exc:  # PicklingError, or AttributeError for a local object
            raise LineProcessError(
                f"the transport factory {self._factory!r} cannot be sent to the line process "
                f"(it must be a module-level callable or a picklable object): {exc}") from exc
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        child_fd = theirs.fileno()
        args = [self._python, "-m", "agent.line.child", "--fd", str(child_fd),
                "--line", self.config.serial.port]
        try:
            # A session of its own: a Ctrl-C or a hangup on a terminal reaches the daemon only,
            # which stops the child in order; and where the kernel groups CPU time by session
            # (autogroup), the line is a group of its own that sleeps most of the time, so a
            # busy daemon cannot delay its wake-ups. (The drivers open ttys with O_NOCTTY.)
            self._proc = subprocess.Popen(args, pass_fds=(child_fd,), stdin=subprocess.DEVNULL,
                                          start_new_session=True, env=child_environment())
        except OSError as exc:
            ours.close()
            raise LineProcessError(f"cannot start the line process: {exc}") from exc
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        self._conn = conn
        try:
            # The child unpickles the factory and the configuration with the daemon's path.
            conn.send(list(sys.path))
            conn.send(Init(self.config, self._factory, self._log_level,
                            self._frame_log_size, self._max_pending))
            first = self._first_message(conn)
        except (OSError, pickle.PicklingError, LineProcessError) as exc:
            self._abandon()
            if isinstance(exc, LineProcessError):
                raise
            raise LineProcessError(f"cannot start the line process: {exc}") from exc
        self.transport_name = first.transport
        if self._metrics is not None:
            self._metrics.set_line_priority(first.priority.get("asked", ""),
                                            first.priority.get("got", ""))
        log.info("line process started", extra={"pid": first.pid, "port": first.transport})
        self._reader = threading.Thread(target=self._read_loop, name="line-process-reader",
                                        daemon=True)
        self._reader.start()

    def _first_message(self, conn: Connection) -> Ready:
        deadline = time.monotonic() + self._start_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not conn.poll(remaining):
                raise LineProcessError(
                    f"the line process did not open {self.config.serial.port} within "
                    f"{self._start_timeout:g} s")
            try:
                message = conn.recv()
            except EOFError:
                code: int | None = None
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = self._proc.wait(5) if self._proc is not None else None
                raise LineProcessError(
                    f"the line process {_describe_exit(code)} before it opened the line "
                    "(see its output above)") from None
            if isinstance(message, Log):
                self._log(message)  # what the child said while it opened the line
            elif isinstance(message, OpenFailed):
                raise LineProcessError(message.error)
            elif isinstance(message, Ready):
                return message
            else:
                raise LineProcessError(f"unexpected first message from the line process: "
                                       f"{type(message).__name__}")

    def _abandon(self) -> None:
        """A start that failed: the child goes, whatever state it is in."""
        proc, conn = self._proc, self._conn
        if conn is not None:
            conn.close()
        if proc is not None:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._ended.set()

    def close(self) -> None:
        """Nothing to release here: the child closes its own transport."""

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the child to finish the poll in flight and stop; wait for it (killed after
        ``timeout`` + a grace). Commands still queued fail."""
        with self._lock:
            already = self._stopping
            self._stopping = True
        if self._reader is None:
            self._fail_open("the line owner stopped")
            return
        if not already and not self._ended.is_set():
            with contextlib.suppress(OSError):
                self._send(Stop(timeout))
        if not self._ended.wait(timeout + STOP_GRACE_S):
            log.warning("the line process did not stop within %.1f s: killed", timeout)
            proc = self._proc
            if proc is not None:
                with contextlib.suppress(OSError):
                    proc.kill()
            self._ended.wait(STOP_GRACE_S + 5.0)
        self._fail_open("the line owner stopped")

    # ------------------------------------------------------------------ inputs (any thread)

    def submit(self, command: MachineCommand) -> Future[CommandResult]:
        """Queue a remote command ahead of routine polls; the future ends with its result."""
        if self._stopping:
            raise CommandRejectedError("the line owner is stopping")
        if self._ended.is_set() or self._reader is None:
            raise CommandRejectedError("the line process is not running")
        command_id = next(self._ids)
        future = _RemoteFuture(self, command_id)
        if not self._open.admit(command_id, command, future):
            return future
        try:
            self._send(Submit(command_id, command))
        except OSError:
            self._finish(future, CommandResult(False, "the line process is not running"))
        return future

    def request_reads(self, reads: Iterable[ReadRequest]) -> None:
        """Reads the interpreter asked for (called by the pipeline after each commit)."""
        batch = tuple(reads)
        if batch and self.running:
            with contextlib.suppress(OSError):
                self._send(Reads(batch))

    def set_poll_interval(self, interval_ms: int) -> None:
        """A new cadence (SIGHUP), as :meth:`agent.line.owner.LineOwner.set_poll_interval`."""
        if interval_ms < 1:
            raise ValueError(f"the poll interval must be at least 1 ms, not {interval_ms}")
        self._interval_ms = interval_ms
        with contextlib.suppress(OSError):
            self._send(SetInterval(interval_ms))

    def status(self) -> dict[str, Any]:
        """The child line owner's snapshot for ``diag`` (``pid`` added); when the child does
        not answer, the last snapshot it gave, marked not running."""
        answer = self._ask(StatusQuery(next(self._ids)), only_running=True)
        if isinstance(answer, StatusAnswer):
            status = dict(answer.status, pid=self.pid)
            with self._lock:
                self._last_status = status
            return status
        with self._lock:
            last = dict(self._last_status) if self._last_status is not None else None
        if last is None:
            last = {"transport": self.transport_name, "intervalMs": self._interval_ms,
                    "machines": {str(a): {"address": a, "linkUp": False, "since": None}
                                 for a in sorted(self._addresses)}}
        machines = {key: dict(value, linkUp=self._links.get(int(key), False))
                    for key, value in last["machines"].items()}
        error = self.error or ("the line process stopped" if self._ended.is_set()
                               else "the line process does not answer")
        return {**last, "machines": machines, "pid": self.pid, "running": False,
                "cycles": self.cycles, "skippedSlots": self.skipped_slots, "error": error}

    def links_up(self) -> dict[int, bool]:
        """From the link changes the line process reported (each is an observation), so
        nothing is asked of the child: the daemon's ``STATUS=`` line reads this every 2 s,
        and a :meth:`status` query there cost both processes a round trip and the line
        thread its lock while the child built its whole ``diag`` snapshot."""
        return {address: self._links.get(address, False) for address in sorted(self._addresses)}

    def start_capture(self, limit: int | None = None) -> None:
        """Start recording frames in the child's line owner (``slot-agent capture``)."""
        answer = self._ask(CaptureQuery(next(self._ids), True), only_running=True)
        if not isinstance(answer, CaptureAnswer):
            raise CaptureError("the line process does not answer")
        if answer.error is not None:
            raise CaptureError(answer.error)

    def stop_capture(self) -> dict[str, Any]:
        """The frames the child recorded since :meth:`start_capture`."""
        answer = self._ask(CaptureQuery(next(self._ids), False), only_running=True)
        if not isinstance(answer, CaptureAnswer):
            return {"frames": [], "dropped": 0, "error": "the line process does not answer"}
        return answer.result

    def idle(self) -> bool:
        """Nothing queued for the line, no job running or waiting (tests, ``diag``)."""
        answer = self._ask(IdleQuery(next(self._ids)), only_running=True)
        return isinstance(answer, IdleAnswer) and answer.idle

    # ------------------------------------------------------------------ the socket

    def _send(self, message: object) -> None:
        conn = self._conn
        if conn is None:
            raise OSError("the line process is not started")
        with self._send_lock:
            conn.send(message)

    def _ask(self, query: Query, *, only_running: bool) -> Answer | None:
        """The child's answer to ``query``, or None when it gives none in time."""
        if only_running and not self.running:
            return None
        waiting = _Waiting()
        with self._lock:
            self._waiting[query.request_id] = waiting
        try:
            self._send(query)
            if not waiting.done.wait(QUERY_TIMEOUT_S):
                return None
            return waiting.answer
        except OSError:
            return None
        finally:
            with self._lock:
                self._waiting.pop(query.request_id, None)

    def _cancel_in_child(self, command_id: int) -> bool:
        if self._ended.is_set():
            return False
        answer = self._ask(CancelQuery(next(self._ids), command_id), only_running=False)
        return isinstance(answer, CancelAnswer) and answer.cancelled

    # ------------------------------------------------------------------ the reader thread

    def _read_loop(self) -> None:
        conn = self._conn
        assert conn is not None
        error: str | None = None
        try:
            while True:
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    break
                if isinstance(message, Stopped):
                    error = message.error
                    continue  # the end of file follows
                self._dispatch(message)
        except Exception:  # a bug here must not leave the daemon believing the line runs
            log.exception("line process reader failed")
            error = "the daemon's reader of the line process failed"
        finally:
            self._child_ended(error)

    def _dispatch(self, message: object) -> None:
        match message:
            case Observation():
                if isinstance(message, LinkUp | LinkDown):
                    self._links[message.address] = isinstance(message, LinkUp)
                self._emit(message)
            case Tick():
                self._tick(message)
            case Log():
                self._log(message)
            case Started(command_id=command_id):
                started = self._open.get(command_id)
                if started is not None:
                    with contextlib.suppress(RuntimeError):  # it ended meanwhile
                        started.set_running_or_notify_cancel()
            case Finished(command_id=command_id, result=result):
                finished = self._open.get(command_id)
                if finished is not None:
                    self._finish(finished, result)
            case StatusAnswer() | IdleAnswer() | CancelAnswer() | CaptureAnswer():
                with self._lock:
                    waiting = self._waiting.get(message.request_id)
                if waiting is not None:
                    waiting.answer = message
                    waiting.done.set()
            case _:
                log.error("unexpected message from the line process: %r", message)

    def _tick(self, tick: Tick) -> None:
        self.cycles, self.skipped_slots = tick.cycles, tick.skipped_slots
        metrics = self._metrics
        if metrics is not None:
            for address, result, count in tick.polls:
                metrics.polls.labels(address=str(address), result=result).inc(count)
            for latency in tick.latencies:
                metrics.poll_latency.observe(latency)
            for deviation in tick.deviations:
                metrics.record_poll_deviation(deviation)
            for address, kind, count in tick.bad_frames:
                metrics.bad_frames.labels(address=str(address), kind=kind).inc(count)
            for address, up in tick.links:
                metrics.set_link_up(address, up)
        level = logging.getLogger().getEffectiveLevel()
        if level != self._log_level:  # a reload changed it: the child filters the same way
            self._log_level = level
            with contextlib.suppress(OSError):
                self._send(SetLogLevel(level))

    @staticmethod
    def _log(message: Log) -> None:
        record = logging.makeLogRecord(message.fields)
        logging.getLogger(record.name).handle(record)

    def _child_ended(self, error: str | None) -> None:
        proc = self._proc
        returncode: int | None = None
        if proc is not None:
            try:
                returncode = proc.wait(STOP_GRACE_S + 5.0)
            except subprocess.TimeoutExpired:  # closed the socket but lingers: end it
                proc.kill()
                returncode = proc.wait(5.0)
        if self._conn is not None:
            self._conn.close()
        how = _describe_exit(returncode)
        self.exit_description = how
        with self._lock:
            expected = self._stopping
            waiting = list(self._waiting.values())
        for item in waiting:
            item.done.set()  # no answer will come
        if expected:
            self.error = error
            self._ended.set()
            self._fail_open("the line owner stopped")
            log.info("line process stopped (%s)", how)
            return
        reason = f"the line process {how}" + (f": {error}" if error else "")
        self.error = reason
        self._ended.set()
        log.error("%s; the machine links are down until it runs again", reason,
                  extra={"pid": self.pid})
        self._fail_open(reason)
        at = time.time()
        for address in sorted(self._addresses):
            if self._links.get(address):
                self._links[address] = False
                if self._metrics is not None:
                    self._metrics.set_link_up(address, False)
                self._emit(LinkDown(at=at, address=address, reason=reason))
        if self._on_exit is not None:
            self._on_exit(how)

    def _fail_open(self, reason: str) -> None:
        for future in self._open.pending():
            self._finish(future, CommandResult(False, reason))

    @staticmethod
    def _finish(future: Future[CommandResult], result: CommandResult) -> None:
        with contextlib.suppress(Exception):  # InvalidStateError: it ended meanwhile
            if not future.done():
                future.set_result(result)
