"""The machine (EGM) role of SAS, for the emulator: words in, polls out; replies in, bytes out.

The caller decides WHAT to answer; this class does the framing, the CRC, the NACK of a
corrupted long poll, the sync rule and the implied ACK / NACK bookkeeping of SAS §3.5:

- a poll that differs from the previous one (or any poll to another address, or a global
  broadcast) acknowledges the last reply: ``ReplyAcknowledged`` is reported and the reply
  is forgotten;
- the same poll again is an implied NACK: the stored reply is re-sent automatically and
  ``ReplyResent`` is reported (the caller must not answer it again);
- out of sync (after ``reset()`` at power-up, or ``lose_sync()`` at a loop break) polls to
  this address are not heard at all (``PollIgnored``: no answer, no re-send) until a poll
  to another address or to address 0 arrives (``Synchronized``);
- a global broadcast long poll (address 0, type G) is never answered; a well-formed one
  with a CRC is surfaced as ``BroadcastReceived`` so the caller can apply it (LP 7F).

The time-based parts (5 s without an address byte is a loop break, chirps) belong to the
caller, which owns the clock: it calls ``lose_sync()`` and sends ``chirp()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sas_protocol.errors import (
    CrcError,
    LengthError,
    LocalProtocolError,
    RemoteProtocolError,
)
from sas_protocol.messages.requests import (
    GeneralPoll,
    Poll,
    Request,
    check_address,
    decode_request,
    request_length,
)
from sas_protocol.messages.responses import Ack, Busy, ExceptionReply, Nack
from sas_protocol.rte import RealTimeEvent, encode_rte_frame
from sas_protocol.variants import DEFAULT_LAYOUTS, PollLayouts


@runtime_checkable
class WordLike(Protocol):
    """One 9-bit SAS character: a byte and its wakeup (9th) bit."""

    @property
    def value(self) -> int: ...

    @property
    def wakeup(self) -> bool: ...


class Encodable(Protocol):
    def encode(self, address: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class PollReceived:
    """A poll to answer. ``repeat`` is True when it repeats the previous poll but there was
    no stored reply to re-send (the previous poll went unanswered)."""

    poll: Poll
    frame: bytes
    repeat: bool = False


@dataclass(frozen=True, slots=True)
class ReplyResent:
    """Implied NACK (SAS §3.5): the host repeated its poll and the last reply was re-sent.
    ``count`` is how many times this reply has now been re-sent (2 = the final copy)."""

    poll: Poll
    frame: bytes
    count: int


@dataclass(frozen=True, slots=True)
class ReplyAcknowledged:
    """Implied ACK (SAS §3.5): the host moved on, so ``reply`` reached it."""

    reply: object
    frame: bytes


@dataclass(frozen=True, slots=True)
class PollRejected:
    """A malformed poll. For a CRC error on a poll to this address a NACK has been queued
    (SAS §3.5); a malformed broadcast is never NACKed (SAS §2.2.2.4)."""

    error: RemoteProtocolError


@dataclass(frozen=True, slots=True)
class PollIgnored:
    """A poll to this address heard while out of sync (SAS §3.5 sync rule): its bytes are
    dropped, nothing is answered and no stored reply is re-sent."""

    address_byte: int


@dataclass(frozen=True, slots=True)
class Synchronized:
    """The machine was out of sync and saw a poll to another address or to address 0
    (SAS §3.5): from now on it answers polls to itself."""

    address_byte: int


@dataclass(frozen=True, slots=True)
class BroadcastReceived:
    """A global broadcast long poll (address 0, type G; SAS §2.2.2.4) with a good CRC, such
    as LP 7F (set date and time). The machine acts on it and never answers it."""

    poll: Request
    frame: bytes


MachineEvent = (
    PollReceived | ReplyResent | ReplyAcknowledged | PollRejected | PollIgnored
    | Synchronized | BroadcastReceived
)


BROADCAST = 0x00  # SAS §2.2.2.4: address byte 00 with the wakeup bit, a global broadcast


class MachineProtocol:
    """The SAS machine role for one address. Not thread-safe; drive it from one thread.

    ``synced=False`` starts it as a machine does at power-up (SAS §3.5: it waits for a poll
    to another address); the default starts it already in step with the host.
    """

    def __init__(
        self, address: int, *, synced: bool = True, layouts: PollLayouts = DEFAULT_LAYOUTS
    ) -> None:
        check_address(address)
        self.address = address
        self.layouts = layouts  # the disputed poll layouts this machine speaks (§3.9b)
        self._synced = synced
        self._buffer: bytearray | None = None  # long poll being collected (own or broadcast)
        self._events: list[MachineEvent] = []
        self._out = bytearray()
        self._last_poll: bytes | None = None
        self._last_reply: tuple[object, bytes] | None = None
        self._resent = 0
        self._pending: Poll | None = None  # poll awaiting the caller's answer

    # --- sync -------------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """False after power-up or a loop break, until a poll to another address (SAS §3.5)."""
        return self._synced

    def lose_sync(self) -> None:
        """A loop break (SAS §4.2: no address byte for 5 s): polls to this address are ignored
        until the host re-syncs. The stored reply is kept, so the re-sync poll (a poll to
        another address) still acknowledges it (SAS §3.5 implied ACK); the host moved on.
        A half-received frame is dropped: its tail, arriving after the break, must not
        complete it into a poll the machine would answer while out of sync."""
        self._synced = False
        self._buffer = None
        self._pending = None

    def reset(self) -> None:
        """Power-up: everything volatile is forgotten (the stored reply, the last poll, a
        half-received frame, a poll awaiting its answer, bytes not yet sent) and the machine
        waits for a sync poll (SAS §3.5). Events already reported stay to be drained."""
        self._synced = False
        self._buffer = None
        self._out.clear()
        self._last_poll = None
        self._last_reply = None
        self._resent = 0
        self._pending = None

    # --- input ------------------------------------------------------------------------------

    def receive_words(self, words: Iterable[WordLike | tuple[int, bool]]) -> None:
        """Feed received characters: objects with ``.value``/``.wakeup`` or (value, wakeup)."""
        for word in words:
            if isinstance(word, tuple):
                value, wakeup = int(word[0]), bool(word[1])
            else:
                value, wakeup = int(word.value), bool(word.wakeup)
            if not 0 <= value <= 0xFF:
                raise LocalProtocolError(f"word value must be 0..255, got {value}")
            self._receive(value, wakeup)

    def _receive(self, value: int, wakeup: bool) -> None:
        if wakeup:
            if self._buffer is not None:
                junk = bytes(self._buffer)
                self._buffer = None
                if junk != bytes((BROADCAST,)):  # a lone 00 is a sync byte, not junk
                    # SAS §2.3.2: a new address byte ends an unfinished message; it is junk.
                    self._events.append(
                        PollRejected(LengthError("incomplete long poll", junk)))
            if value in (self.address, 0x80 | self.address):
                if not self._synced:
                    # SAS §3.5 sync rule: polls to itself are not heard until a sync poll
                    self._events.append(PollIgnored(value))
                elif value == self.address:
                    self._buffer = bytearray((value,))
                else:
                    self._poll_complete(GeneralPoll(), bytes((value,)))
                return
            # A poll to another address or a global broadcast: implied ACK (SAS §3.5), and
            # it syncs a machine that lost sync (SAS §3.5 sync rule).
            self._acknowledge()
            self._last_poll = None
            if not self._synced:
                self._synced = True
                self._events.append(Synchronized(value))
            if value == BROADCAST:
                self._buffer = bytearray((value,))
            return
        if self._buffer is None:
            return  # body bytes of a message for another address, or line noise
        self._buffer.append(value)
        length = request_length(bytes(self._buffer))
        if length is not None and len(self._buffer) >= length:
            frame = bytes(self._buffer)
            self._buffer = None
            self._long_poll_complete(frame)

    def _long_poll_complete(self, frame: bytes) -> None:
        if frame[0] == BROADCAST:
            self._broadcast_complete(frame)
            return
        try:
            _, request = decode_request(frame, self.layouts)
        except CrcError as exc:
            # SAS §3.5: a long poll with a bad CRC is answered with address | 0x80.
            self._out.append(self.address | 0x80)
            self._events.append(PollRejected(exc))
            return
        except RemoteProtocolError as exc:
            self._events.append(PollRejected(exc))
            return
        self._poll_complete(request, frame)

    def _broadcast_complete(self, frame: bytes) -> None:
        # SAS §2.2.2.4: type G is never ACKed or NACKed, whatever arrived.
        try:
            _, request = decode_request(frame, self.layouts)
        except RemoteProtocolError as exc:
            self._events.append(PollRejected(exc))
            return
        if request.HAS_CRC:
            self._events.append(BroadcastReceived(request, frame))
        # else: a type R poll (or an unknown command) has no CRC to trust and asks for data
        # that nobody may send; after a 00 address byte it is as likely line noise: dropped.

    def _poll_complete(self, poll: Poll, frame: bytes) -> None:
        if frame == self._last_poll:
            if self._last_reply is not None:
                # SAS §3.5 implied NACK: re-send the same reply.
                self._resent += 1
                self._out += self._last_reply[1]
                self._events.append(ReplyResent(poll, frame, self._resent))
                self._pending = None
                return
            self._pending = poll
            self._events.append(PollReceived(poll, frame, repeat=True))
            return
        self._acknowledge()
        self._last_poll = frame
        self._pending = poll
        self._events.append(PollReceived(poll, frame))

    def _acknowledge(self) -> None:
        if self._last_reply is not None:
            reply, frame = self._last_reply
            self._events.append(ReplyAcknowledged(reply, frame))
        self._last_reply = None
        self._resent = 0

    # --- output -----------------------------------------------------------------------------

    @property
    def awaiting_answer(self) -> bool:
        """True while a received poll has not been answered (or declined with ``ignore``)."""
        return self._pending is not None

    def _answer(self, reply: object, frame: bytes, *, store: bool) -> None:
        if self._pending is None:
            raise LocalProtocolError("no poll is waiting for an answer")
        self._pending = None
        self._out += frame
        if store:
            self._last_reply = (reply, frame)
            self._resent = 0

    def send_reply(self, reply: Encodable) -> None:
        """Answer the pending poll with ``reply`` (a response, ExceptionReply, Ack ...)."""
        store = not isinstance(reply, Busy | Nack)
        self._answer(reply, reply.encode(self.address), store=store)

    def send_event(self, event: RealTimeEvent) -> None:
        """Answer the pending poll with an RTE frame ``addr FF code data CRC`` (SAS §12)."""
        self._answer(event, encode_rte_frame(self.address, event), store=True)

    def send_exception(self, code: int) -> None:
        """Answer a general poll (non-RTE) with one exception byte."""
        if not 0 <= code <= 0xFF:
            raise LocalProtocolError(f"exception code must be one byte, got {code}")
        self.send_reply(ExceptionReply(code))

    def send_ack(self) -> None:
        self.send_reply(Ack())

    def send_nack(self) -> None:
        self.send_reply(Nack())

    def send_busy(self) -> None:
        """``addr 00``: busy; not stored, so a repeated poll is offered to the caller again."""
        self.send_reply(Busy())

    def send_raw(self, frame: bytes) -> None:
        """Answer with raw bytes (tests and fault injection); stored like a reply."""
        self._answer(bytes(frame), bytes(frame), store=True)

    def ignore(self) -> None:
        """Decline to answer the pending poll (SAS §3.5: unsupported long polls get silence)."""
        self._pending = None

    def chirp(self) -> bytes:
        """The loop-break chirp: the machine's own address, to be sent WITH the wakeup bit."""
        return bytes((self.address,))

    # --- draining ---------------------------------------------------------------------------

    def events_received(self) -> list[MachineEvent]:
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        data, self._out = bytes(self._out), bytearray()
        return data


__all__ = [
    "BroadcastReceived",
    "MachineEvent",
    "MachineProtocol",
    "PollIgnored",
    "PollReceived",
    "PollRejected",
    "ReplyAcknowledged",
    "ReplyResent",
    "Synchronized",
    "WordLike",
]
