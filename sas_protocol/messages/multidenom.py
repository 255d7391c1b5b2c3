"""Multi-denomination polls: the B0 preamble, B1 current and B2 enabled player denominations.

Reference §3.9b (and §3.8): ``A B0 len denom base data C`` runs the base poll ``base`` at
the player denomination ``denom`` (a table C-4 code; 00 = the default), with ``data`` the
base poll's bytes after its command and without its CRC, ``len = 2 + len(data)``. The reply
wraps the base poll's reply without its address and CRC: ``A B0 len denom base ... C``.
Errors are ``A B0 03 denom 00 err C``. A wrapped ACK is ``A B0 03 denom base A C`` (Monaco)
or a bare ``A`` (nCompass, [unsure]): ``WrappedAck`` selects which one the host waits for.

The request decoder lives with the others in ``requests``; ``responses`` decodes the reply
with ``decode_multidenom_body``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self, cast

from sas_protocol.codes import LongPoll
from sas_protocol.crc import append_crc
from sas_protocol.errors import FramingError, LengthError, LocalProtocolError, RemoteProtocolError
from sas_protocol.messages.base import Ack, Busy, Request, Response, check_address
from sas_protocol.messages.layout import Field, binary
from sas_protocol.messages.meters import MeterReply
from sas_protocol.variants import WrappedAck


class MultiDenomErrorCode(IntEnum):
    """B0 error codes (Monaco LongPollMultiDenomAwareData.cs, "Table 16.1c")."""

    POLL_NOT_SUPPORTED = 0x01
    BADLY_FORMATTED = 0x02
    NOT_MULTI_DENOM_AWARE = 0x03
    DENOMINATION_NOT_SUPPORTED = 0x04
    NOT_A_PLAYER_DENOMINATION = 0x05


#: Base polls Monaco answers inside B0 (reference §3.9b); 2F only for game 0000.
MULTI_DENOM_AWARE_POLLS = frozenset(
    {0x09, 0x11, 0x12, 0x14, 0x15, 0x16, 0x17, 0x2F, 0x56, 0x6F, 0xAF, 0xB5}
)

WrappedReply = MeterReply | Response | Ack | Busy


@dataclass(frozen=True, slots=True)
class MultiDenomRequest(Request):
    """LP B0 wrapping ``poll`` (any long poll but B0 itself) at ``denomination``."""

    denomination: int
    poll: Request
    wrapped_ack: WrappedAck = WrappedAck.WRAPPED
    COMMAND: ClassVar[int] = LongPoll.MULTI_DENOM_PREAMBLE
    REPLY_LENGTH: ClassVar[int | None] = None

    def __post_init__(self) -> None:
        if not 0 <= self.denomination <= 0xFF:
            raise LocalProtocolError(f"denomination code must be one byte, got {self.denomination}")
        if isinstance(self.poll, MultiDenomRequest):
            raise LocalProtocolError("a B0 preamble cannot wrap another B0")
        if len(self.poll.body()) > 253:
            raise LocalProtocolError("the wrapped poll's data does not fit in a B0 frame")

    @property
    def reply_length(self) -> int | None:
        if self.wrapped_ack is WrappedAck.BARE and self.poll.expects_ack:
            return 1
        return None

    def body(self) -> bytes:
        data = self.poll.body()
        return bytes((2 + len(data), self.denomination, self.poll.command)) + data


@dataclass(frozen=True, slots=True)
class MultiDenomReply(Response):
    """LP B0 reply: the base poll ``base``'s ``reply`` (a data reply, or a wrapped ACK or
    busy) at ``denomination``."""

    denomination: int
    base: int
    reply: WrappedReply
    COMMAND: ClassVar[int] = LongPoll.MULTI_DENOM_PREAMBLE
    VARIABLE: ClassVar[bool] = True

    def encode(self, address: int) -> bytes:
        check_address(address)
        if isinstance(self.reply, Ack):
            inner = bytes((self.base, address))
        elif isinstance(self.reply, Busy):
            inner = bytes((self.base, 0x00))
        else:
            frame = self.reply.encode(address)
            if frame[1] != self.base:
                raise LocalProtocolError(
                    f"wrapped reply is to LP {frame[1]:02X}, base poll is {self.base:02X}")
            inner = frame[1:-2]
        if len(inner) > 254:
            raise LocalProtocolError("wrapped reply does not fit in a B0 frame")
        return append_crc(bytes((address, self.COMMAND, 1 + len(inner), self.denomination))
                          + inner)


@dataclass(frozen=True, slots=True)
class MultiDenomError(Response):
    """LP B0 error reply ``A B0 03 denom 00 err C`` (see ``MultiDenomErrorCode``)."""

    denomination: int
    code: int
    COMMAND: ClassVar[int] = LongPoll.MULTI_DENOM_PREAMBLE
    VARIABLE: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not (0 <= self.denomination <= 0xFF and 0 <= self.code <= 0xFF):
            raise LocalProtocolError("B0 error denomination and code are one byte each")

    def body(self) -> bytes:
        return bytes((self.denomination, 0x00, self.code))

    @classmethod
    def from_body(cls, body: bytes, frame: bytes) -> Self:
        if len(body) != 3 or body[1] != 0x00:
            raise LengthError("B0 error reply must be denom 00 code", frame)
        return cls(body[0], body[2])


@dataclass(frozen=True, slots=True)
class CurrentDenominationRequest(Request):
    """LP B1 (type R). Monaco stays silent without multi-denom."""

    COMMAND: ClassVar[int] = LongPoll.SEND_CURRENT_PLAYER_DENOMINATION
    HAS_CRC: ClassVar[bool] = False
    REPLY_LENGTH: ClassVar[int | None] = 5


@dataclass(frozen=True, slots=True)
class CurrentDenominationReply(Response):
    """LP B1 reply: the player denomination code (table C-4); 00 when no game runs."""

    denomination: int
    COMMAND: ClassVar[int] = LongPoll.SEND_CURRENT_PLAYER_DENOMINATION
    LAYOUT: ClassVar[tuple[Field, ...]] = (binary("denomination", 1),)


@dataclass(frozen=True, slots=True)
class EnabledDenominationsRequest(Request):
    """LP B2 (type R). Monaco stays silent without multi-denom."""

    COMMAND: ClassVar[int] = LongPoll.SEND_ENABLED_PLAYER_DENOMINATIONS
    HAS_CRC: ClassVar[bool] = False
    REPLY_LENGTH: ClassVar[int | None] = None


@dataclass(frozen=True, slots=True)
class EnabledDenominationsReply(Response):
    """LP B2 reply ``A B2 len count code... C``: the enabled player denomination codes."""

    denominations: tuple[int, ...]
    COMMAND: ClassVar[int] = LongPoll.SEND_ENABLED_PLAYER_DENOMINATIONS
    VARIABLE: ClassVar[bool] = True

    def body(self) -> bytes:
        if len(self.denominations) > 254 or any(not 0 <= d <= 0xFF for d in self.denominations):
            raise LocalProtocolError("LP B2 takes at most 254 one-byte denomination codes")
        return bytes((len(self.denominations),)) + bytes(self.denominations)

    @classmethod
    def from_body(cls, body: bytes, frame: bytes) -> Self:
        if not body or len(body) != 1 + body[0]:
            raise LengthError("LP B2 denomination count does not match its length", frame)
        return cls(tuple(body[1:]))


def decode_multidenom_body(
    body: bytes, frame: bytes, inner: Request | None, decode_frame: Callable[[bytes], object]
) -> Response:
    """LP B0 reply body ``denom base rest`` (reference §3.9b). ``inner`` is the wrapped poll
    when known: a poll answered by ACK takes only a wrapped ACK (``rest`` = the address) or
    busy (``rest`` = 00); a data poll takes its reply, or busy. ``decode_frame`` decodes the
    wrapped reply as a whole frame (``responses.decode_reply_frame`` without B0)."""
    if len(body) < 3:
        raise LengthError("B0 reply shorter than denom, base poll and data", frame)
    denomination, base, rest = body[0], body[1], body[2:]
    if base == 0x00:
        return MultiDenomError.from_body(body, frame)
    if inner is not None and base != inner.command:
        raise FramingError(f"B0 reply wraps {base:02X}, the base poll was {inner.command:02X}",
                           frame)
    error: RemoteProtocolError = FramingError("B0 reply wraps neither ACK nor busy", frame)
    if base != LongPoll.MULTI_DENOM_PREAMBLE and (inner is None or not inner.expects_ack):
        try:
            data = decode_frame(append_crc(bytes((frame[0], base)) + rest))
        except RemoteProtocolError as exc:
            error = type(exc)(f"wrapped reply: {exc.reason}", frame)
        else:
            return MultiDenomReply(denomination, base, cast(WrappedReply, data))
    if rest == frame[:1] and (inner is None or inner.expects_ack):
        return MultiDenomReply(denomination, base, Ack())
    if rest == b"\x00":
        return MultiDenomReply(denomination, base, Busy())
    raise error
