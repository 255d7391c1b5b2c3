"""The base message types every poll and reply module builds on.

Kept apart from ``requests`` and ``responses`` so that the modules of individual long polls
(``features``, ``multidenom``, ...) can subclass them while those two modules, which hold
the decode tables, import the subclasses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from sas_protocol.bcd import decode_bcd
from sas_protocol.crc import append_crc
from sas_protocol.errors import FramingError, LocalProtocolError
from sas_protocol.messages.layout import Field, decode_layout, encode_layout


def check_address(address: int) -> None:
    """SAS §2.1: machine addresses are 1..127 (0 means "ignore the host")."""
    if not 1 <= address <= 127:
        raise LocalProtocolError(f"machine address must be 1..127, got {address}")


def check_game(game: int) -> None:
    """Type M polls carry a 2-byte BCD game number (reference §3.3)."""
    if not 0 <= game <= 9999:
        raise LocalProtocolError(f"game number must be 0..9999, got {game}")


def bcd_value(data: bytes, frame: bytes) -> int:
    """``data`` as BCD; FramingError carrying the whole ``frame`` when it is not BCD."""
    try:
        return decode_bcd(data)
    except FramingError:
        raise FramingError("field is not BCD", frame) from None


@dataclass(frozen=True, slots=True)
class GeneralPoll:
    """``0x80 | address`` with the wakeup bit; answered by one exception byte (non-RTE)."""

    def encode(self, address: int) -> bytes:
        check_address(address)
        return bytes((0x80 | address,))


@dataclass(frozen=True, slots=True)
class Request:
    """Base of long polls. ``REPLY_LENGTH`` is the whole reply frame's length: 1 for an ACK,
    a fixed byte count, or ``None`` when the reply carries a length byte after the command."""

    COMMAND: ClassVar[int] = 0
    HAS_CRC: ClassVar[bool] = True
    REPLY_LENGTH: ClassVar[int | None] = 1

    @property
    def command(self) -> int:
        return self.COMMAND

    @property
    def reply_length(self) -> int | None:
        return self.REPLY_LENGTH

    @property
    def expects_ack(self) -> bool:
        return self.reply_length == 1

    def body(self) -> bytes:
        """The bytes after the command and before the CRC."""
        return b""

    def encode(self, address: int) -> bytes:
        check_address(address)
        frame = bytes((address, self.command)) + self.body()
        return append_crc(frame) if self.HAS_CRC else frame


@dataclass(frozen=True, slots=True)
class Ack:
    """The machine's address alone: the poll was accepted (SAS §3.5)."""

    def encode(self, address: int) -> bytes:
        return bytes((address,))


@dataclass(frozen=True, slots=True)
class Nack:
    """``address | 0x80``: the machine saw a bad CRC on the poll."""

    def encode(self, address: int) -> bytes:
        return bytes((address | 0x80,))


@dataclass(frozen=True, slots=True)
class Busy:
    """``addr 00``, no CRC: the machine cannot answer now; ask again later."""

    def encode(self, address: int) -> bytes:
        return bytes((address, 0x00))


@dataclass(frozen=True, slots=True)
class ExceptionReply:
    """The one-byte general-poll answer in non-RTE mode (00 / 1F = nothing to report)."""

    code: int

    def encode(self, address: int) -> bytes:
        return bytes((self.code,))


@dataclass(frozen=True, slots=True)
class Response:
    """Base of replies framed ``addr cmd [len] body CRC``; fixed bodies follow ``LAYOUT``."""

    COMMAND: ClassVar[int] = 0
    LAYOUT: ClassVar[tuple[Field, ...]] = ()
    VARIABLE: ClassVar[bool] = False

    @property
    def command(self) -> int:
        return self.COMMAND

    def body(self) -> bytes:
        return encode_layout(self.LAYOUT, self)

    def encode(self, address: int) -> bytes:
        body = self.body()
        if self.VARIABLE:
            if len(body) > 255:
                raise LocalProtocolError(f"LP {self.command:02X} reply body over 255 bytes")
            body = bytes((len(body),)) + body
        return append_crc(bytes((address, self.command)) + body)

    @classmethod
    def from_body(cls, body: bytes, frame: bytes) -> Self:
        return cls(**decode_layout(cls.LAYOUT, body, frame))
