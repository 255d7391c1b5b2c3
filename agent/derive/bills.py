"""Bills on every meter profile: which meter says how much came in, and bill exceptions
matched with the total drop when no bill meter exists.

Machines answer different poll sets (reference §3.9, §3.9b, §3.10), so the bill money of a
machine comes from the best meter it answers (:func:`bill_source`):

1. ``0B`` credits from bills accepted (LP 2F/6F);
2. ``billDollars``: LP 20, whole dollars of all bills (keyed ``Meter.BILL_DOLLARS``);
3. the bill count meters ``40``-``57`` (LP 2F/6F, or LP 1E's six counts keyed the same way),
   valued at face;
4. ``24`` total drop (LP 0F/19/1C), which every legacy meter poll carries: it moves with bills
   *and* coins to the drop (``0A``), so it cannot say a bill came in. Here the bill-accepted
   exceptions 47-4E and 50 (one bill of the value in the code, non-RTE, §3.11) and 4F (a bill
   of a value the reference does not give) say what came in, and the drop says whether it
   really did: a bill is reported once drop movement pays for it, like a ticket record is
   matched with the ticket-out meters (agent/derive/tickets.py). Where the machine answers
   LP 48 (last accepted bill, §3.9), asked for after each bill exception, the bill
   acceptor's own report values the bill (:func:`last_bill`); so does the denomination code
   an RTE 4F frame carries (§3.12).

For sources 1-3 the interpreter reports ``billAccepted`` from the meter delta itself and the
exceptions are only triggers. For source 4 this module keeps the ledger, pure functions over
:class:`agent.derive.state.MachineState`:

- a bill exception waits (``bills_pending``) for drop movement; drop movement not yet claimed
  is the *drop credit*;
- pending bills of known value claim the credit oldest first; 4F bills (value unknown: no
  LP 48 answer) share what is left; claimed bills become one ``billAccepted`` (``source:
  "lastBill"`` when LP 48 valued every one of them, else ``"exception"``);
- a pending bill that a read begun after it cannot pay for is no money: a garbled byte (bill
  codes carry no CRC outside RTE, §3.4) or a repeat, and it is dropped;
- drop credit no bill claims within ``settle`` seconds becomes ``unexplainedMeterChange``
  (meter ``totalDrop``, the delta): never silence (docs/events.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from agent.derive.exceptions_map import code_text
from agent.derive.meters import BILL_COUNT_VALUES_CENTS, Meter, meter_name
from agent.derive.state import MachineState
from agent.observations import LastBillRead
from api.events import Event, utc_timestamp

#: Non-RTE bill-accepted exceptions and the bill each reports, in cents (reference §3.11:
#: 47-4E and 50 are $1/$5/$10/$20/$50/$100/$2/$500/$200; 4F is "other denominations", and
#: every denomination in RTE, whose value the reference's tables do not give).
BILL_EXCEPTION_CENTS: dict[int, int | None] = {
    0x47: 100, 0x48: 500, 0x49: 1_000, 0x4A: 2_000, 0x4B: 5_000, 0x4C: 10_000,
    0x4D: 200, 0x4E: 50_000, 0x50: 20_000, 0x4F: None,
}

#: Bill denomination codes of LP 48 and the RTE 4F frame -> face value in cents. The codes run
#: in the order of the bill-count meters 40-57 (reference §3.10: $1, $2, $5, $10, $20, $25,
#: $50, $100, ...), code 00 = $1, as the emulator sends them; the reference names the field
#: (§3.9, §3.12) but gives no code table, so a code outside this one values no bill (the drop
#: decides, as for 4F).
BILL_DENOMINATION_CENTS: dict[int, int] = {
    code - min(BILL_COUNT_VALUES_CENTS): cents
    for code, cents in sorted(BILL_COUNT_VALUES_CENTS.items())
}
#: how a pending bill was valued, in ``bills_pending`` entries (``"by"``)
BY_LAST_BILL = "LP 48"

#: meters that value bills by themselves (sources 1-3 above)
BILL_VALUE_METERS: frozenset[int] = frozenset({Meter.BILLS, Meter.BILL_DOLLARS,
                                               *BILL_COUNT_VALUES_CENTS})


def bill_source(known: Mapping[int, int] | frozenset[int]) -> str | None:
    """The meter this machine's bills are counted from, given the meters it answered:
    ``"0B"``, ``"billDollars"``, ``"billCounts"``, ``"totalDrop"``, or None."""
    if Meter.BILLS in known:
        return "0B"
    if Meter.BILL_DOLLARS in known:
        return "billDollars"
    if any(code in known for code in BILL_COUNT_VALUES_CENTS):
        return "billCounts"
    if Meter.TOTAL_DROP in known:
        return "totalDrop"
    return None


def metered_bills(m: MachineState, moved: Mapping[int, int]) -> tuple[int, dict[int, int]] | None:
    """Sources 1-3: (cents, {face cents: count}) of the bills in ``moved`` by the best bill
    meter the machine answers, or None when nothing moved (or the machine has none).

    A lower source is used only when the machine answers no higher one, so a read with only
    counts on a machine that keeps 0B does not count the same bills twice."""
    source = bill_source(m.baseline)
    counts = {BILL_COUNT_VALUES_CENTS[c]: n for c, n in sorted(moved.items())
              if c in BILL_COUNT_VALUES_CENTS and n}
    if source == "0B" and moved.get(Meter.BILLS):
        return moved[Meter.BILLS] * (m.denomination_cents or 0), counts
    if source == "billDollars" and moved.get(Meter.BILL_DOLLARS):
        return moved[Meter.BILL_DOLLARS] * 100, counts  # whole dollars (reference §3.9b)
    if source == "billCounts" and counts:
        return sum(face * n for face, n in counts.items()), counts
    return None


def drop_only(m: MachineState) -> bool:
    """The drop is the machine's only bill meter (or no meter is known yet): bill exceptions
    and LP 48 say which bills came in."""
    return bill_source(m.baseline) in (None, "totalDrop")


def seen(m: MachineState, code: int, at: float,
         fields: Mapping[str, Any] | None = None) -> MachineState:
    """A bill-accepted exception. Kept only where the drop is the machine's only bill meter
    (or no meter is known yet): elsewhere the bill meters are read and say it all. An RTE
    4F frame's denomination code (reference §3.12) values the bill."""
    if not drop_only(m) or code not in BILL_EXCEPTION_CENTS:
        return m
    cents = BILL_EXCEPTION_CENTS[code]
    denomination = (fields or {}).get("denomination_code")
    if isinstance(denomination, int) and denomination in BILL_DENOMINATION_CENTS:
        cents = BILL_DENOMINATION_CENTS[denomination]
    bill = {"cents": cents, "code": code_text(code), "at": at}
    return replace(m, bills_pending=(*m.bills_pending, bill))


