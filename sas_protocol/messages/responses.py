"""Machine replies (frozen dataclasses) and ``decode_reply`` for the host side.

``encode(address)`` builds the whole frame: ``addr cmd [len] body CRC`` (SAS §2.2.2);
ACK is the address alone, NACK ``address | 0x80`` and busy ``addr 00`` (SAS §3.5 of the
reference). Decoders raise only RemoteProtocolError subclasses, each carrying the frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from sas_protocol.bcd import encode_bcd
from sas_protocol.codes import LongPoll
from sas_protocol.crc import crc_ok
from sas_protocol.errors import (
    CrcError,
    FramingError,
    LengthError,
    LocalProtocolError,
    UnexpectedAddressError,
)
from sas_protocol.messages.base import Ack as Ack
from sas_protocol.messages.base import Busy as Busy
from sas_protocol.messages.base import ExceptionReply as ExceptionReply
from sas_protocol.messages.base import Nack as Nack
from sas_protocol.messages.base import Response as Response
from sas_protocol.messages.base import bcd_value
from sas_protocol.messages.features import EnabledFeaturesReply
from sas_protocol.messages.layout import (
    Field,
    ascii_,
    bcd,
    binary,
    decode_date_time,
    decode_layout,
    encode_date_time,
    encode_layout,
    raw,
)
from sas_protocol.messages.meters import LEGACY_METER_LAYOUTS, MeterReply, decode_meter_body
from sas_protocol.messages.multidenom import (
    CurrentDenominationReply,
    EnabledDenominationsReply,
    MultiDenomRequest,
    decode_multidenom_body,
)
from sas_protocol.messages.requests import (
    GeneralPoll,
    Poll,
    Request,
    SelectedMetersRequest,
)
from sas_protocol.messages.ticket_info import CashoutTicketReply

_MACHINE_INFO_LAYOUT = (
    ascii_("game_id", 2),
    ascii_("additional_id", 3),
    binary("denomination", 1),
    binary("max_bet", 1),
    binary("progressive_group", 1),
    binary("game_options", 2),
    ascii_("paytable_id", 6),
    ascii_("base_percent", 4),
)


@dataclass(frozen=True, slots=True)
class MachineInfoReply(Response):
    """LP 1F. ``denomination`` is the accounting denomination code (table C-4);
    ``base_percent`` is 4 ASCII digits with an implied decimal point (e.g. "9500")."""

    game_id: str
    additional_id: str
    denomination: int
    max_bet: int
    progressive_group: int
    game_options: int
    paytable_id: str
    base_percent: str
    COMMAND: ClassVar[int] = LongPoll.SEND_MACHINE_INFO
    LAYOUT: ClassVar[tuple[Field, ...]] = _MACHINE_INFO_LAYOUT


@dataclass(frozen=True, slots=True)
class GameConfigurationReply(Response):
    """LP 53: game N followed by the LP 1F fields for that game."""

    game: int
    game_id: str
    additional_id: str
    denomination: int
    max_bet: int
    progressive_group: int
    game_options: int
    paytable_id: str
    base_percent: str
    COMMAND: ClassVar[int] = LongPoll.SEND_GAME_CONFIGURATION
    LAYOUT: ClassVar[tuple[Field, ...]] = (bcd("game", 2), *_MACHINE_INFO_LAYOUT)


@dataclass(frozen=True, slots=True)
class HandpayInfoReply(Response):
    """LP 1B. ``amount`` is in cents when ``level`` is a progressive level (01-20), else in
    accounting credits; ``partial_pay`` is always credits (reference §3.9). ``reserved`` is
    the 10-byte tail (reserved in 6.02; session game win / pay in 6.03)."""

    progressive_group: int
    level: int
    amount: int
    partial_pay: int
    reset_id: int
    reserved: bytes = bytes(10)
    COMMAND: ClassVar[int] = LongPoll.SEND_HANDPAY_INFO
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        binary("progressive_group", 1),
        binary("level", 1),
        bcd("amount", 5),
        bcd("partial_pay", 2),
        binary("reset_id", 1),
        raw("reserved", 10),
    )

    @property
    def amount_in_cents(self) -> bool:
        return 0x01 <= self.level <= 0x20


@dataclass(frozen=True, slots=True)
class RomSignatureReply(Response):
    """LP 21 answer (binary, LSB first); arrives in reply to a later poll, never as RTE."""

    signature: int
    COMMAND: ClassVar[int] = LongPoll.ROM_SIGNATURE
    LAYOUT: ClassVar[tuple[Field, ...]] = (binary("signature", 2),)


@dataclass(frozen=True, slots=True)
class LastBillReply(Response):
    country_code: int
    denomination_code: int
    bill_count: int
    COMMAND: ClassVar[int] = LongPoll.SEND_LAST_BILL
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        binary("country_code", 1),
        binary("denomination_code", 1),
        bcd("bill_count", 4),
    )


@dataclass(frozen=True, slots=True)
class EnhancedValidationReply(Response):
    """LP 4D. Date is MMDDYYYY and time HHMMSS, kept as their BCD integers because an empty
    buffer slot reports zeros; ``amount`` is in cents."""

    validation_type: int
    index: int
    date: int
    time: int
    validation_number: int
    amount: int
    ticket_number: int
    validation_system_id: int
    expiration: int
    pool_id: int
    COMMAND: ClassVar[int] = LongPoll.SEND_ENHANCED_VALIDATION
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        binary("validation_type", 1),
        binary("index", 1),
        bcd("date", 4),
        bcd("time", 3),
        bcd("validation_number", 8),
        bcd("amount", 5),
        binary("ticket_number", 2),
        bcd("validation_system_id", 1),
        bcd("expiration", 4),
        binary("pool_id", 2),
    )


@dataclass(frozen=True, slots=True)
class GameCountReply(Response):
    """LP 51: games implemented (not only enabled ones)."""

    count: int
    COMMAND: ClassVar[int] = LongPoll.SEND_NUMBER_OF_GAMES
    LAYOUT: ClassVar[tuple[Field, ...]] = (bcd("count", 2),)


@dataclass(frozen=True, slots=True)
class SelectedGameReply(Response):
    game: int
    COMMAND: ClassVar[int] = LongPoll.SEND_SELECTED_GAME
    LAYOUT: ClassVar[tuple[Field, ...]] = (bcd("game", 2),)


@dataclass(frozen=True, slots=True)
class DateTimeReply(Response):
    """LP 7E: the machine clock."""

    month: int
    day: int
    year: int
    hour: int
    minute: int
    second: int
    COMMAND: ClassVar[int] = LongPoll.SEND_DATE_TIME

    def body(self) -> bytes:
        d = self
        return encode_date_time(d.month, d.day, d.year, d.hour, d.minute, d.second)

    @classmethod
    def from_body(cls, body: bytes, frame: bytes) -> Self:
        if len(body) != 7:
            raise LengthError("LP 7E reply body must be 7 bytes", frame)
        try:
            return cls(*decode_date_time(body))
        except FramingError:
            raise FramingError("LP 7E date/time is not BCD", frame) from None


@dataclass(frozen=True, slots=True)
class HandpayResetReply(Response):
    """LP 94: 00 reset, 01 unable to reset, 02 not in a handpay."""

    code: int
    COMMAND: ClassVar[int] = LongPoll.REMOTE_HANDPAY_RESET
    LAYOUT: ClassVar[tuple[Field, ...]] = (binary("code", 1),)


@dataclass(frozen=True, slots=True)
class HandpayResetMethodReply(Response):
    """LP A8: 00 accepted, 01 unable to enable, 02 not in a handpay."""

    code: int
    COMMAND: ClassVar[int] = LongPoll.ENABLE_HANDPAY_RESET_METHOD
    LAYOUT: ClassVar[tuple[Field, ...]] = (binary("code", 1),)


@dataclass(frozen=True, slots=True)
class SasVersionReply(Response):
    """LP 54: SAS version (3 ASCII, e.g. "602") and serial number (0-40 ASCII)."""

    version: str
    serial: str
    COMMAND: ClassVar[int] = LongPoll.SEND_SAS_VERSION
    VARIABLE: ClassVar[bool] = True

    def body(self) -> bytes:
        version, serial = self.version.encode("latin-1"), self.serial.encode("latin-1")
        if len(version) != 3 or len(serial) > 40:
            raise LocalProtocolError("SAS version is 3 characters, serial at most 40")
        return version + serial

    @classmethod
    def from_body(cls, body: bytes, frame: bytes) -> Self:
        if len(body) < 3:
            raise LengthError("LP 54 reply shorter than its version", frame)
        return cls(body[:3].decode("latin-1"), body[3:].decode("latin-1"))


@dataclass(frozen=True, slots=True)
class EnabledGamesReply(Response):
    """LP 56: enabled game numbers."""

    games: tuple[int, ...]
    COMMAND: ClassVar[int] = LongPoll.SEND_ENABLED_GAMES
    VARIABLE: ClassVar[bool] = True

    def body(self) -> bytes:
        if len(self.games) > 126:
            raise LocalProtocolError("at most 126 enabled games fit in one LP 56 reply")
        return bytes((len(self.games),)) + b"".join(encode_bcd(g, 2) for g in self.games)

    @classmethod
    def from_body(cls, body: bytes, frame: bytes) -> Self:
        if not body or len(body) != 1 + 2 * body[0]:
            raise LengthError("LP 56 game count does not match its length", frame)
        return cls(tuple(bcd_value(body[i : i + 2], frame) for i in range(1, len(body), 2)))


@dataclass(frozen=True, slots=True)
class AftLockStatusReply(Response):
    """LP 74. Lock status 00 locked, 40 pending, FF not locked; amounts in cents."""

    asset_number: int
    lock_status: int
    available_transfers: int
    host_cashout_status: int
    aft_status: int
    max_buffer_index: int
    cashable: int
    restricted: int
    nonrestricted: int
    transfer_limit: int
    restricted_expiration: int
    restricted_pool_id: int
    COMMAND: ClassVar[int] = LongPoll.AFT_LOCK_AND_STATUS
    VARIABLE: ClassVar[bool] = True
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        binary("asset_number", 4),
        binary("lock_status", 1),
        binary("available_transfers", 1),
        binary("host_cashout_status", 1),
        binary("aft_status", 1),
        binary("max_buffer_index", 1),
        bcd("cashable", 5),
        bcd("restricted", 5),
        bcd("nonrestricted", 5),
        bcd("transfer_limit", 5),
        bcd("restricted_expiration", 4),
        binary("restricted_pool_id", 2),
    )


@dataclass(frozen=True, slots=True)
class ExtendedGameInfoReply(Response):
    """LP B5: game N details; ``progressive_levels`` is a 4-byte bitmap."""

    game: int
    max_bet: int
    progressive_group: int
    progressive_levels: int
    name: str
    paytable: str
    wager_categories: int
    denominations: tuple[int, ...] = ()
    COMMAND: ClassVar[int] = LongPoll.SEND_EXTENDED_GAME_INFO
    VARIABLE: ClassVar[bool] = True

    def body(self) -> bytes:
        name, paytable = self.name.encode("latin-1"), self.paytable.encode("latin-1")
        if len(name) > 255 or len(paytable) > 255 or len(self.denominations) > 255:
            raise LocalProtocolError("LP B5 name, paytable or denomination list too long")
        head = encode_layout(_B5_HEAD, self)
        return (
            head
            + bytes((len(name),))
            + name
            + bytes((len(paytable),))
            + paytable
            + encode_bcd(self.wager_categories, 2)
            + bytes((len(self.denominations),))
            + bytes(self.denominations)
        )

    @classmethod
    def from_body(cls, body: bytes, frame: bytes) -> Self:
        head_size = 9
        if len(body) < head_size + 1:
            raise LengthError("LP B5 reply too short", frame)
        fields: dict[str, Any] = decode_layout(_B5_HEAD, body[:head_size], frame)
        offset = head_size
        texts = []
        for _ in range(2):
            if offset >= len(body) or offset + 1 + body[offset] > len(body):
                raise LengthError("LP B5 text runs past the frame", frame)
            size = body[offset]
            texts.append(body[offset + 1 : offset + 1 + size].decode("latin-1"))
            offset += 1 + size
        if offset + 2 > len(body):
            raise LengthError("LP B5 reply lacks its wager categories", frame)
        wager = bcd_value(body[offset : offset + 2], frame)
        offset += 2
        denominations: tuple[int, ...] = ()
        if offset < len(body):
            count = body[offset]
            denominations = tuple(body[offset + 1 :])
            if len(denominations) != count:
                raise LengthError("LP B5 denomination count does not match", frame)
        return cls(
            fields["game"],
            fields["max_bet"],
            fields["progressive_group"],
            fields["progressive_levels"],
            texts[0],
            texts[1],
            wager,
            denominations,
        )


_B5_HEAD = (
    bcd("game", 2),
    bcd("max_bet", 2),
    binary("progressive_group", 1),
    binary("progressive_levels", 4),
)


Reply = Ack | Nack | Busy | ExceptionReply | MeterReply | Response

REPLY_TYPES: dict[int, type[Response]] = {
    cls.COMMAND: cls
    for cls in (
        MachineInfoReply,
        GameConfigurationReply,
        HandpayInfoReply,
        RomSignatureReply,
        LastBillReply,
        EnhancedValidationReply,
        GameCountReply,
        SelectedGameReply,
        DateTimeReply,
        HandpayResetReply,
        HandpayResetMethodReply,
        SasVersionReply,
        EnabledGamesReply,
        AftLockStatusReply,
        ExtendedGameInfoReply,
        EnabledFeaturesReply,
        CashoutTicketReply,
        CurrentDenominationReply,
        EnabledDenominationsReply,
    )
}

_METER_COMMANDS = frozenset({0x2F, 0x6F, 0xAF})
_MULTI_DENOM = LongPoll.MULTI_DENOM_PREAMBLE


def is_variable_reply(command: int) -> bool:
    """True when replies to ``command`` carry a length byte after the command."""
    return command in _METER_COMMANDS or command == _MULTI_DENOM or (
        command in REPLY_TYPES and REPLY_TYPES[command].VARIABLE
    )


def decode_reply_frame(frame: bytes, *, address: int | None = None) -> Reply:
    """Decode a complete ``addr cmd [len] body CRC`` reply by its command byte alone.

    Raises CrcError, LengthError, FramingError or UnexpectedAddressError (all carrying
    ``frame``); ACK, NACK and busy frames need the poll and are decoded by ``decode_reply``.
    A B0 reply's wrapped part is read as data when it decodes, else as a wrapped ACK/busy."""
    return _decode_frame(bytes(frame), address, None)


