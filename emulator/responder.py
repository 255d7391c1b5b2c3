"""What the machine answers to each long poll: typed requests in, typed replies out.

``answer(machine, request, now)`` maps one decoded long poll (``sas_protocol.messages``) onto
the model and returns the reply, or ``None`` when the machine does not answer (unknown polls,
SAS §3.5: never NACK a poll you do not support). ``apply_broadcast`` does the same for a
global broadcast, which is never answered. Link rules (implied ACK, sync, busy, RTE
substitution) are not here; they live in the server.
"""

from __future__ import annotations

from datetime import datetime

from emulator.meters import METERS, UnknownMeterError, meter_def
from emulator.model import (
    BILL_DENOMINATION_CODES,
    COUNTRY_CODE_US,
    VALIDATION_BUFFER_SIZE,
    Machine,
)
from emulator.more_polls import (
    cashout_ticket,
    current_denomination,
    denomination_code,
    enabled_denominations,
    enabled_features,
    game_meters,
    multi_denom,
    total_bill_dollars,
)
from sas_protocol.codes import meter_spec
from sas_protocol.crc import crc16_kermit
from sas_protocol.messages.features import EnabledFeaturesRequest
from sas_protocol.messages.games import DelayGameRequest, GameEnableRequest, GameMetersRequest
from sas_protocol.messages.meters import LEGACY_METER_LAYOUTS, MeterReply, MeterValue
from sas_protocol.messages.multidenom import (
    CurrentDenominationRequest,
    EnabledDenominationsRequest,
    MultiDenomRequest,
)
from sas_protocol.messages.requests import (
    AftLockStatusRequest,
    DateTimeRequest,
    DisableBillAcceptorRequest,
    EnableBillAcceptorRequest,
    EnabledGamesRequest,
    EnhancedValidationRequest,
    ExtendedGameInfoRequest,
    ExtendedMetersRequest,
    GameConfigurationRequest,
    GameCountRequest,
    HandpayInfoRequest,
    HandpayResetMethodRequest,
    LastBillRequest,
    LockRequest,
    MachineInfoRequest,
    MetersRequest,
    RealTimeReportingRequest,
    RemoteHandpayResetRequest,
    Request,
    RomSignatureRequest,
    SasVersionRequest,
    SelectedGameRequest,
    SelectedMetersRequest,
    SetDateTimeRequest,
    SoundOffRequest,
    SoundOnRequest,
    UnlockRequest,
)
from sas_protocol.messages.responses import (
    Ack,
    AftLockStatusReply,
    DateTimeReply,
    EnabledGamesReply,
    EnhancedValidationReply,
    ExtendedGameInfoReply,
    GameConfigurationReply,
    GameCountReply,
    HandpayInfoReply,
    HandpayResetMethodReply,
    HandpayResetReply,
    LastBillReply,
    MachineInfoReply,
    Response,
    RomSignatureReply,
    SasVersionReply,
    SelectedGameReply,
)
from sas_protocol.messages.ticket_info import CashoutTicketRequest

Reply = (
    Ack | MeterReply | HandpayInfoReply | MachineInfoReply | LastBillReply | GameCountReply
    | SasVersionReply | SelectedGameReply | EnabledGamesReply | DateTimeReply
    | EnhancedValidationReply | GameConfigurationReply | ExtendedGameInfoReply
    | AftLockStatusReply | HandpayResetReply | HandpayResetMethodReply | RomSignatureReply
    | Response  # the §3.9b polls (emulator.more_polls)
)

def rom_signature(seed: int, serial: str) -> int:
    """LP 21: a CRC over the seed and the "program" (here the serial number)."""
    return crc16_kermit(seed.to_bytes(2, "little") + serial.encode("ascii", "replace"))


def _value(machine: Machine, code: int, game: int, size: int) -> int:
    value: int = machine.meter(code, game) % (10 ** (2 * size))
    return value


def legacy_meters(machine: Machine, poll: int) -> MeterReply:
    values, other = [], []
    for key, size in LEGACY_METER_LAYOUTS[poll]:
        if isinstance(key, int):
            values.append(MeterValue(key, _value(machine, key, 0, size), size))
        elif key == "total_bill_dollars":  # LP 20 (reference §3.9b)
            other.append((key, total_bill_dollars(machine)))
        elif key == "slot_door_opened":  # LP 1C
            other.append((key, machine.slot_door_openings % 10**8))
        else:  # LP 1C power resets
            other.append((key, machine.power_resets % 10**8))
    return MeterReply(poll, 0, tuple(values), tuple(other))


