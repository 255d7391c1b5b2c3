"""The line owner in a process of its own, so SAS timing does not share an interpreter lock.

A thread is not enough: while the uplink drains a backlog, the asyncio thread encodes and
sends thousands of frames a second and the line-owner thread waits for the GIL, so general
polls leave up to ~16 ms late (docs/performance.md, "Poll timing isolation"). In a process of
its own the line owner has an interpreter to itself; the daemon meets it only through one
socket pair carrying pickled messages, as it met the thread through queues.

Daemon side, :class:`LineProcess` offers what the daemon, the actions and diagnostics use of
:class:`agent.line.LineOwner` (``start``, ``stop``, ``submit``, ``request_reads``,
``set_poll_interval``, ``status``, ``idle``, ``running``, ``cycles``, ``skipped_slots``). A
reader thread dispatches what the child sends:

- observations to ``on_observation`` (the pipeline's ``put``), in the order the line produced
  them;
- command results to the futures ``submit`` returned (``running()`` once the child started
  the command; ``cancel()`` asks the child, so a command cancelled at its deadline never
  starts on the line, as with the thread);
- poll counts, latencies, schedule deviations, bad frames and link states to the daemon's
  :class:`agent.metrics.AgentMetrics` (the ``slot_agent_*`` metrics live in the daemon, which
  serves them);
- log records to the daemon's logging (same handlers, same format, same journal).

Child side (``python -m agent.line_process``, see :func:`main`): it opens the transport from
the configuration with the factory the daemon names (a picklable, module-level callable),
runs an ordinary :class:`~agent.line.LineOwner` and a sender thread, so the line thread never
blocks on the socket. The child ignores SIGINT and SIGHUP (the daemon decides); SIGTERM, or
the daemon going away (end of file on the socket), stops it in order, like ``stop``: the poll
in flight is finished first.

When the child dies unexpectedly (killed, crashed), the reader thread fails the commands in
flight, reports every machine link that was up as down (``LinkDown``, reason "the line
process exited: ...") and calls ``on_exit``; the daemon then stops in order with a failure
status and systemd restarts the service (docs/operations.md).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Literal

from agent.config import Config
from agent.line import LineOwner
from agent.machine_commands import CommandRejectedError, CommandResult, MachineCommand
from agent.metrics import AgentMetrics, BadFrameKind, PollResult
from agent.observations import LinkDown, LinkUp, Observation
from agent.reads import ReadRequest
from drivers.base import Transport

__all__ = [
    "EXIT_LINE_CRASHED",
    "LineProcess",
    "LineProcessError",
    "main",
    "open_line",
]

log = logging.getLogger(__name__)

#: How long ``start`` waits for the child to open the line and say so.
START_TIMEOUT_S = 30.0
#: How long ``status``, ``idle`` and a cancel wait for the child's answer.
QUERY_TIMEOUT_S = 2.0
#: The child ships its metric figures and cycle count this often (when they changed): often
#: enough for a scrape and for diag, rare enough to cost the daemon nothing (bench/footprint.py).
TICK_S = 0.5
#: Once the child was asked to stop, how long it may take beyond the line owner's own stop
#: timeout before it is killed.
STOP_GRACE_S = 2.0
#: Exit status of a child whose line-owner thread died of a bug (sysexits EX_SOFTWARE).
EXIT_LINE_CRASHED = 70
#: Exit status of a child that could not start (the line did not open, a bad handshake).
EXIT_CANNOT_START = 1
#: The child's name in ``ps -e``, ``top`` (``/proc/PID/comm``, at most 15 characters).
CHILD_COMM = "slot-agent-line"
#: How many nice levels the child goes ahead of the daemon when it may (root, or a
#: ``LimitNICE=`` that allows it): on a busy CPU the kernel then runs the line first.
NICE_AHEAD = 5

TransportFactory = Callable[[Config], Transport]


class LineProcessError(Exception):
    """The line process did not start (the line did not open, the child did not answer)."""


def open_line(config: Config) -> Transport:
    """The serial line ``config.serial`` names (the daemon's default transport factory)."""
    from agent.diagnostics import transport_options
    from drivers import open_transport

    port = config.serial.port
    return open_transport(port, **transport_options(port, config.serial))


# ---------------------------------------------------------------------- messages, daemon -> child


@dataclass(frozen=True, slots=True)
class _Init:
    config: Config
    factory: TransportFactory
    log_level: int
    frame_log_size: int
    max_pending_commands: int


@dataclass(frozen=True, slots=True)
class _Submit:
    command_id: int
    command: MachineCommand


@dataclass(frozen=True, slots=True)
class _Reads:
    reads: tuple[ReadRequest, ...]


@dataclass(frozen=True, slots=True)
class _SetInterval:
    interval_ms: int


@dataclass(frozen=True, slots=True)
class _SetLogLevel:
    level: int


@dataclass(frozen=True, slots=True)
class _Query:
    request_id: int
    what: Literal["status", "idle", "cancel"]
    command_id: int = 0


@dataclass(frozen=True, slots=True)
class _Stop:
    timeout: float


# ---------------------------------------------------------------------- messages, child -> daemon


@dataclass(frozen=True, slots=True)
class _Ready:
    transport: str
    pid: int


@dataclass(frozen=True, slots=True)
class _OpenFailed:
    error: str


@dataclass(frozen=True, slots=True)
class _Started:
    command_id: int


@dataclass(frozen=True, slots=True)
class _Finished:
    command_id: int
    result: CommandResult


@dataclass(frozen=True, slots=True)
class _Answer:
    request_id: int
    value: Any


@dataclass(frozen=True, slots=True)
class _Tick:
    """What the line owner counted since the last tick (metrics are shipped, not kept)."""

    cycles: int
    skipped_slots: int
    polls: tuple[tuple[int, str, int], ...] = ()  # (address, result, count)
    latencies: tuple[float, ...] = ()
    deviations: tuple[float, ...] = ()
    bad_frames: tuple[tuple[int, str, int], ...] = ()  # (address, kind, count)
    links: tuple[tuple[int, bool], ...] = ()


@dataclass(frozen=True, slots=True)
class _Log:
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Stopped:
    error: str | None


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
    value: Any = None


_NO_ANSWER = object()


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
    """The line owner of ``config`` run by ``python -m agent.line_process``.

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
        self._open: dict[int, _RemoteFuture] = {}  # submitted, not finished
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
        args = [self._python, "-m", "agent.line_process", "--fd", str(child_fd),
                "--line", self.config.serial.port]
        try:
            # A session of its own: a Ctrl-C or a hangup on a terminal reaches the daemon only,
            # which stops the child in order; and where the kernel groups CPU time by session
            # (autogroup), the line is a group of its own that sleeps most of the time, so a
            # busy daemon cannot delay its wake-ups. (The drivers open ttys with O_NOCTTY.)
            self._proc = subprocess.Popen(args, pass_fds=(child_fd,), stdin=subprocess.DEVNULL,
                                          start_new_session=True)
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
            conn.send(_Init(self.config, self._factory, self._log_level,
                            self._frame_log_size, self._max_pending))
            first = self._first_message(conn)
        except (OSError, pickle.PicklingError, LineProcessError) as exc:
            self._abandon()
            if isinstance(exc, LineProcessError):
                raise
            raise LineProcessError(f"cannot start the line process: {exc}") from exc
        self.transport_name = first.transport
        log.info("line process started", extra={"pid": first.pid, "port": first.transport})
        self._reader = threading.Thread(target=self._read_loop, name="line-process-reader",
                                        daemon=True)
        self._reader.start()

    def _first_message(self, conn: Connection) -> _Ready:
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
            if isinstance(message, _Log):
                self._log(message)  # what the child said while it opened the line
            elif isinstance(message, _OpenFailed):
                raise LineProcessError(message.error)
            elif isinstance(message, _Ready):
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
                self._send(_Stop(timeout))
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
        if command.address not in self._addresses:
            future.set_result(CommandResult(False, f"no machine at address {command.address}"))
            return future
        with self._lock:
            if len(self._open) >= self._max_pending:
                raise CommandRejectedError(
                    f"{len(self._open)} commands already wait for the line")
            self._open[command_id] = future
        future.add_done_callback(lambda _f: self._forget(command_id))
        try:
            self._send(_Submit(command_id, command))
        except OSError:
            self._finish(future, CommandResult(False, "the line process is not running"))
        return future

    def _forget(self, command_id: int) -> None:
        with self._lock:
            self._open.pop(command_id, None)

    def request_reads(self, reads: Iterable[ReadRequest]) -> None:
        """Reads the interpreter asked for (called by the pipeline after each commit)."""
        batch = tuple(reads)
        if batch and self.running:
            with contextlib.suppress(OSError):
                self._send(_Reads(batch))

    def set_poll_interval(self, interval_ms: int) -> None:
        """A new cadence (SIGHUP), as :meth:`agent.line.LineOwner.set_poll_interval`."""
        if interval_ms < 1:
            raise ValueError(f"the poll interval must be at least 1 ms, not {interval_ms}")
        self._interval_ms = interval_ms
        with contextlib.suppress(OSError):
            self._send(_SetInterval(interval_ms))

    def status(self) -> dict[str, Any]:
        """The child line owner's snapshot for ``diag`` (``pid`` added); when the child does
        not answer, the last snapshot it gave, marked not running."""
        answer = self._ask("status")
        if isinstance(answer, dict):
            answer["pid"] = self.pid
            with self._lock:
                self._last_status = answer
            return answer
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

    def idle(self) -> bool:
        """Nothing queued for the line, no job running or waiting (tests, ``diag``)."""
        return self._ask("idle") is True

    # ------------------------------------------------------------------ the socket

    def _send(self, message: object) -> None:
        conn = self._conn
        if conn is None:
            raise OSError("the line process is not started")
        with self._send_lock:
            conn.send(message)

    def _ask(self, what: Literal["status", "idle", "cancel"], command_id: int = 0) -> Any:
        if not self.running and what != "cancel":
            return _NO_ANSWER
        request_id = next(self._ids)
        waiting = _Waiting()
        with self._lock:
            self._waiting[request_id] = waiting
        try:
            self._send(_Query(request_id, what, command_id))
            if not waiting.done.wait(QUERY_TIMEOUT_S):
                return _NO_ANSWER
            return waiting.value
        except OSError:
            return _NO_ANSWER
        finally:
            with self._lock:
                self._waiting.pop(request_id, None)

    def _cancel_in_child(self, command_id: int) -> bool:
        if self._ended.is_set():
            return False
        return self._ask("cancel", command_id) is True

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
                if isinstance(message, _Stopped):
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
            case _Tick():
                self._tick(message)
            case _Log():
                self._log(message)
            case _Started(command_id=command_id):
                with self._lock:
                    started = self._open.get(command_id)
                if started is not None:
                    with contextlib.suppress(RuntimeError):  # it ended meanwhile
                        started.set_running_or_notify_cancel()
            case _Finished(command_id=command_id, result=result):
                with self._lock:
                    finished = self._open.get(command_id)
                if finished is not None:
                    self._finish(finished, result)
            case _Answer(request_id=request_id, value=value):
                with self._lock:
                    waiting = self._waiting.get(request_id)
                if waiting is not None:
                    waiting.value = value
                    waiting.done.set()
            case _:
                log.error("unexpected message from the line process: %r", message)

    def _tick(self, tick: _Tick) -> None:
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
                self._send(_SetLogLevel(level))

    @staticmethod
    def _log(message: _Log) -> None:
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
        with self._lock:
            futures = list(self._open.values())
        for future in futures:
            self._finish(future, CommandResult(False, reason))

    @staticmethod
    def _finish(future: Future[CommandResult], result: CommandResult) -> None:
        with contextlib.suppress(Exception):  # InvalidStateError: it ended meanwhile
            if not future.done():
                future.set_result(result)


# ---------------------------------------------------------------------- the child's side


class _Recorder:
    """The child's :class:`agent.line.LineMetrics`: counts until the next tick takes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._polls: Counter[tuple[int, str]] = Counter()
        self._latencies: list[float] = []
        self._deviations: list[float] = []
        self._bad: Counter[tuple[int, str]] = Counter()
        self._links: dict[int, bool] = {}

    def record_poll(self, address: int, result: PollResult,
                    latency: float | None = None) -> None:
        with self._lock:
            self._polls[(address, result.value)] += 1
            if latency is not None:
                self._latencies.append(latency)

    def record_bad_frame(self, address: int, kind: BadFrameKind) -> None:
        with self._lock:
            self._bad[(address, kind.value)] += 1

    def set_link_up(self, address: int, up: bool) -> None:
        with self._lock:
            self._links[address] = up

    def record_poll_deviation(self, seconds: float) -> None:
        with self._lock:
            self._deviations.append(seconds)

    def take(self, cycles: int, skipped: int) -> _Tick:
        with self._lock:
            tick = _Tick(cycles, skipped,
                         tuple((a, r, n) for (a, r), n in self._polls.items()),
                         tuple(self._latencies), tuple(self._deviations),
                         tuple((a, k, n) for (a, k), n in self._bad.items()),
                         tuple(self._links.items()))
            self._polls.clear()
            self._latencies.clear()
            self._deviations.clear()
            self._bad.clear()
            self._links.clear()
        return tick


_STANDARD_RECORD_KEYS = frozenset(vars(logging.makeLogRecord({})))


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """A log record as plain, picklable fields: the message rendered, a traceback as text in
    ``exc`` (the key the JSON log format uses for it), odd ``extra`` values as text."""
    fields = dict(vars(record))
    fields["msg"] = record.getMessage()
    fields["args"] = None
    if record.exc_info:
        fields["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
    fields["exc_info"] = None
    fields["exc_text"] = None
    for key, value in fields.items():
        if key in _STANDARD_RECORD_KEYS or isinstance(value, str | int | float | bool | None):
            continue
        try:
            pickle.dumps(value)
        except Exception:
            fields[key] = repr(value)
    return fields


class _ShipHandler(logging.Handler):
    """Hands every record to the sender thread, for the daemon's handlers to write."""

    def __init__(self, put: Callable[[object], None]) -> None:
        super().__init__()
        self._put = put

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._put(_Log(_record_fields(record)))
        except Exception:
            self.handleError(record)


class _ChildFuture(Future[CommandResult]):
    """The child's future of one command: says when it starts and how it ends."""

    def __init__(self, command_id: int, put: Callable[[object], None]) -> None:
        super().__init__()
        self.command_id = command_id
        self._put = put

    def set_running_or_notify_cancel(self) -> bool:
        started = super().set_running_or_notify_cancel()
        if started:
            self._put(_Started(self.command_id))
        return started


_END = object()


class _Child:
    """The line process: one LineOwner, a sender thread, and the socket's receive loop on
    the main thread."""

    def __init__(self, conn: Connection, init: _Init, wake_fd: int, priority: str) -> None:
        self._priority = priority
        self._conn = conn
        self._init = init
        self._wake_fd = wake_fd
        self._out: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._futures: dict[int, _ChildFuture] = {}
        self._recorder = _Recorder()
        self._send_failed = False
        self._final_error: str | None = None
        self.terminated = False
        self._line: LineOwner | None = None

    def _put(self, item: object) -> None:
        self._out.put(item)

    def run(self) -> int:
        init = self._init
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.addHandler(_ShipHandler(self._put))
        root.setLevel(init.log_level)
        config = init.config
        log.info("line process for %s: %s", config.serial.port, self._priority)
        try:
            transport = init.factory(config)
        except Exception as exc:
            self._flush_now()
            self._conn.send(_OpenFailed(f"cannot open the serial line {config.serial.port}: "
                                        f"{exc}"))
            return EXIT_CANNOT_START
        line = LineOwner(transport, config.machines, config.poll, self._put,
                               reopen=lambda: init.factory(config), metrics=self._recorder,
                               frame_log_size=init.frame_log_size,
                               max_pending_commands=init.max_pending_commands)
        self._line = line
        self._flush_now()  # what was logged while the line opened
        self._conn.send(_Ready(transport.name, os.getpid()))  # before any observation
        line.start()
        sender = threading.Thread(target=self._send_loop, name="line-sender", daemon=True)
        sender.start()
        stop_timeout = 5.0
        crashed = False
        try:
            stop_timeout, crashed = self._serve(line)
        finally:
            line.stop(stop_timeout)
            with contextlib.suppress(Exception):
                line.transport.close()
            if crashed:
                self._final_error = line.status()["error"] or "the line owner thread ended"
            self._put(_END)
            sender.join(stop_timeout + STOP_GRACE_S)
            with contextlib.suppress(OSError):
                self._conn.close()
        return EXIT_LINE_CRASHED if crashed else 0

    def _serve(self, line: LineOwner) -> tuple[float, bool]:
        """Receive until asked to stop (or SIGTERM, or the daemon is gone); returns the stop
        timeout and whether the line owner died on its own."""
        while True:
            ready = wait([self._conn, self._wake_fd], timeout=0.5)
            if self.terminated:
                log.info("SIGTERM: stopping the line")
                return 5.0, False
            if not line.running:
                log.error("the line owner thread ended on its own")
                return 5.0, True
            if self._wake_fd in ready:
                with contextlib.suppress(OSError):
                    os.read(self._wake_fd, 512)
            if self._conn not in ready:
                continue
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                log.warning("the agent daemon went away: stopping the line")
                return 5.0, False
            if isinstance(message, _Stop):
                log.info("stopping: the poll in flight finishes first")
                return message.timeout, False
            self._handle(line, message)

    def _handle(self, line: LineOwner, message: object) -> None:
        match message:
            case _Submit(command_id=command_id, command=command):
                self._submit(line, command_id, command)
            case _Reads(reads=reads):
                line.request_reads(reads)
            case _SetInterval(interval_ms=interval_ms):
                line.set_poll_interval(interval_ms)
            case _SetLogLevel(level=level):
                logging.getLogger().setLevel(level)
            case _Query(request_id=request_id, what="status"):
                self._put(_Answer(request_id, line.status()))
            case _Query(request_id=request_id, what="idle"):
                self._put(_Answer(request_id, line.idle()))
            case _Query(request_id=request_id, what="cancel", command_id=command_id):
                future = self._futures.get(command_id)
                self._put(_Answer(request_id, future is not None and future.cancel()))
            case _:
                log.error("unexpected message from the daemon: %r", message)

    def _submit(self, line: LineOwner, command_id: int, command: MachineCommand) -> None:
        future = _ChildFuture(command_id, self._put)
        self._futures[command_id] = future
        future.add_done_callback(self._command_done)
        try:
            line.submit(command, future=future)
        except CommandRejectedError as exc:
            if future.set_running_or_notify_cancel():
                future.set_result(CommandResult(False, str(exc)))

    def _command_done(self, future: Future[CommandResult]) -> None:
        assert isinstance(future, _ChildFuture)
        self._futures.pop(future.command_id, None)
        if future.cancelled():
            return  # the daemon asked for it and knows
        try:
            result = future.result()
        except Exception as exc:  # a bug in the line owner: still an answer for the action
            result = CommandResult(False, f"line owner error: {type(exc).__name__}")
        self._put(_Finished(future.command_id, result))

    # ------------------------------------------------------------------ the sender thread

    def _send(self, item: object) -> None:
        if self._send_failed:
            return
        try:
            self._conn.send(item)
        except OSError:  # the daemon is gone: the receive loop sees it and stops the line
            self._send_failed = True

    def _flush_now(self) -> None:
        """Send what is queued (before the sender thread runs)."""
        while True:
            try:
                item = self._out.get_nowait()
            except queue.Empty:
                return
            self._send(item)

    def _tick(self) -> _Tick | None:
        line = self._line
        if line is None:
            return None
        return self._recorder.take(line.cycles, line.skipped_slots)

    def _send_loop(self) -> None:
        last = (-1, -1)
        next_tick = time.monotonic() + TICK_S
        while True:
            try:
                item = self._out.get(timeout=max(0.0, next_tick - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _END:
                tick = self._tick()
                if tick is not None:
                    self._send(tick)
                self._send(_Stopped(self._final_error))
                return
            if item is not None:
                self._send(item)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + TICK_S
                tick = self._tick()
                if tick is not None and ((tick.cycles, tick.skipped_slots) != last
                                         or tick.polls or tick.links or tick.bad_frames):
                    last = (tick.cycles, tick.skipped_slots)
                    self._send(tick)


def _go_ahead(levels: int) -> str:
    """Lower this process's nice value by ``levels`` when allowed (before any thread starts:
    threads inherit it); says what came of it."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    target = max(-20, current - levels)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, target)
    except OSError:  # EPERM/EACCES: RLIMIT_NICE (systemd LimitNICE=) does not allow it
        return (f"nice {current}, as the daemon (LimitNICE={target} in the unit would let "
                "the line go ahead of it)")
    return f"nice {os.getpriority(os.PRIO_PROCESS, 0)}, ahead of the daemon's {current}"


def _set_comm(name: str) -> None:
    """Name the process for ``ps -e`` and ``top`` (best effort: Linux only)."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as comm:
        comm.write(name)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agent.line_process --fd N --line PORT``: started by :class:`LineProcess`
    only. ``--line`` is informative (it shows the port in ``ps``); the configuration comes
    over the socket."""
    parser = argparse.ArgumentParser(prog="python -m agent.line_process",
                                     description="slot-agent's line owner (started by the "
                                     "daemon; not for use by hand)")
    parser.add_argument("--fd", type=int, required=True, help="the socket to the daemon")
    parser.add_argument("--line", default="", help="the serial port (shown in ps)")
    args = parser.parse_args(argv)
    _set_comm(CHILD_COMM)
    priority = _go_ahead(NICE_AHEAD)
    # The daemon decides: a Ctrl-C or a hangup meant for it must not cut a poll in half.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    conn = Connection(args.fd)
    try:
        sys.path[:] = conn.recv()
        init = conn.recv()
    except (EOFError, OSError) as exc:
        print(f"line process: no start-up message from the daemon: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    if not isinstance(init, _Init):
        print(f"line process: unexpected start-up message {type(init).__name__}",
              file=sys.stderr)
        return EXIT_CANNOT_START
    child = _Child(conn, init, wake_r, priority)

    def terminate(_signum: int, _frame: object) -> None:
        child.terminated = True

    signal.signal(signal.SIGTERM, terminate)
    return child.run()


if __name__ == "__main__":
    # Run as the imported module, not as ``__main__``: the messages unpickled here must be
    # the very classes ``agent.line_process`` defines.
    from agent.line_process import main as _main

    sys.exit(_main())
