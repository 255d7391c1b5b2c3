"""The machine's answers to the long polls of reference §3.9b: A0 enabled features, 3D
cash-out ticket information, 52 game N meters, the bill meters 1E/20 (through
``responder.legacy_meters``), and the multi-denomination polls B0/B1/B2.

Kept apart from ``responder`` (which dispatches to these) so each stays one screen."""

from __future__ import annotations

from collections.abc import Callable

from emulator.meters import BILL_METERS
from emulator.model import Machine
from sas_protocol.denominations import DENOMINATION_CENTS
from sas_protocol.messages.base import Ack, Busy, Request, Response
from sas_protocol.messages.features import (
    EnabledFeaturesReply,
    Features1,
    Features2,
    Features3,
)
from sas_protocol.messages.meters import GAME_METER_LAYOUT, MeterReply, MeterValue
from sas_protocol.messages.multidenom import (
    MULTI_DENOM_AWARE_POLLS,
    CurrentDenominationReply,
    EnabledDenominationsReply,
    MultiDenomError,
    MultiDenomErrorCode,
    MultiDenomReply,
    MultiDenomRequest,
)
from sas_protocol.messages.requests import SelectedMetersRequest, UnknownRequest
from sas_protocol.messages.ticket_info import CashoutTicketReply
from sas_protocol.variants import TicketNumberSize, WrappedAck

#: What the multi-denomination answers may wrap (the responder's reply types).
Answer = Ack | Busy | MeterReply | Response


#: cents per credit -> SAS denomination code (table C-4)
DENOMINATION_CODES: dict[int, int] = {cents: code for code, cents in DENOMINATION_CENTS.items()}


def denomination_code(cents: int) -> int:
    """Table C-4 code of a denomination; 00 (none) when the table has no such value."""
    return DENOMINATION_CODES.get(cents, 0x00)


def enabled_features(machine: Machine, game: int) -> EnabledFeaturesReply | None:
    """LP A0 (reference §3.9b feature bits) from what this machine does: LP 4D validation
    records and ticket redemption (F1; standard validation style 00, so LP 3D carries the
    validation number), wins metered when won, 6F/AF and AFT (F2), multi-denom when
    configured, and the 40 ms poll interval when configured (F3 bit 0). Silent for a game
    the machine does not have."""
    if game != 0 and game not in machine.games:
        return None
    f1 = Features1.VALIDATION_EXTENSIONS | Features1.TICKET_REDEMPTION
    f2 = Features2.METER_MODEL_LOW | Features2.EXTENDED_METERS | Features2.AFT
    if machine.config.multi_denom:
        f2 |= Features2.MULTI_DENOM_EXTENSIONS
    f3 = Features3.MAX_POLLING_RATE_40MS if machine.config.polling_40ms else Features3(0)
    return EnabledFeaturesReply(game, int(f1), int(f2), int(f3), 0)


def cashout_ticket(machine: Machine, size: TicketNumberSize) -> CashoutTicketReply:
    """LP 3D: the validation number (its low 8 digits, or 4 in the 2-byte layout) and the
    amount in cents of the ticket the 3D exception is about; zeros before any ticket."""
    ticket = machine.last_cashout_ticket
    if ticket is None:
        return CashoutTicketReply(0, 0, size)
    digits = 10 ** (2 * size.size)
    return CashoutTicketReply(ticket.validation_number % digits, ticket.amount_cents % 10**10,
                              size)


def game_meters(machine: Machine, game: int) -> MeterReply | None:
    """LP 52: coin in, coin out, jackpot, games played of game N (0: the whole machine)."""
    if game != 0 and game not in machine.games:
        return None
    values = tuple(MeterValue(code, machine.meter(code, game) % 10 ** (2 * size), size)
                   for code, size in GAME_METER_LAYOUT)
    return MeterReply(0x52, game, values)


def total_bill_dollars(machine: Machine) -> int:
    """LP 20: whole dollars of every bill accepted (since the last soft meter reset)."""
    return sum(dollars * machine.meter(code) for dollars, code in BILL_METERS.items()) % 10**8


def current_denomination(machine: Machine) -> CurrentDenominationReply | None:
    """LP B1: silent without multi-denom (Monaco). Games here are instant, so instead of 00
    ("no game running") the one player denomination is reported: the one games play at."""
    if not machine.config.multi_denom:
        return None
    return CurrentDenominationReply(denomination_code(machine.denomination_cents))


def enabled_denominations(machine: Machine) -> EnabledDenominationsReply | None:
    """LP B2: the enabled player denominations; silent without multi-denom (Monaco)."""
    if not machine.config.multi_denom:
        return None
    return EnabledDenominationsReply((denomination_code(machine.denomination_cents),))


def multi_denom(machine: Machine, request: MultiDenomRequest,
                answer: Callable[[Request], Answer | None]) -> Ack | Response | None:
    """LP B0 (reference §3.9b): the base poll answered at the asked player denomination
    (00 = the default), wrapped; errors per Monaco's "Table 16.1c". ``answer`` answers the
    base poll. Silent without multi-denom, like B1/B2."""
    if not machine.config.multi_denom:
        return None
    denom, base = request.denomination, request.poll
    own = denomination_code(machine.denomination_cents)
    if isinstance(base, UnknownRequest):
        return MultiDenomError(denom, MultiDenomErrorCode.POLL_NOT_SUPPORTED)
    if base.command not in MULTI_DENOM_AWARE_POLLS:
        return MultiDenomError(denom, MultiDenomErrorCode.NOT_MULTI_DENOM_AWARE)
    if denom > 0x3F:
        return MultiDenomError(denom, MultiDenomErrorCode.NOT_A_PLAYER_DENOMINATION)
    if denom not in (0x00, own):
        return MultiDenomError(denom, MultiDenomErrorCode.DENOMINATION_NOT_SUPPORTED)
    if isinstance(base, SelectedMetersRequest) and base.game != 0:
        # spec summary §7.3: 2F is multi-denom aware for game 0000 only
        return MultiDenomError(denom, MultiDenomErrorCode.BADLY_FORMATTED)
    reply = answer(base)
    if reply is None:
        return None
    if isinstance(reply, Ack) and request.wrapped_ack is WrappedAck.BARE:
        return reply  # the nCompass form [unsure]: a bare ACK
    return MultiDenomReply(denom, base.command, reply)