def selected_meters(machine: Machine, game: int, codes: tuple[int, ...]) -> MeterReply:
    """LP 2F: each known meter at its table C-7 size; codes the machine lacks are left out."""
    values = []
    for code in codes:
        if code not in METERS or not _has_game(machine, game):
            continue
        size = meter_spec(code).size
        values.append(MeterValue(code, _value(machine, code, game, size), size))
    return MeterReply(0x2F, game, tuple(values))


def extended_meters(machine: Machine, game: int, codes: tuple[int, ...],
                    alternate: bool) -> MeterReply:
    """LP 6F/AF: each known meter with its size; unknown ones reported with size 0."""
    values, unsupported = [], []
    for code in codes:
        try:
            size = meter_def(code).size
        except UnknownMeterError:
            unsupported.append(code)
            continue
        if not _has_game(machine, game):
            unsupported.append(code)
            continue
        values.append(MeterValue(code, _value(machine, code, game, size), size))
    return MeterReply(0xAF if alternate else 0x6F, game, tuple(values), (), tuple(unsupported))


def _has_game(machine: Machine, game: int) -> bool:
    return game == 0 or game in machine.games


def _set_clock(machine: Machine, request: SetDateTimeRequest, now: float) -> bool:
    """LP 7F: set the machine clock (local time). False for a date the calendar lacks
    (31 February, year 0): the BCD fields were in range, the date is not."""
    r = request
    try:
        wall = datetime(r.year, r.month, r.day, r.hour, r.minute, r.second,
                        tzinfo=machine.clock(now).tzinfo)
    except ValueError:
        return False
    machine.set_clock(now, wall)
    return True


