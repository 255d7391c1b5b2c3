"""The host role of SAS as a sans-I/O state machine (one machine address).

The caller owns the clock and the line. Its loop::

    host.send(poll)
    while host.awaiting_reply:
        for item in host.data_to_send():            # sync poll, the poll, or a re-send
            transport.write(item.data, wakeup=item.wakeup)
        chunk = read until the reply window closes or bytes arrive
        if chunk: host.receive_data(chunk)
        else:     host.receive_timeout(now)         # the reply window closed (caller's clock)
    for event in host.events_received(): ...

Rules implemented (docs/sas.md has the full story):

- Implied ACK (SAS §3.5): the host never sends ACK bytes; its next, *different* poll
  acknowledges the last reply, and the same poll again asks for a re-send (implied NACK).
  So a retry re-sends the identical bytes, and a new poll that would look identical to the
  previous one (two general polls in a row, or two long polls with the same command) is
  preceded by a sync poll: a general poll to ``sync_address``, which is never answered.
- Sync (SAS §3.3): the first poll of the session, the first after link down and the first
  after a poll that failed are preceded by the sync poll too (whenever the host cannot know
  what the machine last saw).
- Retries: a poll is sent at most ``max_sends`` times (SAS §3.2: 3 in total). A timeout, a
  bad CRC, a malformed frame, a NACK or a busy reply each use one send. After bad bytes the
  rest of that reply window is ignored (late bytes must not be taken for the re-send's reply)
  and the re-send is queued when the window closes.
- Unsupported long polls get no reply at all (SAS §3.5): when every send of a long poll met
  silence while the link is up, ``NotSupported(poll)`` is reported instead of a failure.
- RTE (SAS §12): in RTE mode any long poll may be answered by ``addr FF code data CRC``; the
  event is delivered and the long poll re-queued (behind a sync poll, so that the event is
  acknowledged) without using a send. A general poll in RTE mode is answered by an event
  or by ``addr FF 00`` (nothing to report); silence is a failed send, as in non-RTE mode
  (issue 12: a powered-off RTE machine must go down). Such a frame is also taken in non-RTE mode: a
  machine left in RTE mode (the host restarted) sends them until LP 0E switches it back,
  and its events must not be lost. A non-RTE general-poll byte equal to the address is
  therefore held until the next byte or the close of the reply window tells an exception
  code from the start of a frame (the mode itself only changes when LP 0E is ACKed).
- Exception confirmation (optional): the one-byte answer to a non-RTE general poll has no
  CRC (SAS §3.4), so a flipped bit can turn ``00`` into a door or tilt code. For the codes in
  ``confirm_exceptions`` the host repeats the general poll at once (an implied NACK, SAS
  §3.5: the machine re-sends the same answer) and reports a code as soon as it has been read
  twice (two readings agree, or a later reading repeats an earlier one); the disagreement is
  reported as ``FrameRejected``. The same byte twice in one reply window is two readings:
  a machine that answered copies of the poll late sends their answers together (issue 17).
  While no code has been read twice, the general poll is
  re-sent, up to ``CONFIRM_EXTRA_SENDS`` sends beyond ``max_sends``: a machine that heard a
  re-send flipped into a poll to another address took it as an implied ACK and moved on to
  its next exception (issue 12), and that new answer is confirmed rather than dropped and
  then acknowledged by a sync poll. A code read for the first time late in the poll still
  gets ``CONFIRM_EXTRA_SENDS`` sends after the one that read it (one to read it again, one
  for a re-send the machine heard wrong once more), within ``CONFIRM_ROUNDS`` such rounds
  beyond ``max_sends`` in all: without them, a machine that moved on twice answered its
  third exception to the last send, and the sync poll after the failed poll acknowledged it
  unread. When the sends run out, or meet silence, nothing is
  reported but ``FrameRejected`` and ``PollFailed``: a byte that cannot be confirmed is line
  noise as far as the host can tell (a real alarm flipped to ``00`` is lost the same way, so
  dropping it adds no new failure mode). With
  ``confirm_undefined`` (the default) every code that is not in the reference's exception
  table (SAS §3.11) is confirmed the same way: ``5E`` is ``1E`` with one bit flipped.
  ``ExceptionReported.defined`` says whether a confirmed code is in the table.
- Link health: consecutive failed sends bring the link down once there are at least
  ``link_down_after`` of them and they span at least ``link_down_after_s`` seconds of the
  caller's clock (``receive_timeout(now)``), so one glitch is a retry and a dead machine an
  alert within seconds; the first good reply brings it up. Silence to a general poll is a
  failure in every mode; silence to a long poll only in RTE mode (in non-RTE mode it is the
  normal answer to an unsupported poll, and the general polls probe the link).
- States as data: :class:`PollState` and :class:`LinkState` change only along
  :data:`POLL_TRANSITIONS` and :data:`LINK_TRANSITIONS` (h11 keeps its transitions as data;
  docs/sas.md draws its tables from these, checked by a test).

Size: one class over 500 lines on purpose. The host role is one state machine per
machine (implied ACK, re-sends, exception confirmation, RTE, link health), and every one of
its rules acts on the same poll in flight; the states, tables and events live apart in
``sas_protocol.host_model`` so that this module holds only the transitions' code.
"""