def _decode_frame(frame: bytes, address: int | None, inner: Request | None,
                  asked: tuple[int, ...] | None = None) -> Reply:
    if len(frame) < 4:
        raise LengthError("reply frame shorter than addr cmd CRC", frame)
    if address is not None and frame[0] != address:
        raise UnexpectedAddressError(f"reply from address {frame[0]}, expected {address}", frame)
    if not crc_ok(frame):
        raise CrcError("bad CRC on reply", frame)
    command = frame[1]
    if is_variable_reply(command):
        if frame[2] != len(frame) - 5:
            raise LengthError(f"length byte {frame[2]} but {len(frame) - 5} bytes follow", frame)
        body = frame[3:-2]
    else:
        body = frame[2:-2]
    if command in _METER_COMMANDS or command in LEGACY_METER_LAYOUTS or command == 0x52:
        return decode_meter_body(command, body, frame, asked)
    if command == _MULTI_DENOM:
        return decode_multidenom_body(body, frame, inner, _decode_wrapped)
    if command not in REPLY_TYPES:
        raise FramingError(f"no reply layout for command {command:02X}", frame)
    return REPLY_TYPES[command].from_body(body, frame)


def _decode_wrapped(frame: bytes) -> Reply:
    return _decode_frame(frame, None, None)


