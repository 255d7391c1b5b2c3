"""The poll planner for one machine, pure: which long poll goes next, and what replies mean.

The line owner sends a general poll every ``interval_ms`` and, between two general polls, at
most one long poll: the one :meth:`MachineSchedule.next_long_poll` returns. The work behind
long polls is organised in *jobs*, each a short sequence of polls that ends in observations
(and, for remote commands, a :class:`CommandResult`):

- discovery at every link-up (SAS §4.3 pitfall 4: re-query the machine after a comm-up):
  LP 0E 01 or 0E 00 (RTE as configured), 54, 1F, 51, 55, 56, 53 / B5 per game (bounded),
  7E and, when allowed and the skew is too large, 7F; then a full meter snapshot;
- meter reads asked for by the interpreter (``ReadMeters``; pending reads of the same game
  merge into one), LP 1B after 51, LP 4D after 3D / 3E (LP 3D on a machine that ignores
  LP 4D: standard validation, reference §3.9b), LP 48 after a bill exception on a machine
  with no bill meter (§3.9), identification after 3C / A2;
- a full meter snapshot every ``snapshot_interval_s``;
- a read (meters, LP 1B, LP 4D) whose poll failed is not given up: the same poll is tried
  again after a backoff (:func:`agent.reads.read_retry_delays`), for as long as the link is
  up, while general polls (and commands) go on; a link-down drops it, and the discovery
  snapshot at the next link-up reads everything;
- remote commands, which go ahead of every routine job (a routine job in progress is only
  paused between its polls, never cut).

What the machine ignores (``NotSupported``: silence to every send, SAS §3.5) is remembered in
:attr:`Memory.ignored`, so the meter stepdown (agent.line.meter_reads) and discovery skip it next
time (also across link-ups, so a flapping link does not re-probe at every discovery), until
the next timer snapshot: on a noisy line a supported poll can meet
silence three times running (its address byte flipped), and a poll wrongly remembered as
unsupported must not stay so for the life of the process (LP 6F, then 2F, would be skipped
and the meters they carry never read). Probing again costs a machine that really lacks the
poll three silent sends per snapshot interval. No I/O, no clock: times are arguments.

Over 500 lines: the job classes and the planner that orders them are one unit (each job's
handlers are called only by the planner, with its memory).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from agent.config import PollConfig
from agent.line.commands import CommandKind, CommandResult, MachineCommand
from agent.line.discovery import Identity, clock_read
from agent.line.meter_reads import FULL_SNAPSHOT_CODES, MeterRead, meter_key
from agent.line.replies import (
    cashout_ticket_read,
    game_lock_read,
    handpay_read,
    last_bill_read,
    ticket_read,
)
from agent.observations import (
    GAME_LOCK_PENDING,
    GAME_LOCKED,
    GameLockRead,
    HostLockChanged,
    MeterReason,
    MetersRead,
    Observation,
)
from agent.reads import (
    ReadGameLock,
    ReadHandpay,
    ReadIdentity,
    ReadLastBill,
    ReadMeters,
    ReadRequest,
    ReadTicket,
    read_retry_delays,
)
from sas_protocol.messages.features import EnabledFeaturesRequest
from sas_protocol.messages.meters import MeterReply
from sas_protocol.messages.requests import (
    AftLockStatusRequest,
    DateTimeRequest,
    DisableBillAcceptorRequest,
    EnableBillAcceptorRequest,
    EnabledGamesRequest,
    EnhancedValidationRequest,
    ExtendedGameInfoRequest,
    GameConfigurationRequest,
    GameCountRequest,
    HandpayInfoRequest,
    HandpayResetMethodRequest,
    LastBillRequest,
    LockRequest,
    MachineInfoRequest,
    RealTimeReportingRequest,
    RemoteHandpayResetRequest,
    Request,
    SasVersionRequest,
    SelectedGameRequest,
    SetDateTimeRequest,
    SoundOffRequest,
    SoundOnRequest,
    UnlockRequest,
)
from sas_protocol.messages.responses import (
    Ack,
    AftLockStatusReply,
    DateTimeReply,
    EnhancedValidationReply,
    HandpayInfoReply,
    HandpayResetReply,
    LastBillReply,
    Reply,
)
from sas_protocol.messages.ticket_info import CashoutTicketReply, CashoutTicketRequest

T = TypeVar("T")

#: LP 1B level byte: 01-20 progressive levels report cents, others credits (SAS §3.9).

#: LP 94 result codes (SAS §3.9).
_HANDPAY_RESET_ERRORS = {0x01: "the machine is unable to reset the handpay",
                         0x02: "no handpay is pending"}


def poll_name(poll: Request) -> str:
    return f"LP {poll.command:02X}"


@dataclass(slots=True)
class Memory:
    """What the line owner learned about one machine, kept across link-ups."""

    ignored: set[int] = field(default_factory=set)  # long polls the machine never answers
    #: the last verdict on each long poll sent, by command: True answered, False ignored
    #: (SAS §3.5). Unlike ``ignored`` it is not cleared by the snapshot's re-probe, so
    #: ``diag`` can tell a poll the machine answered from one not asked yet (the ticket poll
    #: before the link-up's read of it, LP 48 and LP 20 before the first bill).
    verdicts: dict[int, bool] = field(default_factory=dict)
    lacking: set[int] = field(default_factory=set)  # meters the machine does not keep
    denomination_cents: int | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    last_meters: dict[int, int] = field(default_factory=dict)
    last_meters_at: float | None = None
    #: when LP 74 is read again (a game lock is on or pending); None: not watching
    game_lock_recheck_at: float | None = None


@dataclass(slots=True)
class Outputs(Generic[T]):
    """What one poll's outcome produced: observations and finished commands."""

    observations: list[Observation] = field(default_factory=list)
    commands: list[tuple[T, CommandResult]] = field(default_factory=list)


