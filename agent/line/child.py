"""The line process itself: ``python -m agent.line.child``, started by
:class:`agent.line.process.LineProcess` only.

It opens the transport from the configuration the daemon sends (with the factory the daemon
names), runs an ordinary :class:`agent.line.owner.LineOwner`, counts its metrics in a recorder
that ships them to the daemon every ``TICK_S`` (a link going up or down at once), ships its
log records, and answers the daemon's queries. A sender thread writes to the socket, so the
line thread never blocks on it. SIGINT and SIGHUP are ignored (the daemon decides); SIGTERM,
or the daemon going away, stops it in order: the poll in flight is finished first.

Before any thread starts it raises its own scheduling as ``poll.line_priority`` asks and the
unit allows (:func:`raise_priority`): every thread of the line process inherits it, so the
thread that holds the interpreter lock never waits behind ordinary processes while the line
thread waits for that lock.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import pickle
import queue
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from agent.line.capture import CaptureError
from agent.line.commands import CommandRejectedError, CommandResult, MachineCommand
from agent.line.messages import (
    CHILD_COMM,
    EXIT_CANNOT_START,
    EXIT_LINE_CRASHED,
    NICE_AHEAD,
    RT_PRIORITY,
    STOP_GRACE_S,
    TICK_S,
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
)
from agent.line.owner import LineOwner
from agent.ops.metrics import BadFrameKind, PollResult

log = logging.getLogger(__name__)

class _Recorder:
    """The child's :class:`agent.line.owner.LineMetrics`: counts until the next tick takes them.
    ``on_change`` is called when a link goes up or down, so that ships at once."""

    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self._on_change = on_change
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
        self._on_change()

    def record_poll_deviation(self, seconds: float) -> None:
        with self._lock:
            self._deviations.append(seconds)

    def take(self, cycles: int, skipped: int) -> Tick:
        with self._lock:
            tick = Tick(cycles, skipped,
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
            self._put(Log(_record_fields(record)))
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
            self._put(Started(self.command_id))
        return started


_END = object()
#: Put on the sender's queue to ship a tick now (a link changed).
_TICK_NOW = object()


class _Child:
    """The line process: one LineOwner, a sender thread, and the socket's receive loop on
    the main thread."""

    def __init__(self, conn: Connection, init: Init, wake_fd: int,
                 priority: Priority) -> None:
        self._priority = priority
        self._conn = conn
        self._init = init
        self._wake_fd = wake_fd
        self._out: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._futures: dict[int, _ChildFuture] = {}
        self._recorder = _Recorder(lambda: self._out.put(_TICK_NOW))
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
        priority = self._priority
        if priority.got == priority.asked:
            log.info("line process for %s: %s", config.serial.port, priority.detail)
        else:  # once, at start: the unit does not allow what the configuration asks
            log.warning("line process for %s: poll.line_priority is %s, but %s",
                        config.serial.port, priority.asked, priority.detail,
                        extra={"line_priority": priority.got})
        try:
            transport = init.factory(config)
        except Exception as exc:
            self._flush_now()
            self._conn.send(OpenFailed(f"cannot open the serial line {config.serial.port}: "
                                        f"{exc}"))
            return EXIT_CANNOT_START
        line = LineOwner(transport, config.machines, config.poll, self._put,
                               reopen=lambda: init.factory(config), metrics=self._recorder,
                               frame_log_size=init.frame_log_size,
                               max_pending_commands=init.max_pending_commands)
        self._line = line
        self._flush_now()  # what was logged while the line opened
        # before any observation
        self._conn.send(Ready(transport.name, os.getpid(), priority.to_json()))
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
            # A signal wakes this through the wake-up fd, a message through the socket: the
            # timeout only bounds how late a line owner that died on its own is noticed.
            ready = wait([self._conn, self._wake_fd], timeout=TICK_S)
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
            if isinstance(message, Stop):
                log.info("stopping: the poll in flight finishes first")
                return message.timeout, False
            self._handle(line, message)

    def _handle(self, line: LineOwner, message: object) -> None:
        match message:
            case Submit(command_id=command_id, command=command):
                self._submit(line, command_id, command)
            case Reads(reads=reads):
                line.request_reads(reads)
            case SetInterval(interval_ms=interval_ms):
                line.set_poll_interval(interval_ms)
            case SetLogLevel(level=level):
                logging.getLogger().setLevel(level)
            case StatusQuery(request_id=request_id):
                self._put(StatusAnswer(request_id, {**line.status(),
                                                    "priority": self._priority.to_json()}))
            case IdleQuery(request_id=request_id):
                self._put(IdleAnswer(request_id, line.idle()))
            case CaptureQuery(request_id=request_id, start=start):
                self._put(self._capture(line, request_id, start))
            case CancelQuery(request_id=request_id, command_id=command_id):
                future = self._futures.get(command_id)
                self._put(CancelAnswer(request_id, future is not None and future.cancel()))
            case _:
                log.error("unexpected message from the daemon: %r", message)

    @staticmethod
    def _capture(line: LineOwner, request_id: int, start: bool) -> CaptureAnswer:
        if not start:
            return CaptureAnswer(request_id, line.stop_capture())
        try:
            line.start_capture()
        except CaptureError as exc:
            return CaptureAnswer(request_id, {}, str(exc))
        return CaptureAnswer(request_id, {})

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
        self._put(Finished(future.command_id, result))

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

    def _tick(self) -> Tick | None:
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
                self._send(Stopped(self._final_error))
                return
            if item is not None and item is not _TICK_NOW:
                self._send(item)
            if item is _TICK_NOW or time.monotonic() >= next_tick:
                next_tick = time.monotonic() + TICK_S
                tick = self._tick()
                if tick is not None and ((tick.cycles, tick.skipped_slots) != last
                                         or tick.polls or tick.links or tick.bad_frames):
                    last = (tick.cycles, tick.skipped_slots)
                    self._send(tick)


@dataclass(frozen=True, slots=True)
class Priority:
    """What ``poll.line_priority`` asked (``asked``), what the line process got (``got``:
    realtime, nice or normal) and how, in words (``detail``); in ``status`` as
    ``line.priority``."""

    asked: str
    got: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"asked": self.asked, "got": self.got, "detail": self.detail}


def _go_ahead(levels: int) -> tuple[bool, str]:
    """Lower this process's nice value by ``levels`` when allowed; says what came of it."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    target = max(-20, current - levels)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, target)
    except OSError:  # EPERM/EACCES: RLIMIT_NICE (systemd LimitNICE=) does not allow it
        return False, (f"nice {current}, as the daemon (LimitNICE={target} in the unit would "
                       "let the line go ahead of it)")
    return True, f"nice {os.getpriority(os.PRIO_PROCESS, 0)}, ahead of the daemon's {current}"