from __future__ import annotations

from collections.abc import Collection

from sas_protocol.codes import IDLE_EXCEPTIONS
from sas_protocol.errors import (
    CrcError,
    FramingError,
    LengthError,
    LocalProtocolError,
    RemoteProtocolError,
    UnexpectedAddressError,
)
from sas_protocol.host_model import (
    DEFINED_EXCEPTIONS,
    LINK_TRANSITIONS,
    POLL_TRANSITIONS,
    ExceptionReported,
    FailureReason,
    FrameRejected,
    HostEvent,
    LinkDown,
    LinkState,
    LinkTrigger,
    LinkUp,
    NoActivity,
    NotSupported,
    Outgoing,
    PollFailed,
    PollState,
    PollTrigger,
    RealTimeEventReceived,
    ReplyReceived,
)
from sas_protocol.messages.requests import (
    GeneralPoll,
    Poll,
    RealTimeReportingRequest,
    RomSignatureRequest,
    check_address,
)
from sas_protocol.messages.responses import (
    Ack,
    Busy,
    ExceptionReply,
    Nack,
    Reply,
    decode_reply,
    decode_reply_frame,
)
from sas_protocol.rte import RTE_MARKER, RealTimeEvent, decode_rte_frame, rte_frame_length

__all__ = [
    "DEFINED_EXCEPTIONS",
    "LINK_TRANSITIONS",
    "POLL_TRANSITIONS",
    "ExceptionReported",
    "FailureReason",
    "FrameRejected",
    "HostEvent",
    "HostProtocol",
    "LinkDown",
    "LinkState",
    "LinkTrigger",
    "LinkUp",
    "NoActivity",
    "NotSupported",
    "Outgoing",
    "PollFailed",
    "PollState",
    "PollTrigger",
    "RealTimeEventReceived",
    "ReplyReceived",
]

_NEED_MORE = -1
#: sends beyond ``max_sends`` while an exception byte is being confirmed, and sends after
#: the one that read a code for the first time in the poll (module docstring)
CONFIRM_EXTRA_SENDS = 2
#: while confirming, a poll takes at most ``CONFIRM_ROUNDS * CONFIRM_EXTRA_SENDS`` sends
#: beyond ``max_sends``: a bound on a line that brings a new byte to every send
CONFIRM_ROUNDS = 2