def validation_reply(machine: Machine, function: int, now: float) -> EnhancedValidationReply:
    """LP 4D (reference §3.9): 00 the current record (the oldest unread one, now read),
    01-1F the record at that buffer index, FF look-ahead (the next unread one, not marked
    read). An empty slot, or any other function code, answers zeros."""
    if function == 0x00:
        ticket = machine.read_validation_info(now)
    elif function == 0xFF:
        ticket = machine.peek_validation_info()
    elif function <= VALIDATION_BUFFER_SIZE:
        ticket = machine.validation_record(function)
    else:
        ticket = None
    if ticket is None:
        return EnhancedValidationReply(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    at = ticket.printed_at
    return EnhancedValidationReply(
        0x00, ticket.buffer_index, int(at.strftime("%m%d%Y")), int(at.strftime("%H%M%S")),
        ticket.validation_number, ticket.amount_cents % 10**10,
        ticket.ticket_number % 0x10000, 0, 0, 0)


def apply_broadcast(machine: Machine, request: Request, now: float) -> bool:
    """A global broadcast long poll (address 0, SAS §2.2.2.4): act on it, never answer it.
    True when the machine acted on it. Only LP 7F (set date and time) may be broadcast
    (reference §3.9); any other broadcast is ignored, as is an impossible date."""
    if isinstance(request, SetDateTimeRequest):
        return _set_clock(machine, request, now)
    return False


def answer(machine: Machine, request: Request, now: float) -> Reply | None:
    """The reply to one long poll, or None when the machine stays silent."""
    m = machine
    match request:
        case LockRequest():
            m.lock()
            return Ack()
        case UnlockRequest():
            m.unlock()
            return Ack()
        case SoundOffRequest():
            m.set_sound(False)
            return Ack()
        case SoundOnRequest():
            m.set_sound(True)
            return Ack()
        case EnableBillAcceptorRequest():
            m.set_bill_acceptor(True)
            return Ack()
        case DisableBillAcceptorRequest():
            m.set_bill_acceptor(False)
            return Ack()
        case RealTimeReportingRequest(enable=enable):
            m.set_rte(enable)
            return Ack()
        case MetersRequest(poll=poll):
            return legacy_meters(m, poll)
        case SelectedMetersRequest(game=game, codes=codes):
            return selected_meters(m, game, codes)
        case ExtendedMetersRequest(game=game, codes=codes, alternate=alternate):
            return extended_meters(m, game, codes, alternate)
        case HandpayInfoRequest():
            handpay = m.read_handpay_info(now)
            if handpay is None:
                return HandpayInfoReply(0, 0, 0, 0, 0)
            # non-progressive handpays report accounting credits (reference §3.9)
            return HandpayInfoReply(0, handpay.level, handpay.credits % 10**10, 0, 0)
        case RemoteHandpayResetRequest():
            return HandpayResetReply(0x00 if m.reset_handpay(now) is not None else 0x02)
        case HandpayResetMethodRequest(method=method):
            if m.handpay is None:
                return HandpayResetMethodReply(0x02)
            if method not in (0x00, 0x01):
                return HandpayResetMethodReply(0x01)
            m.handpay_reset_to_credits = method == 0x01
            return HandpayResetMethodReply(0x00)
        case MachineInfoRequest():
            first = m.games[1]
            max_bet = max(g.max_bet for g in m.games.values())
            return MachineInfoReply(
                m.config.game_id, m.config.additional_id, denomination_code(m.denomination_cents),
                min(max_bet, 0xFF), 0, 0, first.paytable_id, first.base_percent)
        case GameConfigurationRequest(game=game):
            if game not in m.games:
                return None
            g = m.games[game]
            return GameConfigurationReply(
                game, m.config.game_id, m.config.additional_id,
                denomination_code(m.denomination_cents), min(g.max_bet, 0xFF), 0, 0,
                g.paytable_id, g.base_percent)
        case ExtendedGameInfoRequest(game=game):
            if game not in m.games:
                return None
            g = m.games[game]
            return ExtendedGameInfoReply(game, g.max_bet, 0, 0, g.name, g.paytable_id, 0,
                                         (denomination_code(m.denomination_cents),))
        case LastBillRequest():
            bill = m.last_bill
            if bill is None:
                return LastBillReply(0, 0, 0)
            return LastBillReply(COUNTRY_CODE_US, BILL_DENOMINATION_CODES[bill.dollars],
                                 bill.count % 10**8)
        case GameCountRequest():
            return GameCountReply(len(m.games))
        case SasVersionRequest():
            return SasVersionReply(m.config.sas_version, m.config.serial_number)
        case SelectedGameRequest():
            return SelectedGameReply(m.selected_game)
        case EnabledGamesRequest():
            return EnabledGamesReply(tuple(sorted(m.enabled_games)))
        case DateTimeRequest():
            t = m.clock(now)
            return DateTimeReply(t.month, t.day, t.year, t.hour, t.minute, t.second)
        case SetDateTimeRequest():
            # an impossible date is not acknowledged (the host sees no answer and retries)
            return Ack() if _set_clock(m, request, now) else None
        case EnhancedValidationRequest(function=function):
            return validation_reply(m, function, now)
        case AftLockStatusRequest():
            # interrogate (and any lock code: the emulator never locks on request) reports
            # the game lock, lock status 00 locked / FF not locked (reference §3.9)
            cashable = m.credits * m.denomination_cents
            return AftLockStatusReply(
                int(m.config.serial_number[-8:]) if m.config.serial_number[-8:].isdigit() else 1,
                0x00 if m.game_locked else 0xFF, 0, 0, 0, 0, cashable % 10**10, 0, 0, 0, 0, 0)
        case RomSignatureRequest():
            return Ack()  # the signature follows in reply to a later poll (SAS §6)
        case EnabledFeaturesRequest(game=game):
            return enabled_features(m, game)
        case CashoutTicketRequest(number_size=size):
            return cashout_ticket(m, size)
        case GameMetersRequest(game=game):
            return game_meters(m, game)
        case GameEnableRequest(game=game, enable=enable):
            # an unknown game is not acknowledged (Monaco NACKs it, reference §3.9b)
            return Ack() if m.set_game_enabled(game, enable) else None
        case DelayGameRequest(delay_ms=delay_ms):
            m.delay_games(delay_ms)
            return Ack()
        case CurrentDenominationRequest():
            return current_denomination(m)
        case EnabledDenominationsRequest():
            return enabled_denominations(m)
        case MultiDenomRequest():
            return multi_denom(m, request, lambda base: answer(m, base, now))
        case _:
            return None