def raise_priority(asked: str) -> Priority:
    """Raise this process's scheduling as ``asked`` (``poll.line_priority``), falling back
    realtime -> nice -> normal where the unit does not allow it. Call it before any thread
    starts: on Linux both settings are per thread, and new threads inherit them.

    ``realtime`` is SCHED_RR at ``RT_PRIORITY``: the kernel then runs the line's threads
    before any ordinary process, however busy the machine (its real-time throttling,
    ``sched_rt_runtime_us``, still keeps 5 % of every second for the rest). An unprivileged
    user needs ``LimitRTPRIO=`` of at least that priority, ``RestrictRealtime=no`` and
    ``sched_setscheduler`` in the system-call filter (the drop-in of docs/operations.md)."""
    refused = ""
    if asked == "realtime":
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(RT_PRIORITY))
        except OSError as exc:  # EPERM: no LimitRTPRIO=/CAP_SYS_NICE, or RestrictRealtime=
            refused = (f"SCHED_RR {RT_PRIORITY} was refused ({exc.strerror}: the unit needs "
                       f"LimitRTPRIO={RT_PRIORITY}, RestrictRealtime=no and "
                       "SystemCallFilter=sched_setscheduler); ")
        else:
            return Priority(asked, "realtime", f"SCHED_RR priority {RT_PRIORITY}")
    if asked in ("realtime", "nice"):
        ahead, how = _go_ahead(NICE_AHEAD)
        return Priority(asked, "nice" if ahead else "normal", refused + how)
    return Priority(asked, "normal", f"nice {os.getpriority(os.PRIO_PROCESS, 0)}, as the "
                    "daemon (poll.line_priority: normal)")


def _set_comm(name: str) -> None:
    """Name the process for ``ps -e`` and ``top`` (best effort: Linux only)."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as comm:
        comm.write(name)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agent.line.child --fd N --line PORT``: started by :class:`LineProcess`
    only. ``--line`` is informative (it shows the port in ``ps``); the configuration comes
    over the socket."""
    parser = argparse.ArgumentParser(prog="python -m agent.line.child",
                                     description="slot-agent's line owner (started by the "
                                     "daemon; not for use by hand)")
    parser.add_argument("--fd", type=int, required=True, help="the socket to the daemon")
    parser.add_argument("--line", default="", help="the serial port (shown in ps)")
    args = parser.parse_args(argv)
    _set_comm(CHILD_COMM)
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
    if not isinstance(init, Init):
        print(f"line process: unexpected start-up message {type(init).__name__}",
              file=sys.stderr)
        return EXIT_CANNOT_START
    # No thread runs yet: every thread of the line process inherits what this sets.
    child = _Child(conn, init, wake_r, raise_priority(init.config.poll.line_priority))

    def terminate(_signum: int, _frame: object) -> None:
        child.terminated = True

    signal.signal(signal.SIGTERM, terminate)
    return child.run()


if __name__ == "__main__":
    # Run as the imported module, not as ``__main__``: the messages unpickled here must be
    # the very classes ``agent.line.messages`` defines, under this module's real name.
    from agent.line.child import main as _main

    sys.exit(_main())