def decode_reply(poll: Poll, frame: bytes, *, address: int) -> Reply:
    """Decode the complete reply ``frame`` to ``poll`` from the machine at ``address``.

    Handles ACK, NACK and busy as well as data replies; the command byte must echo the
    poll's. RTE frames (``addr FF ...``) are decoded by ``sas_protocol.rte``."""
    frame = bytes(frame)
    if isinstance(poll, GeneralPoll):
        if len(frame) == 1:
            return ExceptionReply(frame[0])
        # SAS §6: a pending ROM signature is delivered in reply to a general poll.
        reply = decode_reply_frame(frame, address=address)
        if not isinstance(reply, RomSignatureReply):
            raise FramingError("unexpected multi-byte reply to a general poll", frame)
        return reply
    if frame == bytes((address | 0x80,)):
        return Nack()
    if not frame or frame[0] != address:
        raise UnexpectedAddressError(f"reply does not start with address {address}", frame)
    if frame == bytes((address, 0x00)):
        return Busy()
    if poll.expects_ack:
        if len(frame) != 1:
            raise LengthError("expected a one-byte ACK", frame)
        return Ack()
    if len(frame) >= 2 and frame[1] != poll.command:
        raise FramingError(f"reply echoes {frame[1]:02X}, poll was {poll.command:02X}", frame)
    inner = poll.poll if isinstance(poll, MultiDenomRequest) else None
    # LP 2F replies carry no sizes: read them guided by the codes asked for
    # (meters._decode_selected; reference §3.9, §3.10 sizes [unsure])
    asked = poll.codes if isinstance(poll, SelectedMetersRequest) else None
    return _decode_frame(frame, address, inner, asked)