class Job:
    """A sequence of long polls. Subclasses implement ``next_poll`` and the handlers; a job is
    finished when ``next_poll`` returns None, then ``finish`` gives its last observations."""

    def __init__(self, address: int) -> None:
        self.address = address
        self.started = False
        self.result: CommandResult | None = None
        #: no poll before this time: a failed poll waits for its retry
        self.not_before = float("-inf")
        self._backoff: Iterator[float] | None = None

    def retry_later(self, at: float) -> None:
        """The poll in flight failed: try it again after the backoff (module docstring)."""
        if self._backoff is None:
            self._backoff = read_retry_delays()
        self.not_before = at + next(self._backoff)

    def next_poll(self, memory: Memory, at: float) -> Request | None:
        raise NotImplementedError

    def reply(self, poll: Request, reply: Reply, memory: Memory, at: float) -> list[Observation]:
        return []

    def unsupported(self, poll: Request, memory: Memory, at: float) -> list[Observation]:
        return []

    def failed(self, poll: Request, reason: str, memory: Memory, at: float) -> list[Observation]:
        return []

    def finish(self, memory: Memory, at: float) -> list[Observation]:
        return []


class MeterReadJob(Job):
    """One meter read by stepdown; ends in ``MetersRead``."""

    def __init__(self, address: int, codes: tuple[int, ...], reason: MeterReason) -> None:
        super().__init__(address)
        self.codes = codes or FULL_SNAPSHOT_CODES
        self.full = not codes
        self.reason: MeterReason = reason
        self._read: MeterRead | None = None
        self._started_at: float | None = None

    def merge(self, codes: tuple[int, ...], reason: MeterReason) -> None:
        """Fold another pending request in: a full read wins, otherwise the codes add up."""
        if self.full:
            return
        if not codes:
            self.full, self.codes, self.reason = True, FULL_SNAPSHOT_CODES, reason
            return
        self.codes = tuple(dict.fromkeys((*self.codes, *codes)))

    def next_poll(self, memory: Memory, at: float) -> Request | None:
        if self._read is None:
            self._read = MeterRead(self.codes, lacking=memory.lacking)
            self._started_at = at
        return self._read.next_poll(memory.ignored)

    def reply(self, poll: Request, reply: Reply, memory: Memory, at: float) -> list[Observation]:
        assert self._read is not None
        if isinstance(reply, MeterReply):
            self._read.reply(reply)
            memory.lacking.update(self._read.lacking)
        else:
            self._read.failed()
        return []

    def unsupported(self, poll: Request, memory: Memory, at: float) -> list[Observation]:
        assert self._read is not None
        self._read.unsupported()
        return []

    def failed(self, poll: Request, reason: str, memory: Memory, at: float) -> list[Observation]:
        # the poll stays in flight (MeterRead.next_poll returns it again) until it succeeds
        self.retry_later(at)
        return []

    def finish(self, memory: Memory, at: float) -> list[Observation]:
        read = self._read
        if read is None or not read.meters:
            return []
        memory.last_meters.update(read.meters)
        memory.last_meters_at = at
        # A read cut short is still true for what it has, but it is not a full snapshot:
        # report it as a plain read so it neither ends a pending reset nor says "snapshot".
        reason: MeterReason = "timer" if read.aborted and self.full else self.reason
        return [MetersRead(at=at, address=self.address, meters=dict(read.meters),
                           widths=dict(read.widths), reason=reason,
                           started_at=self._started_at)]