def last_bill(m: MachineState, obs: LastBillRead) -> MachineState:
    """LP 48 answered: the bill acceptor's report of its last bill values the newest pending
    bills not yet valued by it, as many as that denomination's lifetime count moved since the
    last report (one when there was none), among those of unknown value (4F) or of that face.

    A report whose count did not move values nothing (a repeated read, or a bill exception
    that was a garbled byte); a denomination code outside the table values nothing either."""
    face = BILL_DENOMINATION_CENTS.get(obs.denomination_code)
    code = obs.denomination_code
    before = m.bill_counts.get(code)
    counts = {**m.bill_counts, code: obs.bill_count}
    if face is None or obs.bill_count == 0 or not drop_only(m):
        return replace(m, bill_counts=counts)
    new = 1 if before is None else obs.bill_count - before
    pending = list(m.bills_pending)
    for index in reversed(range(len(pending))):
        if new <= 0:
            break
        bill = pending[index]
        if bill.get("by") == BY_LAST_BILL or bill["cents"] not in (None, face):
            continue
        pending[index] = {**bill, "cents": face, "by": BY_LAST_BILL}
        new -= 1
    return replace(m, bills_pending=tuple(pending), bill_counts=counts)


def meters_read(m: MachineState, *, moved: Mapping[int, int],
                pairs: Mapping[int, tuple[int, int]], started_at: float, at: float,
                settle: float, player_id: str | None, extra: Mapping[str, Any]
                ) -> tuple[list[Event], MachineState]:
    """A meter read was interpreted and ``m.baseline`` holds its values: match the pending
    bill exceptions with the drop movement in ``moved`` (cents of credits x denomination)."""
    if bill_source(m.baseline) != "totalDrop":
        if m.bills_pending or m.drop_credit:
            m = replace(m, bills_pending=(), drop_credit=0, drop_credit_since=None,
                        drop_credit_from=None)
        return [], m
    denom = m.denomination_cents or 0
    # Drop = coins to drop + bills to drop (+ tickets in on machines that count them there,
    # A0 F2 bit 2): take out what other meters in this read explain.
    drop = (moved.get(Meter.TOTAL_DROP, 0) - moved.get(Meter.COINS_TO_DROP, 0)) * denom
    drop -= moved.get(Meter.TICKET_IN_CASHABLE, 0) + moved.get(Meter.TICKET_IN_RESTRICTED, 0)
    if drop > 0:
        if not m.drop_credit:
            m = replace(m, drop_credit_from=pairs[Meter.TOTAL_DROP][0])
        m = replace(m, drop_credit=m.drop_credit + drop, drop_credit_since=at)
    events: list[Event] = []
    credit = m.drop_credit
    claimed: list[Mapping[str, Any]] = []
    unknown: list[Mapping[str, Any]] = []
    waiting: list[Mapping[str, Any]] = []
    for bill in m.bills_pending:
        cents = bill["cents"]
        if cents is None:
            unknown.append(bill)
        elif cents <= credit:
            credit -= cents
            claimed.append(bill)
        elif bill["at"] > started_at:
            waiting.append(bill)  # the read may have begun before the bill went in
        # else: a read begun after the exception shows no drop for it: not money
    amount_unknown = 0
    if unknown and credit > 0:
        # 4F bills of unknown value share the drop movement no known bill claims
        claimed += unknown
        amount_unknown, credit = credit, 0
    else:
        waiting += [bill for bill in unknown if bill["at"] > started_at]
    if claimed:
        events.append(_accepted(m, claimed, amount_unknown, at, player_id, extra))
    m = replace(m, bills_pending=tuple(waiting), drop_credit=credit)
    if credit == 0:
        m = replace(m, drop_credit_since=None, drop_credit_from=None)
    elif (not waiting and m.drop_credit_since is not None
          and at - m.drop_credit_since >= settle):
        events.append(_unexplained(m, at))
        m = replace(m, drop_credit=0, drop_credit_since=None, drop_credit_from=None)
    return events, m


