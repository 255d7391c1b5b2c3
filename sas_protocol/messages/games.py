"""Per-game long polls: LP 09 enable/disable game N, LP 2E delay game, LP 52 game N meters.

Layouts from reference §3.9 / §3.9b. Where the sources disagree on 09 and 2E, the request
carries the layout choice (``sas_protocol.variants``); the default is the majority's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sas_protocol.bcd import decode_bcd, encode_bcd
from sas_protocol.codes import LongPoll
from sas_protocol.errors import LocalProtocolError
from sas_protocol.messages.base import Request, check_game
from sas_protocol.variants import DelayEncoding, GameEnableFlag


@dataclass(frozen=True, slots=True)
class GameEnableRequest(Request):
    """LP 09: enable (True) or disable game N; answered by ACK. Monaco NACKs an unknown game
    or a flag above 01. Multi-denom aware: nCompass sends it inside B0 (reference §3.9b)."""

    game: int
    enable: bool
    flag_style: GameEnableFlag = GameEnableFlag.ONE_ENABLES
    COMMAND: ClassVar[int] = LongPoll.ENABLE_DISABLE_GAME

    def __post_init__(self) -> None:
        check_game(self.game)

    def body(self) -> bytes:
        # Reference §3.9b [unsure]: saspy sends 00 to enable; the majority sends 01.
        one_enables = self.flag_style is GameEnableFlag.ONE_ENABLES
        return encode_bcd(self.game, 2) + bytes((int(self.enable == one_enables),))

    @classmethod
    def from_body(cls, body: bytes, flag_style: GameEnableFlag) -> GameEnableRequest:
        if body[2] > 1:
            raise LocalProtocolError("LP 09 flag must be 00 or 01")
        enable = (body[2] == 1) == (flag_style is GameEnableFlag.ONE_ENABLES)
        return cls(decode_bcd(body[:2]), enable, flag_style)


@dataclass(frozen=True, slots=True)
class DelayGameRequest(Request):
    """LP 2E: hold the start of the next game for ``delay_ms`` (0 ends the delay), so the host
    can pay a legacy bonus (spec summary §13.7); answered by ACK.

    Reference §3.9b: the field is 2 bytes binary LSB first in units of 100 ms (Monaco, spec
    summary), so ``delay_ms`` must be a multiple of 100 up to 6,553,500; saspy's BCD
    milliseconds [unsure] take 0..9999."""

    delay_ms: int
    encoding: DelayEncoding = DelayEncoding.BINARY_100MS
    COMMAND: ClassVar[int] = LongPoll.DELAY_GAME

    def __post_init__(self) -> None:
        if self.encoding is DelayEncoding.BINARY_100MS:
            if self.delay_ms % 100 or not 0 <= self.delay_ms <= 0xFFFF * 100:
                raise LocalProtocolError(
                    f"LP 2E delay must be a multiple of 100 ms up to 6553500, got {self.delay_ms}")
        elif not 0 <= self.delay_ms <= 9999:
            raise LocalProtocolError(f"LP 2E BCD delay must be 0..9999 ms, got {self.delay_ms}")

    def body(self) -> bytes:
        if self.encoding is DelayEncoding.BINARY_100MS:
            return (self.delay_ms // 100).to_bytes(2, "little")
        return encode_bcd(self.delay_ms, 2)

    @classmethod
    def from_body(cls, body: bytes, encoding: DelayEncoding) -> DelayGameRequest:
        if encoding is DelayEncoding.BINARY_100MS:
            return cls(int.from_bytes(body, "little") * 100, encoding)
        return cls(decode_bcd(body), encoding)


@dataclass(frozen=True, slots=True)
class GameMetersRequest(Request):
    """LP 52: coin in, coin out, jackpot and games played of game N, answered by a
    ``MeterReply`` (meters 00, 01, 02, 05) of ``addr 52 game(2B) 4 x 4B CRC`` = 22 bytes."""

    game: int
    COMMAND: ClassVar[int] = LongPoll.SEND_GAME_METERS
    REPLY_LENGTH: ClassVar[int | None] = 22

    def __post_init__(self) -> None:
        check_game(self.game)

    def body(self) -> bytes:
        return encode_bcd(self.game, 2)
