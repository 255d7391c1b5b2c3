"""LP A0 enabled features: what the machine says it can do (reference §3.9b).

The reply is ``A A0 game(2B) F1 F2 F3 F4 00 00 C``: four binary bitmaps and two reserved
bytes. The bit meanings are the reference's "A0 feature bits" table (Monaco tables
7.14c-f, nCompass agrees on every F1-F3 bit it reads). F3 bit 0 is the one the host needs
first: set, the machine may be polled every 40 ms instead of every 200 ms (§3.6)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import ClassVar

from sas_protocol.bcd import encode_bcd
from sas_protocol.codes import LongPoll
from sas_protocol.messages.base import Request, Response, check_game
from sas_protocol.messages.layout import Field, bcd, binary, raw


class Features1(IntFlag):
    """A0 byte F1. Bits 5-6 are a 2-bit field, read with ``validation_style``."""

    JACKPOT_MULTIPLIER = 0x01
    AFT_BONUS_AWARDS = 0x02
    LEGACY_BONUS_AWARDS = 0x04
    TOURNAMENT = 0x08
    VALIDATION_EXTENSIONS = 0x10
    VALIDATION_STYLE_LOW = 0x20
    VALIDATION_STYLE_HIGH = 0x40
    TICKET_REDEMPTION = 0x80


class Features2(IntFlag):
    """A0 byte F2. Bits 0-1 are a 2-bit field, read with ``meter_model``."""

    METER_MODEL_LOW = 0x01
    METER_MODEL_HIGH = 0x02
    TICKETS_TO_DROP_AND_CANCELLED = 0x04
    EXTENDED_METERS = 0x08
    COMPONENT_AUTHENTICATION = 0x10
    JACKPOT_KEYOFF_TO_MACHINE_PAY = 0x20
    AFT = 0x40
    MULTI_DENOM_EXTENSIONS = 0x80


class Features3(IntFlag):
    """A0 byte F3 (bit 3 reserved; bits 2-7 from Monaco only)."""

    MAX_POLLING_RATE_40MS = 0x01
    MULTIPLE_PROGRESSIVE_WINS = 0x02
    METER_CHANGE_NOTIFICATION = 0x04
    SESSION_PLAY = 0x10
    FOREIGN_CURRENCY_REDEMPTION = 0x20
    NON_SAS_PROGRESSIVE_HITS = 0x40
    ENHANCED_PROGRESSIVE_DATA = 0x80


class Features4(IntFlag):
    """A0 byte F4 (bits 1-7 reserved; Monaco only)."""

    MAX_PROGRESSIVE_PAYBACK = 0x01


@dataclass(frozen=True, slots=True)
class EnabledFeaturesRequest(Request):
    """LP A0 for game N (0 = the whole machine). Re-read after exception 3C."""

    game: int = 0
    COMMAND: ClassVar[int] = LongPoll.SEND_ENABLED_FEATURES
    REPLY_LENGTH: ClassVar[int | None] = 12

    def __post_init__(self) -> None:
        check_game(self.game)

    def body(self) -> bytes:
        return encode_bcd(self.game, 2)


@dataclass(frozen=True, slots=True)
class EnabledFeaturesReply(Response):
    """LP A0 reply: the four feature bytes as integers (see ``Features1`` .. ``Features4``)."""

    game: int
    features1: int
    features2: int
    features3: int
    features4: int = 0
    reserved: bytes = bytes(2)
    COMMAND: ClassVar[int] = LongPoll.SEND_ENABLED_FEATURES
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        bcd("game", 2),
        binary("features1", 1),
        binary("features2", 1),
        binary("features3", 1),
        binary("features4", 1),
        raw("reserved", 2),
    )

    @property
    def polling_40ms(self) -> bool:
        """F3 bit 0: the machine supports the 40 ms poll interval (reference §3.6)."""
        return bool(self.features3 & Features3.MAX_POLLING_RATE_40MS)

    @property
    def validation_style(self) -> int:
        """F1 bits 5-6: 0 standard, 1 system, 2 secure enhanced (Monaco)."""
        return (self.features1 >> 5) & 0x03

    @property
    def meter_model(self) -> int:
        """F2 bits 0-1: 0 not specified, 1 metered when won, 2 when played (Monaco)."""
        return self.features2 & 0x03

    @property
    def aft(self) -> bool:
        return bool(self.features2 & Features2.AFT)

    @property
    def multi_denom(self) -> bool:
        return bool(self.features2 & Features2.MULTI_DENOM_EXTENSIONS)

    @property
    def extended_meters(self) -> bool:
        return bool(self.features2 & Features2.EXTENDED_METERS)

    @property
    def ticket_redemption(self) -> bool:
        return bool(self.features1 & Features1.TICKET_REDEMPTION)

    @property
    def validation_extensions(self) -> bool:
        return bool(self.features1 & Features1.VALIDATION_EXTENSIONS)