def _accepted(m: MachineState, claimed: list[Mapping[str, Any]], amount_unknown: int,
              at: float, player_id: str | None, extra: Mapping[str, Any]) -> Event:
    denom = m.denomination_cents or 0
    known = [int(b["cents"]) for b in claimed if b["cents"] is not None]
    cents = sum(known) + amount_unknown
    data: dict[str, Any] = {
        "amount": cents,
        "credits": cents // denom if denom and cents % denom == 0 else None,
        "denomination": denom,
        "count": len(claimed),
    }
    if not amount_unknown:
        bills: dict[str, int] = {}
        for face in known:
            bills[str(face)] = bills.get(str(face), 0) + 1
        data["bills"] = bills
    data.update({
        "source": ("lastBill" if all(b.get("by") == BY_LAST_BILL for b in claimed)
                   else "exception"),
        "codes": [b["code"] for b in claimed],
        "meters": {meter_name(Meter.TOTAL_DROP): [m.drop_credit_from,
                                                  m.baseline[Meter.TOTAL_DROP]]},
        "playerId": player_id,
        **extra,
    })
    return Event("billAccepted", utc_timestamp(at), data)


def _unexplained(m: MachineState, at: float) -> Event:
    before = m.drop_credit_from
    after = m.baseline[Meter.TOTAL_DROP]
    return unexplained(Meter.TOTAL_DROP, before if before is not None else after, after,
                       m.drop_credit, at)


def unexplained(code: int, before: int, after: int, amount_cents: int, at: float) -> Event:
    """``unexplainedMeterChange``: meter ``code`` moved from ``before`` to ``after`` and
    ``amount_cents`` of it is money no event accounts for."""
    return Event("unexplainedMeterChange", utc_timestamp(at), {
        "meter": meter_name(code), "code": code_text(code), "before": before, "after": after,
        "amount": amount_cents,
    })
