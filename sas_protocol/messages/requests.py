"""Host polls: the general poll and typed long polls (frozen dataclasses).

Requests carry no address: ``encode(address)`` builds the frame. Type R polls are
``addr cmd``; type S/M polls add data and a CRC (SAS §2.2.2). ``decode_request`` is the
machine-side parser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sas_protocol.bcd import decode_bcd, encode_bcd
from sas_protocol.codes import LongPoll
from sas_protocol.crc import append_crc, crc_ok
from sas_protocol.errors import (
    CrcError,
    FramingError,
    LengthError,
    LocalProtocolError,
    RemoteProtocolError,
)
from sas_protocol.messages.base import GeneralPoll as GeneralPoll
from sas_protocol.messages.base import Request as Request
from sas_protocol.messages.base import check_address as check_address
from sas_protocol.messages.base import check_game
from sas_protocol.messages.features import EnabledFeaturesRequest
from sas_protocol.messages.games import DelayGameRequest, GameEnableRequest, GameMetersRequest
from sas_protocol.messages.layout import check_date_time, decode_date_time, encode_date_time
from sas_protocol.messages.meters import LEGACY_METER_LAYOUTS, legacy_reply_length
from sas_protocol.messages.multidenom import (
    CurrentDenominationRequest,
    EnabledDenominationsRequest,
    MultiDenomRequest,
)
from sas_protocol.messages.ticket_info import CashoutTicketRequest
from sas_protocol.variants import DEFAULT_LAYOUTS, PollLayouts

#: Meter polls answered with fixed 4-byte (or 2-byte, LP 18) BCD meters (1E, 20, 31-46 are
#: the bill meters of reference §3.9b).
LEGACY_METER_POLLS = frozenset(LEGACY_METER_LAYOUTS)


# --- type S polls without data, answered by ACK -------------------------------------------


@dataclass(frozen=True, slots=True)
class LockRequest(Request):
    """LP 01 shutdown: lock out play (a game in progress finishes first, SAS §7.4.1)."""

    COMMAND: ClassVar[int] = LongPoll.SHUTDOWN


@dataclass(frozen=True, slots=True)
class UnlockRequest(Request):
    """LP 02 startup: enable play."""

    COMMAND: ClassVar[int] = LongPoll.STARTUP


@dataclass(frozen=True, slots=True)
class SoundOffRequest(Request):
    COMMAND: ClassVar[int] = LongPoll.SOUND_OFF


@dataclass(frozen=True, slots=True)
class SoundOnRequest(Request):
    COMMAND: ClassVar[int] = LongPoll.SOUND_ON


@dataclass(frozen=True, slots=True)
class EnableBillAcceptorRequest(Request):
    COMMAND: ClassVar[int] = LongPoll.ENABLE_BILL_ACCEPTOR


@dataclass(frozen=True, slots=True)
class DisableBillAcceptorRequest(Request):
    COMMAND: ClassVar[int] = LongPoll.DISABLE_BILL_ACCEPTOR


@dataclass(frozen=True, slots=True)
class RealTimeReportingRequest(Request):
    """LP 0E: enable (True) or disable real-time event reporting (SAS §12)."""

    enable: bool
    COMMAND: ClassVar[int] = LongPoll.REAL_TIME_EVENT_REPORTING

    def body(self) -> bytes:
        return b"\x01" if self.enable else b"\x00"


@dataclass(frozen=True, slots=True)
class SetDateTimeRequest(Request):
    """LP 7F: set the machine clock (MMDDYYYY, HHMMSS in BCD)."""

    month: int
    day: int
    year: int
    hour: int
    minute: int
    second: int
    COMMAND: ClassVar[int] = LongPoll.SET_DATE_TIME

    def __post_init__(self) -> None:
        check_date_time(self.month, self.day, self.year, self.hour, self.minute, self.second)

    def body(self) -> bytes:
        d = self
        return encode_date_time(d.month, d.day, d.year, d.hour, d.minute, d.second)


# --- type R polls (no data, no CRC) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetersRequest(Request):
    """A legacy meter poll (0F, 10-17, 18, 19, 1A, 1C): ``addr cmd``, no CRC."""

    poll: int
    HAS_CRC: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.poll not in LEGACY_METER_POLLS:
            raise LocalProtocolError(f"LP {self.poll:02X} is not a legacy meter poll")

    @property
    def command(self) -> int:
        return self.poll

    @property
    def reply_length(self) -> int:
        return legacy_reply_length(self.poll)


@dataclass(frozen=True, slots=True)
class HandpayInfoRequest(Request):
    COMMAND: ClassVar[int] = LongPoll.SEND_HANDPAY_INFO
    HAS_CRC: ClassVar[bool] = False
    REPLY_LENGTH: ClassVar[int | None] = 24


@dataclass(frozen=True, slots=True)
class MachineInfoRequest(Request):
    COMMAND: ClassVar[int] = LongPoll.SEND_MACHINE_INFO
    HAS_CRC: ClassVar[bool] = False
    REPLY_LENGTH: ClassVar[int | None] = 24


@dataclass(frozen=True, slots=True)
class LastBillRequest(Request):
    COMMAND: ClassVar[int] = LongPoll.SEND_LAST_BILL
    HAS_CRC: ClassVar[bool] = False
    REPLY_LENGTH: ClassVar[int | None] = 10


@dataclass(frozen=True, slots=True)
class GameCountRequest(Request):
    """LP 51: number of games implemented."""

    COMMAND: ClassVar[int] = LongPoll.SEND_NUMBER_OF_GAMES
    HAS_CRC: ClassVar[bool] = False
    REPLY_LENGTH: ClassVar[int | None] = 6


@dataclass(frozen=True, slots=True)
class SasVersionRequest(Request):
    COMMAND: ClassVar[int] = LongPoll.SEND_SAS_VERSION
    HAS_CRC: ClassVar[bool] = False
    REPLY_LENGTH: ClassVar[int | None] = None


@dataclass(frozen=True, slots=True)
class SelectedGameRequest(Request):
    COMMAND: ClassVar[int] = LongPoll.SEND_SELECTED_GAME
    HAS_CRC: ClassVar[bool] = False
    REPLY_LENGTH: ClassVar[int | None] = 6


@dataclass(frozen=True, slots=True)
class EnabledGamesRequest(Request):
    COMMAND: ClassVar[int] = LongPoll.SEND_ENABLED_GAMES
    HAS_CRC: ClassVar[bool] = False
    REPLY_LENGTH: ClassVar[int | None] = None


@dataclass(frozen=True, slots=True)
class DateTimeRequest(Request):
    """LP 7E: send current date and time (not the same as exception 7E)."""

    COMMAND: ClassVar[int] = LongPoll.SEND_DATE_TIME
    HAS_CRC: ClassVar[bool] = False
    REPLY_LENGTH: ClassVar[int | None] = 11


# --- type S / M polls with data -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RomSignatureRequest(Request):
    """LP 21: ACKed at once; the signature comes later in reply to a poll (SAS §6)."""

    seed: int = 0
    COMMAND: ClassVar[int] = LongPoll.ROM_SIGNATURE

    def __post_init__(self) -> None:
        if not 0 <= self.seed <= 0xFFFF:
            raise LocalProtocolError(f"ROM signature seed must be 0..65535, got {self.seed}")

    def body(self) -> bytes:
        return self.seed.to_bytes(2, "little")


@dataclass(frozen=True, slots=True)
class SelectedMetersRequest(Request):
    """LP 2F: up to 10 one-byte meter codes for game N (0 = whole machine)."""

    game: int
    codes: tuple[int, ...]
    COMMAND: ClassVar[int] = LongPoll.SEND_SELECTED_METERS
    REPLY_LENGTH: ClassVar[int | None] = None

    def __post_init__(self) -> None:
        check_game(self.game)
        if not 1 <= len(self.codes) <= 10 or any(not 0 <= c <= 0xFF for c in self.codes):
            raise LocalProtocolError(f"LP 2F takes 1..10 one-byte meter codes, got {self.codes}")

    def body(self) -> bytes:
        return bytes((2 + len(self.codes),)) + encode_bcd(self.game, 2) + bytes(self.codes)


@dataclass(frozen=True, slots=True)
class ExtendedMetersRequest(Request):
    """LP 6F (or its alternate AF): up to 12 two-byte meter codes (LSB first) for game N."""

    game: int
    codes: tuple[int, ...]
    alternate: bool = False
    REPLY_LENGTH: ClassVar[int | None] = None

    def __post_init__(self) -> None:
        check_game(self.game)
        if not 1 <= len(self.codes) <= 12 or any(not 0 <= c <= 0xFFFF for c in self.codes):
            raise LocalProtocolError(f"LP 6F takes 1..12 two-byte meter codes, got {self.codes}")

    @property
    def command(self) -> int:
        # AF is the alternate of 6F so the same request can run twice in a row (SAS §3.5).
        return 0xAF if self.alternate else 0x6F

    def body(self) -> bytes:
        codes = b"".join(c.to_bytes(2, "little") for c in self.codes)
        return bytes((2 + len(codes),)) + encode_bcd(self.game, 2) + codes


@dataclass(frozen=True, slots=True)
class EnhancedValidationRequest(Request):
    """LP 4D: 00 current, 01-1F buffer index, FF look-ahead."""

    function: int = 0
    COMMAND: ClassVar[int] = LongPoll.SEND_ENHANCED_VALIDATION
    REPLY_LENGTH: ClassVar[int | None] = 35

    def __post_init__(self) -> None:
        if not 0 <= self.function <= 0xFF:
            raise LocalProtocolError(f"LP 4D function must be one byte, got {self.function}")

    def body(self) -> bytes:
        return bytes((self.function,))


@dataclass(frozen=True, slots=True)
class GameConfigurationRequest(Request):
    game: int
    COMMAND: ClassVar[int] = LongPoll.SEND_GAME_CONFIGURATION
    REPLY_LENGTH: ClassVar[int | None] = 26

    def __post_init__(self) -> None:
        check_game(self.game)

    def body(self) -> bytes:
        return encode_bcd(self.game, 2)


@dataclass(frozen=True, slots=True)
class ExtendedGameInfoRequest(Request):
    game: int
    COMMAND: ClassVar[int] = LongPoll.SEND_EXTENDED_GAME_INFO
    REPLY_LENGTH: ClassVar[int | None] = None

    def __post_init__(self) -> None:
        check_game(self.game)

    def body(self) -> bytes:
        return encode_bcd(self.game, 2)


@dataclass(frozen=True, slots=True)
class AftLockStatusRequest(Request):
    """LP 74: lock code 00 lock, 80 cancel, FF interrogate only; timeout in 1/100 s (BCD)."""

    lock_code: int = 0xFF
    condition: int = 0
    timeout: int = 0
    COMMAND: ClassVar[int] = LongPoll.AFT_LOCK_AND_STATUS
    REPLY_LENGTH: ClassVar[int | None] = None

    def __post_init__(self) -> None:
        if not (0 <= self.lock_code <= 0xFF and 0 <= self.condition <= 0xFF):
            raise LocalProtocolError("AFT lock code and condition are one byte each")
        if not 0 <= self.timeout <= 9999:
            raise LocalProtocolError(f"AFT lock timeout must be 0..9999, got {self.timeout}")

    def body(self) -> bytes:
        return bytes((self.lock_code, self.condition)) + encode_bcd(self.timeout, 2)


@dataclass(frozen=True, slots=True)
class RemoteHandpayResetRequest(Request):
    COMMAND: ClassVar[int] = LongPoll.REMOTE_HANDPAY_RESET
    REPLY_LENGTH: ClassVar[int | None] = 5


@dataclass(frozen=True, slots=True)
class HandpayResetMethodRequest(Request):
    """LP A8: 00 standard handpay, 01 reset to the credit meter."""

    method: int
    COMMAND: ClassVar[int] = LongPoll.ENABLE_HANDPAY_RESET_METHOD
    REPLY_LENGTH: ClassVar[int | None] = 5

    def __post_init__(self) -> None:
        if not 0 <= self.method <= 0xFF:
            raise LocalProtocolError(f"handpay reset method must be one byte, got {self.method}")

    def body(self) -> bytes:
        return bytes((self.method,))


Poll = GeneralPoll | Request

_NO_DATA: dict[int, type[Request]] = {
    cls.COMMAND: cls
    for cls in (
        LockRequest,
        UnlockRequest,
        SoundOffRequest,
        SoundOnRequest,
        EnableBillAcceptorRequest,
        DisableBillAcceptorRequest,
        HandpayInfoRequest,
        MachineInfoRequest,
        LastBillRequest,
        GameCountRequest,
        SasVersionRequest,
        SelectedGameRequest,
        EnabledGamesRequest,
        DateTimeRequest,
        RemoteHandpayResetRequest,
        CashoutTicketRequest,
        CurrentDenominationRequest,
        EnabledDenominationsRequest,
    )
}

#: Fixed request lengths (whole frame) of polls with data; None = length byte at index 2.
_DATA_LENGTH: dict[int, int | None] = {
    0x09: 7,
    0x0E: 5,
    0x21: 6,
    0x2E: 6,
    0x2F: None,
    0x4D: 5,
    0x52: 6,
    0x53: 6,
    0x6F: None,
    0x74: 8,
    0x7F: 11,
    0xA0: 6,
    0xA8: 5,
    0xAF: None,
    0xB0: None,
    0xB5: 6,
}


def is_known_command(command: int) -> bool:
    return command in _NO_DATA or command in _DATA_LENGTH or command in LEGACY_METER_POLLS


def request_length(prefix: bytes) -> int | None:
    """Total length of the long poll starting with ``prefix`` (``addr cmd ...``), or None
    when more bytes are needed to tell. Unknown commands count as 2-byte type R polls."""
    if len(prefix) < 2:
        return None
    command = prefix[1]
    if command in _NO_DATA:
        return 4 if _NO_DATA[command].HAS_CRC else 2
    if command in _DATA_LENGTH:
        fixed = _DATA_LENGTH[command]
        if fixed is not None:
            return fixed
        return None if len(prefix) < 3 else 3 + prefix[2] + 2
    return 2


@dataclass(frozen=True, slots=True)
class UnknownRequest(Request):
    """A long poll this package does not know (SAS §3.5: the machine must not answer it)."""

    poll: int
    HAS_CRC: ClassVar[bool] = False
    REPLY_LENGTH: ClassVar[int | None] = None

    @property
    def command(self) -> int:
        return self.poll


def decode_request(
    frame: bytes, layouts: PollLayouts = DEFAULT_LAYOUTS
) -> tuple[int, Request]:
    """(address, request) of a complete long-poll frame; RemoteProtocolError if malformed.
    ``layouts`` picks the layout of the polls the sources disagree on (reference §3.9b)."""
    frame = bytes(frame)
    length = request_length(frame)
    if length is None or len(frame) != length:
        raise LengthError(f"long poll frame length {len(frame)} does not match its layout", frame)
    address, command = frame[0], frame[1]
    if not is_known_command(command):
        return address, UnknownRequest(command)
    has_crc = command not in LEGACY_METER_POLLS and (
        command not in _NO_DATA or _NO_DATA[command].HAS_CRC
    )
    if has_crc and not crc_ok(frame):
        raise CrcError("bad CRC on long poll", frame)
    body = frame[2:-2] if has_crc else b""
    try:
        return address, _request_from_body(address, command, body, layouts)
    except LocalProtocolError as exc:
        raise FramingError(f"invalid LP {command:02X}: {exc}", frame) from None
    except RemoteProtocolError as exc:
        raise FramingError(f"invalid LP {command:02X}: {exc.reason}", frame) from None


def _request_from_body(address: int, command: int, body: bytes, layouts: PollLayouts) -> Request:
    if command in LEGACY_METER_POLLS:
        return MetersRequest(command)
    if command == 0x3D:
        return CashoutTicketRequest(layouts.ticket_number)
    if command in _NO_DATA:
        return _NO_DATA[command]()
    if command == 0x0E:
        if body[0] > 1:
            raise LocalProtocolError("LP 0E data must be 00 or 01")
        return RealTimeReportingRequest(body[0] == 1)
    if command == 0x21:
        return RomSignatureRequest(int.from_bytes(body, "little"))
    if command in (0x2F, 0x6F, 0xAF):
        game = decode_bcd(body[1:3])
        if command == 0x2F:
            return SelectedMetersRequest(game, tuple(body[3:]))
        raw = body[3:]
        if len(raw) % 2:
            raise LocalProtocolError("LP 6F meter codes are two bytes each")
        codes = tuple(int.from_bytes(raw[i : i + 2], "little") for i in range(0, len(raw), 2))
        return ExtendedMetersRequest(game, codes, alternate=command == 0xAF)
    if command == 0x4D:
        return EnhancedValidationRequest(body[0])
    if command == 0x09:
        return GameEnableRequest.from_body(body, layouts.game_enable)
    if command == 0x2E:
        return DelayGameRequest.from_body(body, layouts.delay)
    if command == 0x52:
        return GameMetersRequest(decode_bcd(body))
    if command == 0xA0:
        return EnabledFeaturesRequest(decode_bcd(body))
    if command == 0xB0:
        return _multidenom_request(address, body, layouts)
    if command == 0x53:
        return GameConfigurationRequest(decode_bcd(body))
    if command == 0xB5:
        return ExtendedGameInfoRequest(decode_bcd(body))
    if command == 0x74:
        return AftLockStatusRequest(body[0], body[1], decode_bcd(body[2:4]))
    if command == 0x7F:
        return SetDateTimeRequest(*decode_date_time(body))
    # 0xA8: the only command left in _DATA_LENGTH
    return HandpayResetMethodRequest(body[0])


def _multidenom_request(address: int, body: bytes, layouts: PollLayouts) -> Request:
    """LP B0 (reference §3.9b): ``len denom base data``; the base poll is decoded as if it
    had been sent alone (its data plus a CRC when it is a type S/M poll)."""
    if body[0] < 2:
        raise LocalProtocolError("B0 length must cover the denomination and base poll")
    denomination, base, data = body[1], body[2], body[3:]
    if base == LongPoll.MULTI_DENOM_PREAMBLE:
        raise LocalProtocolError("a B0 preamble cannot wrap another B0")
    prefix = bytes((address, base)) + data
    inner = prefix if request_length(prefix) == len(prefix) else append_crc(prefix)
    return MultiDenomRequest(denomination, decode_request(inner, layouts)[1], layouts.wrapped_ack)
