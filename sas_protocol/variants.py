"""Layout choices where the public sources disagree (reference §3.9b, marked [unsure]).

Each enum's first member is the default: the layout most of the reference's sources agree
on. ``PollLayouts`` bundles one choice per disputed poll so a per-machine setting can select
another without a code fork; the request objects carry their own choice (so ``encode`` and
the expected reply length follow it) and the decoders take a ``PollLayouts``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class GameEnableFlag(Enum):
    """LP 09 flag byte. Reference §3.9b: 00 disable / 01 enable (Monaco, spec summary);
    saspy sends 00 to *enable* [unsure]."""

    ONE_ENABLES = "one-enables"
    ZERO_ENABLES = "zero-enables"


class DelayEncoding(Enum):
    """LP 2E delay field. Reference §3.9b: 2 bytes binary LSB first in units of 100 ms
    (Monaco, spec summary); saspy packs milliseconds as BCD [unsure]."""

    BINARY_100MS = "binary-100ms"
    BCD_MS = "bcd-ms"


class TicketNumberSize(Enum):
    """LP 3D validation number. Reference §3.9b: 4 BCD bytes (Monaco, nCompass's 13-byte
    buffer, spec summary); saspy reads 2 bytes [unsure]."""

    BCD4 = "bcd4"
    BCD2 = "bcd2"

    @property
    def size(self) -> int:
        return 4 if self is TicketNumberSize.BCD4 else 2


class WrappedAck(Enum):
    """How a B0-wrapped poll that is answered by ACK (e.g. LP 09) is acknowledged.
    Reference §3.9b: Monaco wraps it, ``A B0 03 denom base A C``; nCompass expects a bare
    ``A`` [unsure]."""

    WRAPPED = "wrapped"
    BARE = "bare"


@dataclass(frozen=True, slots=True)
class PollLayouts:
    """One layout choice per disputed long poll; the defaults follow the majority."""

    game_enable: GameEnableFlag = GameEnableFlag.ONE_ENABLES
    delay: DelayEncoding = DelayEncoding.BINARY_100MS
    ticket_number: TicketNumberSize = TicketNumberSize.BCD4
    wrapped_ack: WrappedAck = WrappedAck.WRAPPED


DEFAULT_LAYOUTS = PollLayouts()
