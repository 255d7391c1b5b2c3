"""The line owner: the one thread that owns the serial line and polls the machines on it.

Its timing must not depend on the rest of the daemon (an fsync, a slow hub), so it runs on
its own thread and meets the others only through thread-safe hand-offs:

- observations out through ``on_observation`` (the pipeline's ``put``, a queue);
- read requests in through :meth:`LineOwner.request_reads` and commands through
  :meth:`LineOwner.submit` (a queue each, drained at the start of every cycle);
- :meth:`LineOwner.status` is a locked snapshot for ``diag``.

Each cycle, every configured address gets a general poll, then every address gets at most
one long poll, chosen by its :class:`agent.line.schedule.MachineSchedule` (commands first). A poll
is driven through ``sas_protocol.HostProtocol``, which does the sync poll, implied ACK,
retries and link health; this module does the I/O: it writes ``data_to_send()``, reads until
the reply window (``reply_timeout_ms`` after the last byte written or received) closes, and
feeds ``receive_data`` / ``receive_timeout``.

Timing (SAS §3.6): nothing is written to a machine sooner than its poll interval
(``poll.interval_ms``, 200 ms by default; :meth:`LineOwner.set_machine_interval` lowers it
for a machine whose LP A0 advertises 40 ms) after the last byte sent to it or received from
it. That holds for every send, re-sends included, so a busy machine is asked again at its
next slot, not a fraction of a millisecond later. The re-sends of one poll are never
interleaved with polls to other addresses (a poll to another address is an implied ACK,
SAS §3.5, which would turn the re-send into a new request); the general polls of a cycle
come first for every machine, so that on a shared line one machine's wait for its long-poll
slot is used by the others. The clock and the wait are parameters (tests run on a fake clock).

Liveness in RTE mode: a general poll that meets silence is a failed poll in every mode
(issue 12), but a machine that follows the spec summary's "00 is not sent in RTE mode"
(SAS §3.4, [unsure]; others answer ``addr FF 00``) is silent when idle. So after such a
silence the long-poll slot of that cycle carries a liveness probe (:data:`LIVENESS_PROBE`)
when the schedule has nothing to send: an idle machine answers it (or substitutes an event,
SAS §12.3) and stays up, a dead one fails it too and goes down after the span. When the
slot's long poll met silence as well (an unsupported poll is silent in every mode, SAS §3.5),
the probe follows it at once: its answer tells the schedule the poll is not implemented.

Over 500 lines: the poll loop, its timing and the event hand-off all work on the same
per-machine bookkeeping under one lock; split, each part would reach into the others.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any, Protocol

from agent.config import MachineConfig, PollConfig
from agent.derive.exceptions_map import CONFIRMED_CODES
from agent.line.capture import CaptureBuffer, CaptureError, wakeup_positions
from agent.line.commands import (
    CommandRejectedError,
    CommandResult,
    MachineCommand,
)
from agent.line.interface import OpenCommands
from agent.line.meter_reads import meter_key
from agent.line.reply_window import (
    MAX_REPLY_S,
    ReplyWindow,
    is_answer,
    late_answers_count,
    read_late,
    reply_bound,
    reply_words,
)
from agent.line.schedule import MachineSchedule, Outputs
from agent.observations import (
    ExceptionObserved,
    LinkDown,
    LinkUp,
    MachineIdentified,
    Observation,
    RealTimeEventObserved,
)
from agent.ops.metrics import BadFrameKind, PollResult
from agent.reads import ReadRequest
from api.events import utc_timestamp
from drivers.base import Transport, TransportClosedError, TransportError, Word
from sas_protocol.errors import CrcError, LengthError, UnexpectedAddressError
from sas_protocol.hexdump import elided_hex
from sas_protocol.host import (
    ExceptionReported,
    FailureReason,
    FrameRejected,
    HostEvent,
    HostProtocol,
    NoActivity,
    NotSupported,
    PollFailed,
    PollState,
    RealTimeEventReceived,
    ReplyReceived,
)
from sas_protocol.host import LinkDown as HostLinkDown
from sas_protocol.host import LinkUp as HostLinkUp
from sas_protocol.messages.requests import GeneralPoll, MetersRequest, Poll, Request

log = logging.getLogger("agent.line")  # the name operators filter on (docs/operations.md)

CommandFuture = Future[CommandResult]

#: Bad frames are logged at most once per this many seconds per address (with a count of
#: the ones not logged), so a noisy line cannot flood the journal.
BAD_FRAME_LOG_INTERVAL_S = 5.0
#: After an I/O error on the transport, wait this long before polling (or reopening) again.
TRANSPORT_RETRY_S = 1.0
#: While the transport does not reopen, one failed attempt in this many is logged.
REOPEN_LOG_EVERY = 60
#: The long poll that tells an idle RTE machine from a dead one (module docstring): LP 1A,
#: current credits, a two-byte legacy poll every SAS machine answers (SAS §3.9).
LIVENESS_PROBE = MetersRequest(0x1A)
#: Per-machine poll spacing never goes below this (SAS §3.6: 40 ms with LP A0's consent).
MIN_INTERVAL_MS = 40

_RESULTS = {
    FailureReason.TIMEOUT: PollResult.TIMEOUT,
    FailureReason.CRC: PollResult.CRC,
    FailureReason.FRAMING: PollResult.FRAMING,
    FailureReason.NACK: PollResult.NACK,
    FailureReason.BUSY: PollResult.BUSY,
}


def _bad_frame_kind(event: FrameRejected) -> BadFrameKind:
    error = event.error
    if isinstance(error, CrcError):
        return BadFrameKind.CRC
    if isinstance(error, LengthError):
        return BadFrameKind.LENGTH
    if isinstance(error, UnexpectedAddressError):
        return BadFrameKind.ADDRESS
    if "no reply was awaited" in str(error):
        return BadFrameKind.UNEXPECTED
    return BadFrameKind.DECODE


class LineMetrics(Protocol):
    """What the line owner records: :class:`agent.ops.metrics.AgentMetrics` in the daemon's
    process; in the line process (:mod:`agent.line.process`) a recorder whose figures are
    shipped to the daemon's ``AgentMetrics``."""

    def record_poll(self, address: int, result: PollResult,
                    latency: float | None = None) -> None: ...

    def record_bad_frame(self, address: int, kind: BadFrameKind) -> None: ...

    def set_link_up(self, address: int, up: bool) -> None: ...

    def record_poll_deviation(self, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One frame on the line, for diagnostics."""

    at: float
    direction: str  # "tx" or "rx"
    hex: str

    def to_json(self) -> dict[str, Any]:
        return {"at": utc_timestamp(self.at), "dir": self.direction, "hex": self.hex}


class _Machine:
    """The line owner's per-address bookkeeping (line thread only, except under the lock)."""

    def __init__(self, config: MachineConfig, poll: PollConfig, *, max_sends: int, frames: int,
                 stopping: threading.Event) -> None:
        self.address = config.address
        self.config = config
        self._poll = poll
        self._max_sends = max_sends
        self.host = self.new_host()
        #: this machine's own spacing (s), set when LP A0 allows a faster one; None: the line's
        self.interval: float | None = None
        #: when the last byte was sent to or received from it (the line's monotonic clock)
        self.last_byte = float("-inf")
        self.schedule: MachineSchedule[CommandFuture] = MachineSchedule(
            config.address, rte=config.rte, poll=poll,
            # once stopping, no command starts (it fails with the queued ones instead)
            start_command=lambda future: (not stopping.is_set()
                                          and future.set_running_or_notify_cancel()))
        self.link_up = False
        self.link_reported = False  # a LinkDown/LinkUp was reported at least once
        self.since: float | None = None
        self.polls: Counter[str] = Counter()
        self.bad_frames: Counter[str] = Counter()
        self.frames: deque[FrameRecord] = deque(maxlen=frames)
        self.answered = False  # the last poll got a reply (set by the line thread)
        self.probe = False  # an RTE-mode general poll met silence: probe in the long-poll slot
        self.silent_long = False  # this slot's long poll met silence (unsupported or failed)
        self.last_bad_log = float("-inf")
        self.unlogged_bad = 0
        #: ``poll.reply_timeout_ms``, widened when the machine answers after it
        self.window = ReplyWindow(poll.reply_timeout_ms / 1000.0)

    def new_host(self) -> HostProtocol:
        """A fresh host state machine (at start, and after the transport failed mid-poll:
        the new one starts with a sync poll, SAS §3.3)."""
        poll = self._poll
        return HostProtocol(self.address, sync_address=poll.sync_address,
                            max_sends=self._max_sends, link_down_after=poll.link_down_after,
                            link_down_after_s=poll.link_down_after_s,
                            confirm_exceptions=CONFIRMED_CODES)


class LineOwner:
    """Owns ``transport`` and one ``HostProtocol`` per machine in ``machines``.

    ``on_observation`` is called on the line thread for every observation; it must not block
    (give it ``Pipeline.put``). ``clock`` is the wall clock of observation times; poll
    timing uses ``monotonic`` (it must be the transport's clock: ``time.monotonic`` for every
    real transport) and ``wait(seconds)`` to pass time until a slot (by default an event wait
    that ``stop`` and ``set_poll_interval`` cut short); tests give both a fake clock.
    """

    def __init__(
        self,
        transport: Transport,
        machines: Sequence[MachineConfig],
        poll: PollConfig,
        on_observation: Callable[[Observation], None],
        *,
        reopen: Callable[[], Transport] | None = None,
        metrics: LineMetrics | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        wait: Callable[[float], object] | None = None,
        max_sends: int = 3,
        frame_log_size: int = 64,
        max_pending_commands: int = 32,
    ) -> None:
        if not machines:
            raise ValueError("the line owner needs at least one machine")
        self.transport = transport
        self._reopen = reopen
        self.poll = poll
        self._emit = on_observation
        self._metrics = metrics
        self._clock = clock
        self._mono = monotonic
        self._stop = threading.Event()
        self._machines = {
            m.address: _Machine(m, poll, max_sends=max_sends, frames=frame_log_size,
                                stopping=self._stop)
            for m in machines
        }
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        # submitted, not finished
        self._open: OpenCommands[CommandFuture] = OpenCommands(self._machines,
                                                               max_pending_commands)
        self._inbox_count = 0  # items put and not yet handed to a schedule
        self._lock = threading.Lock()
        self._wake = threading.Event()  # ends the wait for a slot early
        self._wait: Callable[[float], object] = wait or self._wake.wait
        self._thread: threading.Thread | None = None
        self._interval = poll.interval_ms / 1000.0
        self.skipped_slots = 0
        self.cycles = 0
        self._error: str | None = None
        self._lost = False  # the transport failed and was closed: reopen before polling
        self._reopen_failures = 0
        self._capture: CaptureBuffer | None = None  # set while ``slot-agent capture`` runs

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("line owner already started")
        self._thread = threading.Thread(target=self._run, name="line-owner", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the line thread to stop after the poll in flight, without waiting for it (any
        thread, the line thread too: a test's scripted end on a fake clock)."""
        self._stop.set()
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the poll in flight, then stop; commands still queued fail."""
        self.request_stop()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._fail_queued("the line owner stopped")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Close the transport the line ends with (it may have been reopened meanwhile)."""
        with contextlib.suppress(Exception):
            self.transport.close()

    # ------------------------------------------------------------------ inputs (any thread)

    def submit(self, command: MachineCommand, *,
               future: CommandFuture | None = None) -> CommandFuture:
        """Queue a remote command ahead of routine polls; the future ends with its result.

        ``future`` is the one to complete (the line process passes a future that reports
        when the command starts); a new one by default."""
        if self._stop.is_set():
            raise CommandRejectedError("the line owner is stopping")
        if future is None:
            future = Future()
        if self._open.admit(future, command, future):
            self._put(("command", (command, future)))
        return future

    def set_poll_interval(self, interval_ms: int) -> None:
        """A new cadence (SIGHUP): from the next send on, each machine without its own
        interval is polled ``interval_ms`` after its last byte; ``status()["intervalMs"]``
        shows it at once."""
        if interval_ms < 1:
            raise ValueError(f"the poll interval must be at least 1 ms, not {interval_ms}")
        with self._lock:
            self.poll = replace(self.poll, interval_ms=interval_ms)
            self._interval = interval_ms / 1000.0
        log.info("poll interval set to %d ms", interval_ms)
        self._wake.set()

    def set_machine_interval(self, address: int, interval_ms: int | None) -> None:
        """The spacing of one machine (SAS §3.6: 40 ms only when its LP A0 advertises it);
        None returns it to the line's ``poll.interval_ms``. Any thread."""
        if interval_ms is not None and interval_ms < MIN_INTERVAL_MS:
            raise ValueError(f"a machine's poll interval must be at least {MIN_INTERVAL_MS} "
                             f"ms (SAS §3.6), not {interval_ms}")
        with self._lock:
            self._set_interval(self._machines[address], interval_ms)

    def _set_interval(self, m: _Machine, interval_ms: int | None) -> None:
        """:meth:`set_machine_interval` with the lock held."""
        m.interval = None if interval_ms is None else interval_ms / 1000.0
        log.info("machine %d: poll interval %s", m.address,
                 "as the line's" if interval_ms is None else f"{interval_ms} ms")
        self._wake.set()

    def _apply_features(self, m: _Machine, identified: MachineIdentified) -> None:
        """The cadence LP A0 allows (SAS §3.6: 40 ms only when the machine advertises it):
        ``poll.fast_interval_ms`` for a machine that does, the line's interval otherwise.
        Called with the lock held (from :meth:`_deliver`)."""
        fast = self.poll.fast_interval_ms
        if fast is None:
            return
        advertised = "maxPollingRate40ms" in identified.info.get("features", ())
        wanted = fast / 1000.0 if advertised else None
        if m.interval != wanted:
            self._set_interval(m, fast if advertised else None)

    def _spacing(self, m: _Machine) -> float:
        return m.interval if m.interval is not None else self._interval

    def request_reads(self, reads: Iterable[ReadRequest]) -> None:
        """Reads the interpreter asked for (called by the pipeline after each commit)."""
        for read in reads:
            self._put(("read", read))

    def start_capture(self, limit: int | None = None) -> None:
        """Record every frame from now on (``slot-agent capture``); CaptureError when a
        capture already runs."""
        with self._lock:
            if self._capture is not None:
                raise CaptureError("a capture is already running on this line")
            self._capture = CaptureBuffer() if limit is None else CaptureBuffer(limit)

    def stop_capture(self) -> dict[str, Any]:
        """End the capture: ``{"frames": [...], "dropped": n}`` (empty when none ran)."""
        with self._lock:
            capture, self._capture = self._capture, None
        return capture.take() if capture is not None else {"frames": [], "dropped": 0}

    def _put(self, item: tuple[str, Any]) -> None:
        with self._lock:
            self._inbox_count += 1
        self._inbox.put(item)

    def idle(self) -> bool:
        """Nothing queued for the line, no job running or waiting (tests, ``diag``)."""
        with self._lock:
            return self._inbox_count == 0 and all(
                m.schedule.idle and m.schedule.outstanding is None
                for m in self._machines.values())

    def links_up(self) -> dict[int, bool]:
        """Each polled address and whether its link is up (thread-safe)."""
        with self._lock:
            return {m.address: m.link_up for m in self._machines.values()}

    def status(self) -> dict[str, Any]:
        """A thread-safe snapshot for ``diag``."""
        with self._lock:
            machines = {}
            for m in self._machines.values():
                memory = m.schedule.memory
                machines[str(m.address)] = {
                    "address": m.address,
                    "linkUp": m.link_up,
                    "intervalMs": round(self._spacing(m) * 1000),
                    "replyWindowMs": round(m.window.seconds * 1000),
                    "since": utc_timestamp(m.since) if m.since is not None else None,
                    "rte": m.host.rte_mode,
                    "polls": dict(m.polls),
                    "badFrames": dict(m.bad_frames),
                    "ignoredPolls": [f"{p:02X}" for p in sorted(memory.ignored)],
                    "pollVerdicts": {f"{p:02X}": "answered" if answered else "ignored"
                                     for p, answered in sorted(memory.verdicts.items())},
                    "lackingMeters": [meter_key(c) for c in sorted(memory.lacking)],
                    "machine": dict(memory.identity),
                    "lastMeters": {meter_key(c): v for c, v in sorted(memory.last_meters.items())},
                    "lastMetersAt": (utc_timestamp(memory.last_meters_at)
                                     if memory.last_meters_at is not None else None),
                    "pendingCommands": m.schedule.pending_commands(),
                    "lastFrames": [f.to_json() for f in m.frames],
                }
            return {
                "transport": self.transport.name,
                "running": self.running,
                "intervalMs": self.poll.interval_ms,
                "cycles": self.cycles,
                "skippedSlots": self.skipped_slots,
                "error": self._error,
                "machines": machines,
            }

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._drain_inbox()
                if self._lost:
                    self._reopen_transport()  # commands were failed above: the link is down
                    continue
                try:
                    self._cycle()
                except TransportClosedError:
                    raise  # closed on this side: a stop, not a lost line
                except TransportError as exc:
                    self._transport_failed(exc)
                self.cycles += 1
            self._conclude()
        except TransportClosedError as exc:
            self._error = str(exc)
            log.info("line owner: transport closed, stopping", extra={"device": exc.device})
        except Exception as exc:  # a bug: say so loudly, fail the commands, stop the thread
            self._error = f"{type(exc).__name__}: {exc}"
            log.exception("line owner crashed")
        finally:
            self._fail_queued("the line owner stopped")

    def _wait_for_slot(self, m: _Machine, *, stoppable: bool) -> bool:
        """Wait until ``m`` may be written to: its interval after its last byte (SAS §3.6).
        False when the line stops first and ``stoppable`` (no new poll starts then; the
        re-sends of a poll in flight are not stoppable: it is finished first)."""
        waited = False
        while True:
            if stoppable and self._stop.is_set():
                return False
            slot = m.last_byte + self._spacing(m)  # again after a wake: the interval changed
            remaining = slot - self._mono()
            if remaining <= 0:
                break
            waited = True
            self._wait(remaining)
            self._wake.clear()
        if waited:
            late = self._mono() - slot
            if self._metrics is not None:
                self._metrics.record_poll_deviation(late)
            if late > self._spacing(m):
                self.skipped_slots += 1  # woke a whole interval late: the thread stalled
        return True

    def _transport_failed(self, exc: TransportError) -> None:
        """The line itself failed (a USB adapter unplugged, a TCP peer gone): the machines
        are down; with ``reopen`` the transport is closed and opened again, after a pause,
        at every cycle until it opens (:meth:`_reopen_transport`)."""
        log.warning("line transport error: %s", exc)
        self._error = str(exc)
        at = self._clock()
        with self._lock:
            for m in self._machines.values():
                m.host = m.new_host()  # the poll in flight is abandoned with the old one
                if m.link_up or not m.link_reported:
                    self._link_down(m, at, f"transport error: {exc}")
        if self._reopen is None:
            self._stop.wait(TRANSPORT_RETRY_S)  # the same transport is polled again
            return
        with contextlib.suppress(TransportError):
            self.transport.close()
        self._lost = True

    def _reopen_transport(self) -> None:
        """One attempt to open the line again, after a pause (a missing USB adapter or an
        unreachable terminal server is tried again at the next cycle, never given up)."""
        assert self._reopen is not None
        if self._stop.wait(TRANSPORT_RETRY_S):
            return
        try:
            transport = self._reopen()
        except Exception as exc:  # any failure to open is retried, never fatal to the line
            self._reopen_failures += 1
            # an adapter left unplugged for hours must not flood the journal
            if self._reopen_failures % REOPEN_LOG_EVERY == 1:
                log.warning("cannot reopen the line transport (attempt %d): %s",
                            self._reopen_failures, exc)
            self._error = f"cannot reopen the line transport: {exc}"
            return
        self._reopen_failures = 0
        with self._lock:
            self.transport = transport
        self._lost = False
        self._error = None
        log.info("line transport reopened: %s", transport.name)

    def _drain_inbox(self) -> None:
        while True:
            try:
                kind, item = self._inbox.get_nowait()
            except queue.Empty:
                return
            with self._lock:
                self._inbox_count -= 1
            if kind == "command":
                command, future = item
                with self._lock:
                    m = self._machines[command.address]
                    if not m.link_up:
                        if future.set_running_or_notify_cancel():
                            future.set_result(CommandResult(False, "the machine link is down"))
                        continue
                    m.schedule.command(command, future)
            else:
                m_read = self._machines.get(item.address)
                if m_read is not None:
                    with self._lock:
                        m_read.schedule.request(item)

    def _conclude(self) -> None:
        """On stop: what the last polls finished is delivered, not failed. A job learns it
        is done only when asked for its next poll (a command ACKed by the machine is
        concluded, with its ``HostLockChanged``, at the next cycle), so each schedule is
        asked once more; the poll it offers is not sent, and no command starts."""
        with self._lock:
            for m in self._machines.values():
                _, outputs = m.schedule.next_long_poll(self._clock())
                self._deliver(m, outputs)

    def _fail_queued(self, reason: str) -> None:
        with self._lock:
            for m in self._machines.values():
                for future, _ in m.schedule.on_link_down():
                    self._finish_command(future, CommandResult(False, reason))
        while True:
            try:
                kind, item = self._inbox.get_nowait()
            except queue.Empty:
                break
            with self._lock:
                self._inbox_count -= 1
            if kind == "command":
                _, future = item
                if not future.done() and future.set_running_or_notify_cancel():
                    future.set_result(CommandResult(False, reason))
        with self._lock:
            # commands a schedule dropped without starting them (stopping)
            for future in self._open.pending():
                self._finish_command(future, CommandResult(False, reason))

    def _cycle(self) -> None:
        machines = list(self._machines.values())
        for m in machines:
            m.answered = False
            if not self._run_poll(m, GeneralPoll()):
                return
            with self._lock:
                self._emit_all(m.schedule.general_poll_done(m.answered and m.link_up,
                                                            self._clock()))
        for m in machines:
            # The long poll is chosen at this machine's slot, not right after its general
            # poll: a read the interpreter asked for meanwhile (a game's meters after its 7E)
            # goes out in this slot instead of a cycle later (SAS §3.6 spacing holds either way).
            if not self._wait_for_slot(m, stoppable=True):
                return
            self._drain_inbox()
            with self._lock:
                poll, outputs = m.schedule.next_long_poll(self._clock())
                self._deliver(m, outputs)
            probe_due, m.probe, m.silent_long = m.probe, False, False
            if poll is None and probe_due:
                poll = LIVENESS_PROBE  # its answer is only a sign of life
            if poll is not None and self._run_poll(m, poll):
                # A job that this reply completed reports now rather than at the next
                # cycle: a game's money reaches the outbox one poll interval sooner. The next
                # poll is only planned here; it goes out in this machine's next slot.
                with self._lock:
                    _, outputs = m.schedule.next_long_poll(self._clock())
                    self._deliver(m, outputs)
                if probe_due and m.silent_long and poll is not LIVENESS_PROBE:
                    # An RTE machine silent when idle whose long poll met silence too: an
                    # unsupported poll is silent in every mode (SAS §3.5), so only the probe
                    # tells a live machine from a dead one; without it, discovery's ignored
                    # polls between silent general polls brought the link down, and
                    # discovery started over at every link-up, never reading a meter.
                    m.answered = False
                    if self._run_poll(m, LIVENESS_PROBE) and m.answered and m.link_up:
                        # the machine is there: the long poll's silence was "not
                        # implemented" (the next general poll, silent when idle in RTE
                        # mode, cannot say so: the poll was retried for ever)
                        with self._lock:
                            self._emit_all(m.schedule.general_poll_done(True, self._clock()))

    # ------------------------------------------------------------------ one poll

    def _run_poll(self, m: _Machine, poll: Poll) -> bool:
        """Drive ``poll`` to its end; False when the line stopped before it was sent."""
        host, transport = m.host, self.transport
        if not self._wait_for_slot(m, stoppable=True):
            return False
        host.send(poll)
        first_sent: float | None = None
        deadline = latest = noise_cap = 0.0
        while host.awaiting_reply:
            outgoing = host.data_to_send()
            if outgoing:
                if first_sent is not None:
                    self._wait_for_slot(m, stoppable=False)  # a re-send: SAS §3.6 spacing
                if first_sent is None or not late_answers_count(host, poll):
                    self._drop_late(m, resend=first_sent is not None)
                for item in outgoing:
                    transport.write(item.data, wakeup=item.wakeup)
                    self._record(m, "tx", item.data, wakeup=item.wakeup)
                now = self._mono()
                m.last_byte = now
                first_sent = now if first_sent is None else first_sent
                deadline = now + m.window.seconds
                # SAS §3.6: a reply may take 20 ms to start and 5 ms between bytes
                latest = now + max(m.window.seconds, reply_bound(poll))
                noise_cap = now + max(m.window.seconds, MAX_REPLY_S)
            words = transport.read(deadline)
            if words:
                data = bytes(w.value for w in words)
                self._record(m, "rx", data, words=words)
                if any(w.wakeup for w in words):  # chirps (reply_words): kept in the frames
                    words = reply_words(words)
                    data = bytes(w.value for w in words)
            if words:
                m.last_byte = self._mono()
                host.receive_data(data)
                # the window stays open while bytes keep coming, up to ``latest``; bytes
                # the host already threw away (bad frame) hold it no longer than before
                cap = noise_cap if host.state is PollState.DISCARDING else latest
                deadline = min(max(deadline, m.last_byte + m.window.seconds), cap)
            elif (now := self._mono()) >= deadline:
                host.receive_timeout(now)
            self._handle(m, host.events_received(), first_sent)
        return True

    def _drop_late(self, m: _Machine, *, resend: bool) -> None:
        """Throw away what came in since the last window closed: a late frame must not be
        taken for this send's reply. Counted and logged as a ``late`` bad frame, and the
        machine's window widened (:mod:`agent.line.reply_window`); before a re-send the host
        learns that the machine answered, so its long poll is not taken for unsupported."""
        words = read_late(self.transport, self._mono())
        if not words:
            return
        data = bytes(w.value for w in words)
        self._record(m, "rx", data, words=words)
        if not is_answer(words):
            return  # chirps: no answer of this machine's
        if resend:
            m.host.receive_late()
        before = m.window.seconds
        self._count_bad(m, BadFrameKind.LATE,
                        f"{len(data)} bytes after the {before * 1000:.0f} ms reply window", data)
        if m.window.widen():
            log.warning("machine %d answers after its reply window: widened from %.0f to "
                        "%.0f ms (poll.reply_timeout_ms is %d)", m.address, before * 1000,
                        m.window.seconds * 1000, self.poll.reply_timeout_ms)

    def _record(self, m: _Machine, direction: str, data: bytes, *, wakeup: bool = False,
                words: Sequence[Word] = ()) -> None:
        """Keep the frame for ``diag``; with a capture running, also in full (``wakeup``: a
        frame written with the 9th bit on its first byte; ``words``: the words read)."""
        at = self._clock()
        with self._lock:
            m.frames.append(FrameRecord(at, direction, elided_hex(data)))
            capture = self._capture
        if capture is not None:  # the only cost on the hot path when no capture runs
            positions = wakeup_positions(words) if words else ([0] if wakeup else [])
            capture.add(at, direction, m.address, data, positions)

    def _handle(self, m: _Machine, events: list[HostEvent], first_sent: float | None) -> None:
        if not events:
            return
        at = self._clock()
        latency = self._mono() - first_sent if first_sent is not None else None
        with self._lock:
            sched = m.schedule
            for event in events:
                match event:
                    case HostLinkUp():
                        self._link_up(m, at)
                    case HostLinkDown():
                        # once per outage (a new host after a transport error starts over)
                        if m.link_up or not m.link_reported:
                            self._link_down(m, at, "no valid reply" if m.link_reported
                                            else "no reply since start")
                    case ExceptionReported(code=code, defined=defined):
                        self._poll_result(m, PollResult.OK, latency)
                        if not defined:
                            self._undefined_exception(m, code)
                        self._emit(ExceptionObserved(at=at, address=m.address, code=code,
                                                     defined=defined))
                    case NoActivity():
                        self._poll_result(m, PollResult.OK, latency)
                    case RealTimeEventReceived(event=rte, substituted=substituted):
                        if not substituted:
                            self._poll_result(m, PollResult.OK, latency)
                        self._emit(RealTimeEventObserved(at=at, address=m.address,
                                                         code=rte.event_code,
                                                         fields=rte.fields()))
                    case ReplyReceived(poll=poll, reply=reply):
                        self._poll_result(m, PollResult.OK, latency)
                        if isinstance(poll, Request) and poll == self._outstanding(m):
                            self._emit_all(sched.replied(reply, at))
                    case NotSupported(poll=poll):
                        self._poll_result(m, PollResult.UNSUPPORTED, None)
                        m.silent_long = True
                        if poll == self._outstanding(m):
                            self._emit_all(sched.not_supported(at))
                    case PollFailed(poll=poll, reason=reason):
                        self._poll_result(m, _RESULTS[reason], None)
                        if (isinstance(poll, GeneralPoll) and reason is FailureReason.TIMEOUT
                                and (m.host.rte_mode or m.config.rte)):
                            m.probe = True
                        elif reason is FailureReason.TIMEOUT:
                            m.silent_long = True
                        if isinstance(poll, Request) and poll == self._outstanding(m):
                            self._emit_all(sched.failed(reason.value, at))
                    case FrameRejected():
                        self._bad_frame(m, event)

    @staticmethod
    def _outstanding(m: _Machine) -> Request | None:
        return m.schedule.outstanding

    def _emit_all(self, observations: list[Observation]) -> None:
        for obs in observations:
            self._emit(obs)

    def _deliver(self, m: _Machine, outputs: Outputs[CommandFuture]) -> None:
        for obs in outputs.observations:
            if isinstance(obs, MachineIdentified):
                self._apply_features(m, obs)
        self._emit_all(outputs.observations)
        for future, result in outputs.commands:
            self._finish_command(future, result)

    @staticmethod
    def _finish_command(future: CommandFuture, result: CommandResult) -> None:
        if not future.done():
            future.set_result(result)

    def _poll_result(self, m: _Machine, result: PollResult, latency: float | None) -> None:
        m.polls[result.value] += 1
        m.answered = result is PollResult.OK
        if self._metrics is not None:
            self._metrics.record_poll(m.address, result, latency)

    def _link_up(self, m: _Machine, at: float) -> None:
        m.link_up, m.link_reported, m.since = True, True, at
        m.schedule.on_link_up(at)
        if self._metrics is not None:
            self._metrics.set_link_up(m.address, True)
        log.info("machine %d: link up", m.address)
        self._emit(LinkUp(at=at, address=m.address))

    def _link_down(self, m: _Machine, at: float, reason: str) -> None:
        m.link_up, m.link_reported, m.since = False, True, at
        for future, result in m.schedule.on_link_down():
            self._finish_command(future, result)
        if self._metrics is not None:
            self._metrics.set_link_up(m.address, False)
        log.warning("machine %d: link down (%s)", m.address, reason)
        self._emit(LinkDown(at=at, address=m.address, reason=reason))

    def _undefined_exception(self, m: _Machine, code: int) -> None:
        """A confirmed exception byte outside the SAS table (SAS §3.11): reported (the
        observation says ``defined=False``), counted, logged; polling goes on."""
        kind = BadFrameKind.UNDEFINED_EXCEPTION
        m.bad_frames[kind.value] += 1
        if self._metrics is not None:
            self._metrics.record_bad_frame(m.address, kind)
        log.warning("machine %d: exception %02X is not in the SAS exception table (read twice)",
                    m.address, code)

    def _bad_frame(self, m: _Machine, event: FrameRejected) -> None:
        self._count_bad(m, _bad_frame_kind(event), str(event.error), event.error.raw)

    def _count_bad(self, m: _Machine, kind: BadFrameKind, what: str, raw: bytes) -> None:
        m.bad_frames[kind.value] += 1
        if self._metrics is not None:
            self._metrics.record_bad_frame(m.address, kind)
        now = self._mono()
        if now - m.last_bad_log >= BAD_FRAME_LOG_INTERVAL_S:
            more = f" ({m.unlogged_bad} more not logged)" if m.unlogged_bad else ""
            log.warning("machine %d: bad frame (%s): %s: %s%s", m.address, kind.value,
                        what, elided_hex(raw), more)
            m.last_bad_log, m.unlogged_bad = now, 0
        else:
            m.unlogged_bad += 1