class HostProtocol:
    """SAS host role for the machine at ``address``. Not thread-safe; one owner drives it."""

    def __init__(
        self,
        address: int,
        *,
        sync_address: int = 0,
        max_sends: int = 3,
        link_down_after: int = 3,
        link_down_after_s: float = 0.0,
        rte_mode: bool = False,
        confirm_exceptions: Collection[int] = frozenset(),
        confirm_undefined: bool = True,
    ) -> None:
        check_address(address)
        if not 0 <= sync_address <= 127 or sync_address == address:
            raise LocalProtocolError(
                f"sync_address must be 0..127 and differ from the machine ({address})"
            )
        if max_sends < 1 or link_down_after < 1:
            raise LocalProtocolError("max_sends and link_down_after must be >= 1")
        if link_down_after_s < 0:
            raise LocalProtocolError("link_down_after_s must be >= 0")
        self.address = address
        self.sync_address = sync_address
        self.max_sends = max_sends
        self.link_down_after = link_down_after
        self.link_down_after_s = link_down_after_s
        self.rte_mode = rte_mode
        self.confirm_exceptions = frozenset(confirm_exceptions)
        self.confirm_undefined = confirm_undefined
        self._state = PollState.IDLE
        self._link = LinkState.UNKNOWN
        # data of the poll in flight
        self._poll: Poll | None = None
        self._frame = b""
        self._sends = 0
        self._all_silent = True
        self._buffer = bytearray()
        self._bad: FailureReason = FailureReason.FRAMING  # why DISCARDING was entered
        self._readings: list[int] = []  # exception codes read while CONFIRMING
        self._confirm_until = 0  # sends a code read for the first time asks for
        # data across polls
        self._out: list[Outgoing] = []
        self._events: list[HostEvent] = []
        self._last_sent: bytes | None = None
        self._need_sync = True
        self._failures = 0
        self._first_failure_at = 0.0
        self._rom_request: RomSignatureRequest | None = None

    # --- state --------------------------------------------------------------------------------

    @property
    def state(self) -> PollState:
        return self._state

    @property
    def link_state(self) -> LinkState:
        return self._link

    @property
    def awaiting_reply(self) -> bool:
        """True from ``send`` until the poll is answered or given up."""
        return self._state is not PollState.IDLE

    @property
    def link_up(self) -> bool:
        return self._link is LinkState.UP

    @property
    def current_poll(self) -> Poll | None:
        return self._poll

    # --- input --------------------------------------------------------------------------------

    def send(self, poll: Poll) -> None:
        """Start ``poll``; its bytes (and a sync poll if needed) appear in ``data_to_send``."""
        if self._state is not PollState.IDLE:
            raise LocalProtocolError("a poll is already awaiting its reply")
        frame = poll.encode(self.address)
        self._move(PollTrigger.SEND)
        self._poll, self._frame = poll, frame
        self._sends, self._all_silent = 0, True
        # SAS §3.5: a poll that repeats the previous one (same address and command) would be
        # an implied NACK; a sync poll to another address in between acknowledges instead.
        repeats = self._last_sent is not None and self._last_sent[:2] == frame[:2]
        self._queue_send(sync=self._need_sync or repeats)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the line (any chunking)."""
        if not data:
            return
        if self._state is PollState.IDLE:
            self._events.append(
                FrameRejected(FramingError("bytes received while no reply was awaited", data))
            )
            return
        if self._state is PollState.DISCARDING:
            return  # SAS §2.3: ignore the rest of a bad reply's window
        self._buffer += data
        self._parse()

    def receive_timeout(self, now: float | None = None) -> None:
        """The reply window closed. ``now`` is the caller's clock (seconds, any epoch), used
        by the link-down time span; it is required when ``link_down_after_s`` is set."""
        if self._state is PollState.IDLE:
            return
        if now is None:
            if self.link_down_after_s:
                raise LocalProtocolError("receive_timeout needs now= with link_down_after_s")
            now = 0.0
        if self._state is PollState.DISCARDING:
            self._attempt_failed(self._bad, silent=False, now=now)
            return
        poll, buf = self._poll, bytes(self._buffer)
        assert poll is not None
        if buf:
            if len(buf) == 1 and buf[0] == self.address:
                # A lone address byte: an ACK, or (non-RTE general poll) an exception code
                # equal to our address, waited for in case an RTE frame or the ROM signature
                # followed it (_expected_length).
                if isinstance(poll, GeneralPoll):
                    if not self.rte_mode:
                        self._complete(buf)
                        return
                elif poll.expects_ack:
                    self._complete(buf)
                    return
            self._reject(LengthError("incomplete reply", buf), FailureReason.FRAMING)
            self._attempt_failed(FailureReason.FRAMING, silent=False, now=now)
            return
        self._attempt_failed(FailureReason.TIMEOUT, silent=True, now=now)

    def receive_late(self) -> None:
        """The caller threw away bytes that came after a reply window of this poll closed
        (taken for the next send's reply they could be misread). The machine answered, late:
        a long poll whose sends all met silence in their windows is then a failed poll, not
        an unsupported one (SAS §3.5: a machine ignores only the polls it does not support)."""
        if self._poll is not None:
            self._all_silent = False

    # --- output -------------------------------------------------------------------------------

    def data_to_send(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def events_received(self) -> list[HostEvent]:
        events, self._events = self._events, []
        return events

    # --- internals ----------------------------------------------------------------------------

    def _move(self, trigger: PollTrigger) -> None:
        """Follow POLL_TRANSITIONS; a (state, trigger) not in the table is a bug."""
        try:
            self._state = POLL_TRANSITIONS[self._state][trigger]
        except KeyError:
            raise LocalProtocolError(
                f"no transition from {self._state.value} on {trigger.value}") from None

    def _move_link(self, trigger: LinkTrigger) -> None:
        before = self._link
        self._link = LINK_TRANSITIONS[before][trigger]
        if self._link is before:
            return
        if self._link is LinkState.UP:
            self._events.append(LinkUp())
        else:
            self._need_sync = True
            self._events.append(LinkDown())

    def _queue_send(self, *, sync: bool) -> None:
        if sync:
            self._out.append(Outgoing(bytes((0x80 | self.sync_address,)), True))
            self._need_sync = False
        self._out.append(Outgoing(self._frame, True))
        self._last_sent = self._frame
        self._sends += 1
        self._buffer.clear()

    def _expected_length(self, buf: bytes) -> int:
        """Total length of the reply frame at the start of ``buf``; _NEED_MORE; or raises."""
        poll, address = self._poll, self.address
        assert poll is not None
        if isinstance(poll, GeneralPoll) and not self.rte_mode:
            if buf[0] != address:
                return 1  # SAS §3.4: a one-byte exception code
            # A byte equal to our address may be a one-byte exception code (address 0x11 and
            # exception 11 "slot door opened" look the same) or the start of a frame: an RTE
            # event (SAS §12: ``addr FF code data CRC`` from a machine still in RTE mode, e.g.
            # after the host restarted, until LP 0E is ACKed) or the pending ROM signature
            # (SAS §6). As for ACK versus busy, the next byte tells, or, when none comes, the
            # close of the reply window (receive_timeout takes the lone byte as an exception).
            if len(buf) < 2:
                return _NEED_MORE
            if buf[1] == RTE_MARKER:
                return _NEED_MORE if len(buf) < 3 else rte_frame_length(buf[2])
            if buf[1] == 0x21 and self._rom_request is not None:
                return 6
            return 1  # the exception code, then stray bytes
        if not isinstance(poll, GeneralPoll) and buf[0] == address | 0x80:
            return 1  # NACK
        if buf[0] != address:
            raise UnexpectedAddressError(f"reply does not start with address {address}", buf)
        if len(buf) < 2:
            # A lone address byte may be an ACK or the start of busy (addr 00) or of an RTE
            # frame: it is taken as an ACK only when the reply window closes.
            return _NEED_MORE
        second = buf[1]
        if second == RTE_MARKER:
            return _NEED_MORE if len(buf) < 3 else rte_frame_length(buf[2])
        if second == 0x21 and self._rom_request is not None:
            return 6  # SAS §12.7: the ROM signature is never sent as an RTE frame
        if isinstance(poll, GeneralPoll):
            raise FramingError("RTE-mode general poll reply is not an event", buf)
        if second == 0x00:
            return 2  # busy
        if poll.expects_ack:
            # SAS §3.5: an ACK is the address byte alone. ``addr cmd …`` answers another poll:
            # the command byte was damaged on the way and the machine answered (or, as an
            # implied NACK, re-sent) what it heard. Taking its first byte for the ACK would
            # report as done a command the machine never got; the poll is sent again.
            raise FramingError(
                f"reply echoes {second:02X}, poll {poll.command:02X} expects an ACK", buf)
        if second != poll.command:
            raise FramingError(f"reply echoes {second:02X}, poll was {poll.command:02X}", buf)
        length = poll.reply_length
        if length is not None:
            return length
        return _NEED_MORE if len(buf) < 3 else 3 + buf[2] + 2

    def _parse(self) -> None:
        buf = bytes(self._buffer)
        try:
            length = self._expected_length(buf)
        except RemoteProtocolError as exc:
            self._reject(exc, FailureReason.FRAMING)
            return
        if length == _NEED_MORE or len(buf) < length:
            return
        end = length
        if self._repeated_code(buf, length):
            # SAS §3.5: each copy of the general poll gets the same answer. A machine that
            # answered copies late (after their windows: SAS §2.3.1) sends those answers
            # together; the repeat is a second reading of the code (issue 17).
            self._readings.append(buf[0])
            end = 2
        self._complete(buf[:length])
        if len(buf) > end:
            extra = buf[end:]
            self._events.append(FrameRejected(FramingError("bytes after the reply", extra)))

    def _repeated_code(self, buf: bytes, length: int) -> bool:
        """A one-byte non-RTE general-poll answer that needs confirming, followed at once by
        the same byte."""
        return (
            length == 1 and len(buf) > 1 and buf[1] == buf[0] and not self.rte_mode
            and isinstance(self._poll, GeneralPoll) and self._needs_confirming(buf[0])
        )

    def _reject(self, error: RemoteProtocolError, reason: FailureReason) -> None:
        self._events.append(FrameRejected(error))
        self._move(PollTrigger.BAD_BYTES)
        self._bad = reason

    def _send_limit(self) -> int:
        """Sends allowed for the poll in flight: more while an exception is confirmed."""
        if not self._readings or self.max_sends == 1:
            return self.max_sends
        most = self.max_sends + CONFIRM_ROUNDS * CONFIRM_EXTRA_SENDS
        return min(most, max(self.max_sends + CONFIRM_EXTRA_SENDS, self._confirm_until))

    def _needs_confirming(self, code: int) -> bool:
        return code in self.confirm_exceptions or (
            # SAS §3.11: a byte outside the table is most likely a defined code with a bit
            # flipped (5E for 1E, belly door closed); the re-send tells
            self.confirm_undefined and code not in DEFINED_EXCEPTIONS
        )

    def _complete(self, frame: bytes) -> None:
        poll = self._poll
        assert poll is not None
        try:
            if len(frame) > 2 and frame[1] == RTE_MARKER and frame[0] == self.address:
                self._rte_frame(poll, decode_rte_frame(frame, address=self.address))
                return
            if (
                self._rom_request is not None
                and len(frame) == 6
                and frame[1] == 0x21
                and not isinstance(poll, RomSignatureRequest)
            ):
                self._rom_signature(poll, decode_reply_frame(frame, address=self.address))
                return
            reply = decode_reply(poll, frame, address=self.address)
        except CrcError as exc:
            self._reject(exc, FailureReason.CRC)
            return
        except RemoteProtocolError as exc:
            self._reject(exc, FailureReason.FRAMING)
            return
        if isinstance(reply, Nack):
            self._attempt_failed(FailureReason.NACK, silent=False, now=None)
        elif isinstance(reply, Busy):
            self._attempt_failed(FailureReason.BUSY, silent=False, now=None)
        elif isinstance(reply, ExceptionReply) and (
            self._readings or self._needs_confirming(reply.code)
        ):
            self._good()
            self._confirm(poll, reply.code)
        else:
            self._good()
            self._conclude()
            self._deliver(poll, reply)

    def _confirm(self, poll: Poll, code: int) -> None:
        """One more reading of an exception byte that needs confirming (see module doc)."""
        readings = self._readings
        readings.append(code)
        agreed = code in readings[:-1]  # read twice (SAS §3.5: re-sends repeat the answer)
        if not agreed:
            # a new code: the machine moved on (or the byte was hit); it gets its own reading
            self._confirm_until = max(self._confirm_until, self._sends + CONFIRM_EXTRA_SENDS)
        if len(readings) == 2 and not agreed:
            self._events.append(FrameRejected(FramingError(
                f"exception {readings[0]:02X} not confirmed: {readings[1]:02X} on the re-send",
                bytes(readings))))
        if not agreed and self._sends < self._send_limit():
            self._move(PollTrigger.CONFIRM)
            self._queue_send(sync=False)  # SAS §3.5: the same poll again, an implied NACK
            return
        if agreed or self.max_sends == 1:
            # read twice (or, with max_sends 1, there is no second reading to be had)
            self._conclude()
            self._deliver(poll, ExceptionReply(code))
            return
        self._conclude()
        self._need_sync = True
        self._events.append(PollFailed(poll, FailureReason.FRAMING))

    def _deliver(self, poll: Poll, reply: Reply) -> None:
        if isinstance(reply, ExceptionReply):
            if reply.code in IDLE_EXCEPTIONS:
                self._events.append(NoActivity(reply.code))
            else:
                self._events.append(ExceptionReported(reply.code))
            return
        if isinstance(reply, Ack):
            if isinstance(poll, RealTimeReportingRequest):
                self.rte_mode = poll.enable  # SAS §12: mode changes once LP 0E is ACKed
            elif isinstance(poll, RomSignatureRequest):
                self._rom_request = poll
        self._events.append(ReplyReceived(poll, reply))

    def _rom_signature(self, poll: Poll, reply: Reply) -> None:
        request = self._rom_request
        assert request is not None
        self._rom_request = None
        self._good()
        self._events.append(ReplyReceived(request, reply))
        if isinstance(poll, GeneralPoll):
            self._conclude()
        else:
            self._sends = 0
            self._move(PollTrigger.RESEND)
            self._queue_send(sync=True)

    def _rte_frame(self, poll: Poll, event: RealTimeEvent) -> None:
        self._good()
        if isinstance(poll, GeneralPoll):
            self._conclude()
            if event.event_code == 0x00:
                self._events.append(NoActivity(0x00))  # [unsure] some machines send FF 00
            else:
                self._events.append(RealTimeEventReceived(event, poll, substituted=False))
            return
        # SAS §12.3-12.4: the event replaced the reply; re-queue the long poll behind a
        # sync poll (which acknowledges the event) without using one of its sends.
        self._events.append(RealTimeEventReceived(event, poll, substituted=True))
        self._sends = 0
        self._move(PollTrigger.RESEND)
        self._queue_send(sync=True)

    def _attempt_failed(self, reason: FailureReason, *, silent: bool, now: float | None) -> None:
        poll = self._poll
        assert poll is not None
        if reason in (FailureReason.NACK, FailureReason.BUSY):
            self._good()  # the machine is alive and talking
        elif not silent or self.rte_mode or isinstance(poll, GeneralPoll):
            # issue 12: silence to a general poll is a failure in RTE mode too; silence to a
            # long poll only in RTE mode (otherwise it may be an unsupported poll, SAS §3.5)
            assert now is not None  # NACK and busy are the only failures without a window
            self._failure(now)
        if not silent:
            self._all_silent = False
        if self._sends < self._send_limit():
            # SAS §3.2: the same poll again asks the machine to re-send its reply.
            self._move(PollTrigger.CONFIRM if self._readings else PollTrigger.RESEND)
            self._queue_send(sync=False)
            return
        if self._readings:
            self._events.append(FrameRejected(FramingError(
                f"exception {self._readings[0]:02X} not confirmed: no valid answer to the "
                "re-send", bytes(self._readings))))
        self._conclude()
        self._need_sync = True
        if self._all_silent and not isinstance(poll, GeneralPoll) and self.link_up:
            self._events.append(NotSupported(poll))
        else:
            self._events.append(PollFailed(poll, reason))

    def _conclude(self) -> None:
        self._move(PollTrigger.CONCLUDE)
        self._poll = None
        self._buffer.clear()
        self._readings = []
        self._confirm_until = 0

    def _good(self) -> None:
        self._failures = 0
        self._move_link(LinkTrigger.ANSWER)

    def _failure(self, now: float) -> None:
        if self._failures == 0:
            self._first_failure_at = now
        self._failures += 1
        if (
            self._link is not LinkState.DOWN
            and self._failures >= self.link_down_after
            and now - self._first_failure_at >= self.link_down_after_s
        ):
            self._move_link(LinkTrigger.FAILURES)
