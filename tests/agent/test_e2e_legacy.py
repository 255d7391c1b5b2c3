"""End to end on legacy machines, and the agent still reports their bills and cash-out
tickets with the right amounts (issue 12: three bills, a ticket in and a ticket out produced
no events on such a machine):

- an old machine that answers only the fixed meter polls (0F, 10-17, 19, 1A, 1C): no 2F, 6F
  or AF, nor the bill meter polls 1E, 20, 46; bills come from the exceptions and the drop;
- a legacy machine with the bill meter polls (reference §3.9b): bills come from LP 46 (0B).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.profiles import link_options
from emulator.server import LinkOptions
from tests.agent.e2e_helpers import Rig
from tests.support.event_data import assert_documented

OLD = LinkOptions(unsupported_polls=frozenset({0x2F, 0x6F, 0xAF, 0x1E, 0x20, 0x46}))
LEGACY = LinkOptions(unsupported_polls=frozenset({0x2F, 0x6F, 0xAF}))


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, link=OLD)
    try:
        r.wait_ready()
        yield r
        assert_documented(e.to_wire() for e in r.events())  # docs/schemas/events/data.json
    finally:
        r.close()


def test_bills_by_exception_and_drop_and_ticket_out_by_4d_and_cancelled_credits(
        rig: Rig) -> None:
    with rig.act() as (m, now):
        m.insert_bill(now, 20)
        m.insert_bill(now, 5)
        m.insert_bill(now, 100)
    rig.wait_total("billAccepted", 12_500)
    sources = {e.event.data.get("source") for e in rig.events("billAccepted")}
    assert sources == {"exception"}
    with rig.act() as (m, now):
        m.cash_out(now)
    rig.wait_total("cashout", 12_500)
    printed = rig.wait_event("ticketPrinted")[0].event.data
    assert printed["amount"] == 12_500 and printed["metered"] is True
    rig.wait_quiet()
    assert rig.events("unexplainedMeterChange") == []
    assert rig.machine.totals().bills == rig.total("billAccepted")
    snapshot = rig.events("meterSnapshot")[0].event.data["meters"]
    assert "totalDrop" in snapshot and "billsAccepted" not in snapshot


def test_bills_by_the_bill_meter_polls_of_a_legacy_machine(tmp_path: Path) -> None:
    rig = Rig(tmp_path, link=LEGACY)
    try:
        rig.wait_ready()
        with rig.act() as (m, now):
            m.insert_bill(now, 20)
            m.insert_bill(now, 50)
        rig.wait_total("billAccepted", 7_000)
        bills = [e.event.data for e in rig.events("billAccepted")]
        assert all(b.get("source") != "exception" for b in bills)
        assert all("billsAccepted" in b["meters"] for b in bills)
        rig.wait_quiet()
        assert rig.events("unexplainedMeterChange") == []
        assert rig.machine.totals().bills == rig.total("billAccepted")
        assert_documented(e.to_wire() for e in rig.events())
    finally:
        rig.close()


def test_standard_validation_machine_values_bills_by_lp48_and_tickets_by_lp3d(
        tmp_path: Path) -> None:
    """The ``legacy-std`` profile: no bill meter and no LP 4D. A $25 bill reports 4F (no code
    of its own, reference §3.11), so only LP 48 can tell its value; the tickets' records come
    from LP 3D (reference §3.9b)."""
    rig = Rig(tmp_path, link=link_options("legacy-std"))
    try:
        rig.wait_ready()
        with rig.act() as (m, now):
            m.insert_bill(now, 20)
        rig.wait_total("billAccepted", 2_000)
        with rig.act() as (m, now):
            m.insert_bill(now, 25)
        rig.wait_total("billAccepted", 4_500)
        with rig.act() as (m, now):
            m.insert_bill(now, 100)
        rig.wait_total("billAccepted", 14_500)
        bills = [e.event.data for e in rig.events("billAccepted")]
        assert [b["bills"] for b in bills] == [{"2000": 1}, {"2500": 1}, {"10000": 1}]
        assert [b["codes"] for b in bills] == [["0x4A"], ["0x4F"], ["0x4C"]]
        assert all(b["source"] == "lastBill" for b in bills)
        assert all("totalDrop" in b["meters"] for b in bills)

        printed = []
        for _ in range(2):
            with rig.act() as (m, now):
                printed.append(m.cash_out(now))
                m.insert_bill(now, 5)
            rig.wait_event("ticketPrinted", len(printed))
        rig.wait_quiet()
        tickets = [e.event.data for e in rig.events("ticketPrinted")]
        assert [(t["amount"], t["validationNumber"], t["source"], t["metered"])
                for t in tickets] == [
            (p.amount_cents, f"{p.validation_number % 10**8:08d}", "LP 3D", True)
            for p in printed if p is not None]
        assert rig.total("cashout") == sum(t["amount"] for t in tickets)
        assert rig.events("unexplainedMeterChange") == []
        assert rig.machine.totals().bills == rig.total("billAccepted")
        assert rig.machine.unread_tickets == []  # each LP 3D read serviced its 3D
        assert_documented(e.to_wire() for e in rig.events())
    finally:
        rig.close()
