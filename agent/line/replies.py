"""Replies to the one-off reads (LP 1B handpay, LP 4D or LP 3D ticket, LP 48 last bill,
LP 74 game lock) as the observations the interpreter takes: one conversion for the line owner
(agent/line/schedule.py) and for ``slot-agent replay`` (agent/ops/replay.py), so a capture
replays as the agent ran it."""

from __future__ import annotations

from agent.observations import GameLockRead, HandpayInfoRead, LastBillRead, TicketValidationRead
from sas_protocol.messages.responses import (
    AftLockStatusReply,
    EnhancedValidationReply,
    HandpayInfoReply,
    LastBillReply,
)
from sas_protocol.messages.ticket_info import CashoutTicketReply

#: LP 1B levels 01-20 are progressive levels; 40 and 80 are non-progressive (SAS §3.9).
PROGRESSIVE_LEVELS = range(0x01, 0x21)


def handpay_read(reply: HandpayInfoReply, *, address: int, at: float,
                 denomination_cents: int | None) -> HandpayInfoRead | None:
    """LP 1B as an observation; None while the denomination a non-progressive handpay
    needs is unknown (the machine re-issues exception 51 every 15 s, SAS §7.8.1)."""
    amount = reply.amount
    if reply.level not in PROGRESSIVE_LEVELS:
        # SAS §3.9: non-progressive handpays report accounting credits, progressives cents.
        if denomination_cents is None:
            return None
        amount *= denomination_cents
    return HandpayInfoRead(
        at=at, address=address, progressive_group=reply.progressive_group,
        level=reply.level, amount_cents=amount, partial_pay_credits=reply.partial_pay,
        reset_id=reply.reset_id)


def ticket_read(reply: EnhancedValidationReply, *, address: int, at: float
                ) -> TicketValidationRead:
    """LP 4D as an observation (amounts are cents, SAS §3.9)."""
    return TicketValidationRead(
        at=at, address=address, validation_type=reply.validation_type,
        validation_number=f"{reply.validation_number:016d}", amount_cents=reply.amount,
        ticket_number=reply.ticket_number)


def cashout_ticket_read(reply: CashoutTicketReply, *, address: int, at: float
                        ) -> TicketValidationRead:
    """LP 3D as a ticket record (reference §3.9b, standard validation): the validation number
    (8 digits, or 4 in the [unsure] 2-byte layout) and the amount in cents of a cash-out
    ticket; no validation type byte (a cash-out ticket is type 00), no ticket number."""
    digits = 2 * reply.number_size.size
    return TicketValidationRead(
        at=at, address=address, validation_type=0x00,
        validation_number=f"{reply.validation_number:0{digits}d}", amount_cents=reply.amount,
        ticket_number=None, poll="LP 3D")


def last_bill_read(reply: LastBillReply, *, address: int, at: float) -> LastBillRead:
    """LP 48 as an observation (reference §3.9): country code, denomination code and the
    lifetime count of that bill."""
    return LastBillRead(at=at, address=address, country_code=reply.country_code,
                        denomination_code=reply.denomination_code, bill_count=reply.bill_count)


def game_lock_read(reply: AftLockStatusReply, *, address: int, at: float) -> GameLockRead:
    """LP 74 as an observation: its lock status byte (00 locked, 40 pending, FF not locked,
    reference §3.9)."""
    return GameLockRead(at=at, address=address, lock_status=reply.lock_status)