class SequenceJob(Job):
    """Polls in a fixed order; polls the machine ignores are skipped."""

    def __init__(self, address: int, polls: list[Request]) -> None:
        super().__init__(address)
        self._polls: deque[Request] = deque(polls)
        self._in_flight: Request | None = None

    def next_poll(self, memory: Memory, at: float) -> Request | None:
        if self._in_flight is not None:
            return self._in_flight
        while self._polls:
            poll = self._polls.popleft()
            if poll.command not in memory.ignored:
                self._in_flight = poll
                return poll
        return None

    def _done_with(self) -> None:
        self._in_flight = None

    def push_front(self, *polls: Request) -> None:
        self._polls.extendleft(reversed(polls))


class IdentifyJob(SequenceJob):
    """Discovery's identification part; ends in ``MachineIdentified`` and ``ClockRead``."""

    def __init__(self, address: int, *, rte: bool, poll: PollConfig,
                 set_rte: bool = True) -> None:
        # SAS §12: LP 0E sets real-time event reporting to what the line is configured for,
        # also "off": a machine left in RTE mode by an earlier host would otherwise answer
        # general polls with event frames this host does not expect.
        polls: list[Request] = [RealTimeReportingRequest(rte)] if set_rte else []
        # LP A0 (reference §3.9b): the features the machine has enabled, among them whether
        # it may be polled every 40 ms (§3.6); a machine that ignores it stays at 200 ms.
        polls += [SasVersionRequest(), MachineInfoRequest(), EnabledFeaturesRequest(),
                  GameCountRequest(), SelectedGameRequest(), EnabledGamesRequest()]
        super().__init__(address, polls)
        self.config = poll
        self.identity = Identity(address)
        self._details_planned = False
        self._clock_planned = False
        self._clock: Observation | None = None

    def next_poll(self, memory: Memory, at: float) -> Request | None:
        while True:
            poll = super().next_poll(memory, at)
            if poll is not None:
                return poll
            # the polls planned so far are done (or skipped): plan the next stage
            if not self._details_planned:
                self._details_planned = True
                for game in self.identity.detail_games():
                    self._polls.append(GameConfigurationRequest(game))
                    self._polls.append(ExtendedGameInfoRequest(game))
            elif not self._clock_planned:
                self._clock_planned = True
                if self.config.clock_check:
                    self._polls.append(DateTimeRequest())
            else:
                return None

    def reply(self, poll: Request, reply: Reply, memory: Memory, at: float) -> list[Observation]:
        self._done_with()
        self.identity.add(reply)
        if isinstance(reply, DateTimeReply):
            clock = clock_read(reply, address=self.address, at=at)
            self._clock = clock
            if (clock is not None and self.config.clock_sync
                    and abs(clock.skew_seconds) > self.config.clock_max_skew_s):
                self.push_front(set_clock_request(at))
        return []

    def unsupported(self, poll: Request, memory: Memory, at: float) -> list[Observation]:
        self._done_with()
        return []

    def failed(self, poll: Request, reason: str, memory: Memory, at: float) -> list[Observation]:
        self._done_with()
        return []

    def finish(self, memory: Memory, at: float) -> list[Observation]:
        out: list[Observation] = []
        identified = self.identity.observation(at=at, unsupported=tuple(sorted(memory.ignored)))
        if identified is not None:
            memory.denomination_cents = identified.denomination_cents
            memory.identity = {"sasVersion": identified.sas_version,
                               "serialNumber": identified.serial_number,
                               "gameId": identified.game_id,
                               "denomination": identified.denomination_cents,
                               "games": identified.games, **identified.info}
            out.append(identified)
        if self._clock is not None:
            out.append(self._clock)
        return out


