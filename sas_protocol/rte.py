"""Real-time event frames: ``addr FF code data CRC`` (SAS §12, reference §3.12).

There is no length byte, so each event code's data length is fixed here; codes without a
layout carry no data (5-byte frame). Codes 51 and friends are read with their long polls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from sas_protocol.crc import append_crc, crc_ok
from sas_protocol.errors import (
    CrcError,
    FramingError,
    LengthError,
    LocalProtocolError,
    UnexpectedAddressError,
)
from sas_protocol.messages.layout import Field, bcd, binary, decode_layout, encode_layout

RTE_MARKER = 0xFF


@dataclass(frozen=True, slots=True)
class RealTimeEvent:
    """Base of RTE events. ``code`` is the exception code; ``fields()`` the decoded data."""

    LAYOUT: ClassVar[tuple[Field, ...]] = ()

    @property
    def event_code(self) -> int:
        return int(getattr(self, "code"))  # noqa: B009 - every subclass defines ``code``

    def data(self) -> bytes:
        return encode_layout(self.LAYOUT, self)

    def fields(self) -> dict[str, Any]:
        """The event's data fields by name (empty for events without data)."""
        return {f.name: getattr(self, f.name) for f in self.LAYOUT}


@dataclass(frozen=True, slots=True)
class PlainEvent(RealTimeEvent):
    """An event without data (every code without a layout below)."""

    code: int

    def __post_init__(self) -> None:
        if not 0 <= self.code <= 0xFF or self.code in RTE_LAYOUTS:
            raise LocalProtocolError(f"code {self.code:#04x} is not a no-data RTE event")


@dataclass(frozen=True, slots=True)
class GameStartedEvent(RealTimeEvent):
    """7E: credits wagered (2 BCD), coin-in meter (4 BCD, credits), wager type, prog group."""

    credits_wagered: int
    coin_in_meter: int
    wager_type: int
    progressive_group: int
    code: int = field(default=0x7E, init=False)
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        bcd("credits_wagered", 2),
        bcd("coin_in_meter", 4),
        binary("wager_type", 1),
        binary("progressive_group", 1),
    )


@dataclass(frozen=True, slots=True)
class GameEndedEvent(RealTimeEvent):
    """7F: game win (4 BCD, accounting credits, excluding bonus awards)."""

    game_win: int
    code: int = field(default=0x7F, init=False)
    LAYOUT: ClassVar[tuple[Field, ...]] = (bcd("game_win", 4),)


@dataclass(frozen=True, slots=True)
class GameSelectedEvent(RealTimeEvent):
    """8C: game number (2 BCD)."""

    game_number: int
    code: int = field(default=0x8C, init=False)
    LAYOUT: ClassVar[tuple[Field, ...]] = (bcd("game_number", 2),)


@dataclass(frozen=True, slots=True)
class BillAcceptedEvent(RealTimeEvent):
    """4F: country code, denomination code, lifetime count of that bill (4 BCD)."""

    country_code: int
    denomination_code: int
    bill_count: int
    code: int = field(default=0x4F, init=False)
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        binary("country_code", 1),
        binary("denomination_code", 1),
        bcd("bill_count", 4),
    )


@dataclass(frozen=True, slots=True)
class LegacyBonusEvent(RealTimeEvent):
    """7C: multiplier, multiplied win (4 BCD), tax status, bonus amount (4 BCD)."""

    multiplier: int
    multiplied_win: int
    tax_status: int
    bonus_amount: int
    code: int = field(default=0x7C, init=False)
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        binary("multiplier", 1),
        bcd("multiplied_win", 4),
        binary("tax_status", 1),
        bcd("bonus_amount", 4),
    )


@dataclass(frozen=True, slots=True)
class ReelStoppedEvent(RealTimeEvent):
    """88: reel number and physical stop."""

    reel: int
    physical_stop: int
    code: int = field(default=0x88, init=False)
    LAYOUT: ClassVar[tuple[Field, ...]] = (binary("reel", 1), binary("physical_stop", 1))


@dataclass(frozen=True, slots=True)
class GameRecallEvent(RealTimeEvent):
    """8A: game number (2 BCD) and recall index (2 BCD)."""

    game_number: int
    recall_index: int
    code: int = field(default=0x8A, init=False)
    LAYOUT: ClassVar[tuple[Field, ...]] = (bcd("game_number", 2), bcd("recall_index", 2))


@dataclass(frozen=True, slots=True)
class CardHeldEvent(RealTimeEvent):
    """8B: one byte, bit 7 = held, bits 0-6 = card number."""

    card_number: int
    held: bool
    code: int = field(default=0x8B, init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.card_number <= 0x7F:
            raise LocalProtocolError(f"card number must be 0..127, got {self.card_number}")

    def data(self) -> bytes:
        return bytes(((0x80 if self.held else 0) | self.card_number,))

    def fields(self) -> dict[str, Any]:
        return {"card_number": self.card_number, "held": self.held}


RTE_LAYOUTS: dict[int, type[RealTimeEvent]] = {
    0x7E: GameStartedEvent,
    0x7F: GameEndedEvent,
    0x8C: GameSelectedEvent,
    0x4F: BillAcceptedEvent,
    0x7C: LegacyBonusEvent,
    0x88: ReelStoppedEvent,
    0x8A: GameRecallEvent,
    0x8B: CardHeldEvent,
}

_DATA_LENGTH = {0x8B: 1} | {
    code: sum(f.size for f in cls.LAYOUT) for code, cls in RTE_LAYOUTS.items() if code != 0x8B
}


def rte_data_length(code: int) -> int:
    """Bytes of data after the event code."""
    return _DATA_LENGTH.get(code, 0)


def rte_frame_length(code: int) -> int:
    """Whole frame length: addr FF code data CRC(2)."""
    return 5 + rte_data_length(code)


def encode_rte_frame(address: int, event: RealTimeEvent) -> bytes:
    return append_crc(bytes((address, RTE_MARKER, event.event_code)) + event.data())


def decode_event_data(code: int, data: bytes, frame: bytes) -> RealTimeEvent:
    """The event for ``code`` and its data bytes; RemoteProtocolError (carrying ``frame``)."""
    if len(data) != rte_data_length(code):
        raise LengthError(f"RTE {code:02X} needs {rte_data_length(code)} data bytes", frame)
    if code == 0x8B:
        return CardHeldEvent(data[0] & 0x7F, bool(data[0] & 0x80))
    if code not in RTE_LAYOUTS:
        return PlainEvent(code)
    cls = RTE_LAYOUTS[code]
    return cls(**decode_layout(cls.LAYOUT, data, frame))


def decode_rte_frame(frame: bytes, *, address: int | None = None) -> RealTimeEvent:
    """Decode a complete ``addr FF code data CRC`` frame."""
    frame = bytes(frame)
    if len(frame) < 5:
        raise LengthError("RTE frame shorter than 5 bytes", frame)
    if address is not None and frame[0] != address:
        raise UnexpectedAddressError(f"RTE frame from {frame[0]}, expected {address}", frame)
    if frame[1] != RTE_MARKER:
        raise FramingError("not an RTE frame (second byte is not FF)", frame)
    if len(frame) != rte_frame_length(frame[2]):
        need = rte_frame_length(frame[2])
        raise LengthError(f"RTE {frame[2]:02X} frame must be {need} bytes", frame)
    if not crc_ok(frame):
        raise CrcError("bad CRC on RTE frame", frame)
    return decode_event_data(frame[2], frame[3:-2], frame)
