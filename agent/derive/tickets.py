"""The ticket ledger: ``ticketPrinted`` events whose amounts add up to the ticket-out meters.

A printed ticket reaches the agent two ways: its validation record (exception 3D, then LP 4D:
amount, validation number; LP 3D on a machine with standard validation only, reference
§3.9b) and the ticket-out meters 0E (cashable) and 10 (restricted), in
cents, which the machine moves when it prints (sas-protocol.md §3.10). The record says which
ticket; the meter says how much money left, and is the truth (docs/events.md, "Money").
Either can go missing on its own: a 3D lost in an exception-queue overflow or a crash
between the LP 4D answer and the commit loses the record; a record read at the agent's first
start belongs to a cash-out inside the first baseline. So the two are matched:

- a record's amount is matched against ticket-out movement not yet claimed (the *credit*);
  matched, it becomes ``ticketPrinted`` with ``metered: true``;
- a record no meter read started after it can cover was printed before the baseline (or is a
  handpay receipt or another type that does not move 0E/10): ``metered: false``, so it is
  reported but not counted twice;
- credit that no record claims within ``settle`` seconds (and with no LP 4D answer awaited)
  becomes one ``ticketPrinted`` with ``reconciled: true`` and no validation number.

So the sum of ``ticketPrinted`` amounts with ``metered: true`` equals the ticket-out meter
delta since the first baseline, whatever was lost on the way.

A machine that answers only the legacy meter polls (no 2F/6F) has no ticket-out meter: there
the records are matched with the cancelled-credits meter 04 (LP 0F/10), since a cash-out
ticket is a cash-out (reference §4.2: cash-out = cancelled credits, split into hand-paid,
ticket out and AFT out). Cash-out movement no record claims within ``settle`` is simply let go:
it is already reported as ``cashout``, and may have been a handpay. Pure functions over
:class:`agent.derive.state.MachineState`, like :mod:`agent.derive.sessions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from agent.derive.meters import Meter, meter_name
from agent.derive.state import MachineState
from agent.observations import TicketValidationRead
from api.events import Event, utc_timestamp

#: the meters a printed ticket moves, in cents (SAS Table C-7: 0E cashable, 10 restricted)
TICKET_OUT = (Meter.TICKET_OUT_CASHABLE, Meter.TICKET_OUT_RESTRICTED)

#: LP 4D validation types whose value moves the ticket-out meters 0E/10 (the validation type
#: byte of the LP 4D reply, sas-protocol.md §3.9; the code values are the SAS validation-type
#: table's, which the reference does not list): 00 cashable and 01 restricted promotional
#: ticket from a cash-out, 02 cashable and 03 restricted ticket from an AFT transfer. Handpay
#: receipts (10, 20) and debit tickets (04) are paid through other meters.
TICKET_OUT_TYPES = frozenset({0x00, 0x01, 0x02, 0x03})


def _printed(at: float, record: Mapping[str, Any], **more: Any) -> Event:
    data = {k: v for k, v in record.items() if k != "readAt"}
    return Event("ticketPrinted", utc_timestamp(at), {**data, **more})


def asked(m: MachineState, at: float) -> MachineState:
    """Exception 3D: an LP 4D answer is now awaited (the first 3D since the last answer
    counts; the machine repeats 3D until the record is read, SAS §4.3 pitfall 5)."""
    return m if m.ticket_asked_at is not None else replace(m, ticket_asked_at=at)


def link_up(m: MachineState, at: float) -> MachineState:
    """Discovery reads LP 4D again; unclaimed credit waits a full ``settle`` from now."""
    return replace(m, ticket_asked_at=None,
                   ticket_credit_since=at if m.ticket_credit else None)


def record_read(m: MachineState, obs: TicketValidationRead, player_id: str | None
                ) -> tuple[list[Event], MachineState, bool]:
    """LP 4D answered. Returns the events, the new state, and whether a ticket-out meter
    read is needed to settle a record that waits for it."""
    m = replace(m, ticket_asked_at=None)
    if obs.amount_cents == 0 and not obs.validation_number.strip("0"):
        return [], m, False  # LP 4D with no record
    number = obs.validation_number
    if number == m.last_ticket or any(t["validationNumber"] == number
                                      for t in m.tickets_waiting):
        return [], m, False  # 3D repeated until serviced: the same ticket once
    record = {
        "amount": obs.amount_cents,
        "validationNumber": number,
        "ticketNumber": obs.ticket_number,
        "validationType": obs.validation_type,
        "playerId": player_id,
        "readAt": obs.at,
    }
    if obs.poll != "LP 4D":
        record["source"] = obs.poll  # LP 3D: standard validation (reference §3.9b)
    m = replace(m, last_ticket=number)
    if obs.validation_type not in TICKET_OUT_TYPES:
        return [_printed(obs.at, record, metered=False)], m, False
    m = replace(m, tickets_waiting=(*m.tickets_waiting, record))
    events, m = _match(m, obs.at, covered_before=None)
    return events, m, bool(m.tickets_waiting)


def meters_read(m: MachineState, *, moved: Mapping[int, int],
                pairs: Mapping[int, tuple[int, int]], read: Mapping[int, int],
                started_at: float, at: float, settle: float, player_id: str | None
                ) -> tuple[list[Event], MachineState]:
    """A meter read was interpreted: ``moved`` holds money deltas against a baseline (empty
    on the first read), ``pairs`` their (before, after), ``read`` every meter in it, and
    ``started_at`` when its first poll went out."""
    legacy = not any(code in m.baseline for code in TICKET_OUT)
    if any(code in read for code in TICKET_OUT):
        sources: tuple[int, ...] = TICKET_OUT
        out = sum(moved.get(code, 0) for code in TICKET_OUT)
    elif legacy and Meter.CANCELLED_CREDITS in read and m.denomination_cents:
        sources = (Meter.CANCELLED_CREDITS,)
        out = moved.get(Meter.CANCELLED_CREDITS, 0) * m.denomination_cents
    else:
        return [], m
    if out:
        if not m.ticket_credit:
            m = replace(m, ticket_credit_from={
                code: pairs[code][0] for code in sources if code in pairs})
        # new movement restarts the wait: its 3D may still be on its way
        m = replace(m, ticket_credit=m.ticket_credit + out, ticket_credit_since=at)
    events, m = _match(m, at, covered_before=started_at)
    if (m.ticket_credit and not m.tickets_waiting
            and m.ticket_credit_since is not None and at - m.ticket_credit_since >= settle
            and (m.ticket_asked_at is None or at - m.ticket_asked_at >= settle)):
        if not legacy:
            events.append(_reconciled(m, read, at, player_id))
        m = replace(m, ticket_credit=0, ticket_credit_since=None, ticket_credit_from={})
    return events, m


def _match(m: MachineState, at: float, covered_before: float | None
           ) -> tuple[list[Event], MachineState]:
    """Claim credit for the waiting records, oldest first. A record that a read begun after
    it (``covered_before``) cannot pay for was printed before the first baseline."""
    credit = m.ticket_credit
    events: list[Event] = []
    waiting: list[Mapping[str, Any]] = []
    for record in m.tickets_waiting:
        if record["amount"] <= credit:
            credit -= record["amount"]
            events.append(_printed(at, record, metered=True))
        elif covered_before is not None and record["readAt"] <= covered_before:
            events.append(_printed(at, record, metered=False))
        else:
            waiting.append(record)
    if credit == 0:
        return events, replace(m, ticket_credit=0, ticket_credit_since=None,
                               ticket_credit_from={}, tickets_waiting=tuple(waiting))
    return events, replace(m, ticket_credit=credit, tickets_waiting=tuple(waiting))


def _reconciled(m: MachineState, read: Mapping[int, int], at: float, player_id: str | None
                ) -> Event:
    meters = {meter_name(code): [before, read[code]]
              for code, before in sorted(m.ticket_credit_from.items()) if code in read}
    return Event("ticketPrinted", utc_timestamp(at), {
        "amount": m.ticket_credit, "validationNumber": None, "ticketNumber": None,
        "validationType": None, "playerId": player_id, "metered": True, "reconciled": True,
        "meters": meters,
    })