def set_clock_request(at: float) -> SetDateTimeRequest:
    """LP 7F with the host's local time at ``at`` (machines keep local time)."""
    t = time.localtime(at)
    return SetDateTimeRequest(t.tm_mon, t.tm_mday, t.tm_year, t.tm_hour, t.tm_min,
                              min(t.tm_sec, 59))


class SingleReadJob(SequenceJob):
    """LP 1B, LP 4D or LP 48, read once, turned into its observation. ``fallbacks`` are sent
    only when the machine ignores the poll (remembered in ``Memory.ignored``, like the meter
    stepdown): LP 3D after LP 4D, so a machine with standard validation only (reference
    §3.9b: no LP 4D) still has its cash-out tickets read."""

    def __init__(self, address: int, poll: Request, *fallbacks: Request) -> None:
        super().__init__(address, [poll, *fallbacks])
        self.kind = poll.command
        self._out: list[Observation] = []

    def reply(self, poll: Request, reply: Reply, memory: Memory, at: float) -> list[Observation]:
        self._done_with()
        self._polls.clear()  # answered: the fallbacks are not needed
        if isinstance(reply, HandpayInfoReply):
            read = handpay_read(reply, address=self.address, at=at,
                                denomination_cents=memory.denomination_cents)
            if read is None:
                return []  # cannot convert yet; 51 is re-issued every 15 s (SAS §7.8.1)
            self._out.append(read)
        elif isinstance(reply, AftLockStatusReply):
            self._out.append(game_lock_read(reply, address=self.address, at=at))
        elif isinstance(reply, EnhancedValidationReply):
            self._out.append(ticket_read(reply, address=self.address, at=at))
        elif isinstance(reply, CashoutTicketReply):
            self._out.append(cashout_ticket_read(reply, address=self.address, at=at))
        elif isinstance(reply, LastBillReply):
            self._out.append(last_bill_read(reply, address=self.address, at=at))
        return []

    def unsupported(self, poll: Request, memory: Memory, at: float) -> list[Observation]:
        self._done_with()
        return []

    def failed(self, poll: Request, reason: str, memory: Memory, at: float) -> list[Observation]:
        self.retry_later(at)  # the poll stays in flight: next_poll returns it again
        return []

    def finish(self, memory: Memory, at: float) -> list[Observation]:
        return self._out


def ticket_read_job(address: int) -> SingleReadJob:
    """LP 4D (current record), or LP 3D where the machine ignores LP 4D (reference §3.9b:
    standard validation answers 3D; the 4-byte validation number is the majority layout)."""
    return SingleReadJob(address, EnhancedValidationRequest(0), CashoutTicketRequest())


class GameLockJob(SingleReadJob):
    """LP 74 interrogate (lock code FF: read only, never lock, reference §3.9). While the
    status reads locked (00) or pending (40), it is read again ``recheck_s`` later; a machine
    that ignores LP 74 is in :attr:`Memory.ignored` and is not watched."""

    def __init__(self, address: int, recheck_s: float) -> None:
        super().__init__(address, AftLockStatusRequest(0xFF, 0, 0))
        self.recheck_s = recheck_s

    def finish(self, memory: Memory, at: float) -> list[Observation]:
        out = super().finish(memory, at)
        reads = [o for o in out if isinstance(o, GameLockRead)]
        if reads and reads[-1].lock_status in (GAME_LOCKED, GAME_LOCK_PENDING):
            memory.game_lock_recheck_at = at + self.recheck_s
        else:  # not locked, or unsupported: nothing to watch
            memory.game_lock_recheck_at = None
        return out


_ACK_COMMANDS: dict[CommandKind, Callable[[], Request]] = {
    CommandKind.LOCK: LockRequest,
    CommandKind.UNLOCK: UnlockRequest,
    CommandKind.SOUND_ON: SoundOnRequest,
    CommandKind.SOUND_OFF: SoundOffRequest,
    CommandKind.ENABLE_BILL_ACCEPTOR: EnableBillAcceptorRequest,
    CommandKind.DISABLE_BILL_ACCEPTOR: DisableBillAcceptorRequest,
}


class CommandJob(Job):
    """A remote command: its polls, then a :class:`CommandResult` in :attr:`result`."""

    def __init__(self, command: MachineCommand) -> None:
        super().__init__(command.address)
        self.command = command
        self._polls: deque[Request] = deque()
        self._in_flight: Request | None = None
        self._meters: MeterRead | None = None
        self._identity = Identity(command.address)
        self._out: list[Observation] = []
        self._data: dict[str, Any] = {}
        kind = command.kind
        if kind in _ACK_COMMANDS:
            self._polls.append(_ACK_COMMANDS[kind]())
        elif kind is CommandKind.HANDPAY_RESET:
            method = int(command.params.get("method", 0))
            # SAS §3.9: A8 chooses the reset method (00 standard handpay), 94 resets
            self._polls += [HandpayResetMethodRequest(method), RemoteHandpayResetRequest()]
        elif kind is CommandKind.MACHINE_INFO:
            self._polls += [SasVersionRequest(), MachineInfoRequest()]
        elif kind is CommandKind.READ_METERS:
            self._meters = MeterRead(FULL_SNAPSHOT_CODES)
        elif kind is not CommandKind.SYNC_CLOCK:
            self.result = CommandResult(False, f"unsupported command {kind.value}")

    def next_poll(self, memory: Memory, at: float) -> Request | None:
        if self.result is not None:
            return None
        if self._in_flight is not None:
            return self._in_flight
        if self.command.kind is CommandKind.SYNC_CLOCK and not self.started:
            self._polls.append(set_clock_request(at))  # the host's time when it is sent
        self.started = True
        if self._meters is not None:
            poll = self._meters.next_poll(memory.ignored)
            if poll is None:
                self._finish_meters(memory, at)
            self._in_flight = poll
            return poll
        if not self._polls:
            if self.result is None:
                self.result = CommandResult(True, None, dict(self._data))
            return None
        self._in_flight = self._polls.popleft()
        return self._in_flight

    def _finish_meters(self, memory: Memory, at: float) -> None:
        read = self._meters
        assert read is not None
        if read.aborted:
            self.result = CommandResult(False, "the meter read did not complete")
        else:
            self.result = CommandResult(True, None, {
                "meters": {meter_key(c): v for c, v in sorted(read.meters.items())}})
        if read.meters:
            memory.last_meters.update(read.meters)
            memory.last_meters_at = at
            self._out.append(MetersRead(at=at, address=self.address, meters=dict(read.meters),
                                        widths=dict(read.widths),
                                        reason="timer" if read.aborted else "action"))

    def reply(self, poll: Request, reply: Reply, memory: Memory, at: float) -> list[Observation]:
        self._in_flight = None
        kind = self.command.kind
        if self._meters is not None:
            if isinstance(reply, MeterReply):
                self._meters.reply(reply)
                memory.lacking.update(self._meters.lacking)
            else:
                self._meters.failed()
            return []
        if isinstance(reply, HandpayResetReply) and reply.code != 0x00:
            self.result = CommandResult(False, _HANDPAY_RESET_ERRORS.get(
                reply.code, f"handpay reset answered {reply.code:02X}"))
        elif isinstance(reply, Ack) and kind in (CommandKind.LOCK, CommandKind.UNLOCK):
            self._out.append(HostLockChanged(at=at, address=self.address,
                                             locked=kind is CommandKind.LOCK,
                                             action_id=self.command.action_id))
        elif isinstance(reply, Ack) and isinstance(poll, SetDateTimeRequest):
            self._data["machineTime"] = (f"{poll.year:04d}-{poll.month:02d}-{poll.day:02d}T"
                                         f"{poll.hour:02d}:{poll.minute:02d}:{poll.second:02d}")
        elif kind is CommandKind.MACHINE_INFO:
            self._identity.add(reply)
            self._data.update(self._identity.as_result())
        return []

    def unsupported(self, poll: Request, memory: Memory, at: float) -> list[Observation]:
        self._in_flight = None
        if self._meters is not None:
            self._meters.unsupported()
        elif isinstance(poll, HandpayResetMethodRequest):
            pass  # A8 is optional: the standard reset method stays, 94 follows
        else:
            self.result = CommandResult(False, f"the machine does not support {poll_name(poll)}")
        return []

    def failed(self, poll: Request, reason: str, memory: Memory, at: float) -> list[Observation]:
        self._in_flight = None
        if self._meters is not None:
            self._meters.failed()
        else:
            self.result = CommandResult(False, f"{poll_name(poll)} failed: {reason}")
        return []

    def finish(self, memory: Memory, at: float) -> list[Observation]:
        return self._out


class MachineSchedule(Generic[T]):
    """The planner of one machine. ``T`` is the caller's handle of a command (a Future)."""

    def __init__(self, address: int, *, rte: bool, poll: PollConfig,
                 start_command: Callable[[T], bool] | None = None) -> None:
        self.address = address
        self.rte = rte
        self.config = poll
        #: called before a command's first poll; False: it was cancelled, skip it
        self._start_command = start_command or (lambda _handle: True)
        self.memory = Memory()
        self.link_up = False
        self._commands: deque[tuple[CommandJob, T]] = deque()
        self._routine: deque[Job] = deque()
        self._active_command: tuple[CommandJob, T] | None = None
        self._active: Job | None = None
        self._outstanding: tuple[Job, Request] | None = None
        self._suspect: tuple[Job, Request] | None = None  # NotSupported, not yet confirmed
        self._next_snapshot: float | None = None

    # -- inputs ------------------------------------------------------------------------

    def on_link_up(self, now: float) -> None:
        """Discovery: identification, then a full snapshot (SAS §4.3: re-query on comm-up)."""
        self.link_up = True
        self._routine.clear()
        self._active = None
        self._outstanding = self._suspect = None
        self.memory.game_lock_recheck_at = None  # the interpreter asks again if it knows one
        self._routine.append(IdentifyJob(self.address, rte=self.rte, poll=self.config))
        # LP 4D (current) again: a ticket whose 4D reply died with a crashed agent is read
        # once more (the interpreter drops a validation number it already reported)
        self._routine.append(ticket_read_job(self.address))
        self._routine.append(MeterReadJob(self.address, (), "discovery"))
        self._next_snapshot = now + self.config.snapshot_interval_s

    def on_link_down(self) -> list[tuple[T, CommandResult]]:
        """Drop routine work (discovery redoes it) and fail the commands waiting."""
        self.link_up = False
        self._routine.clear()
        self._active = None
        self._outstanding = self._suspect = None
        failed: list[tuple[T, CommandResult]] = []
        pending = list(self._commands)
        if self._active_command is not None:
            pending.insert(0, self._active_command)
        self._commands.clear()
        self._active_command = None
        for _, handle in pending:
            failed.append((handle, CommandResult(False, "the machine link is down")))
        return failed

    def request(self, read: ReadRequest) -> None:
        """A read the interpreter asked for. Ignored while the link is down: discovery
        at the next link-up reads everything."""
        if not self.link_up:
            return
        queued = [j for j in self._routine if not j.started]
        match read:
            case ReadMeters(codes=codes, reason=reason):
                for job in queued:
                    if isinstance(job, MeterReadJob):
                        job.merge(codes, reason)
                        return
                self._routine.append(MeterReadJob(self.address, codes, reason))
            case ReadHandpay():
                if not any(isinstance(j, SingleReadJob) and j.kind == 0x1B for j in queued):
                    self._before_meter_reads(SingleReadJob(self.address, HandpayInfoRequest()))
            case ReadTicket():
                if not any(isinstance(j, SingleReadJob) and j.kind == 0x4D for j in queued):
                    self._before_meter_reads(ticket_read_job(self.address))
            case ReadLastBill():
                if not any(isinstance(j, SingleReadJob) and j.kind == 0x48 for j in queued):
                    self._before_meter_reads(SingleReadJob(self.address, LastBillRequest()))
            case ReadGameLock():
                if not any(isinstance(j, GameLockJob) for j in queued):
                    self._before_meter_reads(
                        GameLockJob(self.address, self.config.game_lock_recheck_s))
            case ReadIdentity():
                if not any(isinstance(j, IdentifyJob) for j in queued):
                    self._routine.append(IdentifyJob(self.address, rte=self.rte,
                                                     poll=self.config, set_rte=False))

    def _before_meter_reads(self, job: Job) -> None:
        """LP 1B / 4D go ahead of queued meter reads: they are one short poll each, and a
        meter read begun after an LP 4D answer is the one that settles its ticket
        (agent/derive/tickets.py), while meters lose nothing by waiting."""
        for index, queued in enumerate(self._routine):
            if isinstance(queued, MeterReadJob) and not queued.started:
                self._routine.insert(index, job)
                return
        self._routine.append(job)

    def command(self, command: MachineCommand, handle: T) -> None:
        self._commands.append((CommandJob(command), handle))

    @property
    def idle(self) -> bool:
        return (self._active_command is None and not self._commands and self._active is None
                and not self._routine)

    @property
    def outstanding(self) -> Request | None:
        """The long poll sent and not yet concluded."""
        return self._outstanding[1] if self._outstanding is not None else None

    def pending_commands(self) -> int:
        return len(self._commands) + (self._active_command is not None)

    # -- planning ----------------------------------------------------------------------

    def next_long_poll(self, now: float) -> tuple[Request | None, Outputs[T]]:
        """The long poll to send after this cycle's general poll (None: none), and what
        jobs that finished without a poll produced."""
        out: Outputs[T] = Outputs()
        if self._outstanding is not None:
            return self._outstanding[1], out
        if not self.link_up or self._suspect is not None:
            return None, out
        if self._next_snapshot is not None and now >= self._next_snapshot:
            self._next_snapshot = now + self.config.snapshot_interval_s
            self.memory.ignored.clear()  # probe again (see the module docstring)
            if not any(isinstance(j, MeterReadJob) and j.full and not j.started
                       for j in self._routine):
                self._routine.append(MeterReadJob(self.address, (), "snapshot"))
        recheck = self.memory.game_lock_recheck_at
        if recheck is not None and now >= recheck:
            self.memory.game_lock_recheck_at = None  # the read sets it again if still locked
            self.request(ReadGameLock(self.address))
        while True:
            if self._active_command is None and self._commands:
                candidate = self._commands.popleft()
                if not self._start_command(candidate[1]):
                    continue  # cancelled while queued (its deadline passed): never sent
                self._active_command = candidate
            if self._active_command is not None:
                job, handle = self._active_command
                poll = job.next_poll(self.memory, now)
                if poll is not None:
                    self._outstanding = (job, poll)
                    return poll, out
                out.observations += job.finish(self.memory, now)
                out.commands.append((handle, job.result or CommandResult(False, "no result")))
                self._active_command = None
                continue
            if self._active is None and self._routine:
                self._active = self._routine.popleft()
            if self._active is None:
                return None, out
            routine = self._active
            if now < routine.not_before:
                return None, out  # a failed read waits for its retry
            poll = routine.next_poll(self.memory, now)
            routine.started = True
            if poll is not None:
                self._outstanding = (routine, poll)
                return poll, out
            out.observations += routine.finish(self.memory, now)
            self._active = None

    def replied(self, reply: Reply, now: float) -> list[Observation]:
        job, poll = self._take()
        if job is None or poll is None:
            return []
        self.memory.verdicts[poll.command] = True
        return job.reply(poll, reply, self.memory, now)

    def not_supported(self, now: float) -> list[Observation]:
        """Silence to every send of the long poll. In non-RTE mode that is also what a cut
        cable looks like while the link is still deemed up, so it is only a suspicion until
        the next general poll: :meth:`general_poll_done` confirms it or turns it into a
        failure (a poll wrongly remembered as unsupported would never be sent again)."""
        job, poll = self._take()
        if job is not None and poll is not None:
            self._suspect = (job, poll)
        return []

    def general_poll_done(self, answered: bool, now: float) -> list[Observation]:
        """The general poll after a long poll: ``answered`` when the machine replied."""
        if self._suspect is None:
            return []
        job, poll = self._suspect
        self._suspect = None
        if answered:
            # SAS §3.5: the machine is there and ignored the long poll: not implemented
            self.memory.ignored.add(poll.command)
            self.memory.verdicts[poll.command] = False
            return job.unsupported(poll, self.memory, now)
        return job.failed(poll, "no reply", self.memory, now)

    def failed(self, reason: str, now: float) -> list[Observation]:
        job, poll = self._take()
        if job is None or poll is None:
            return []
        return job.failed(poll, reason, self.memory, now)

    def _take(self) -> tuple[Job | None, Request | None]:
        if self._outstanding is None:
            return None, None
        job, poll = self._outstanding
        self._outstanding = None
        return job, poll
