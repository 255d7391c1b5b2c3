"""The agent against the served machine: every ticket printed reaches the outbox, even when
the player cashes out twice before the agent has read the first ticket's validation record
(the machine keeps a validation buffer; 3D persists until every record is read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.model import MachineConfig, Ticket
from tests.agent.e2e_helpers import Rig

pytestmark = pytest.mark.timeout(60)


def test_two_tickets_printed_before_the_agent_reads_either_are_both_reported(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path, machine=MachineConfig(denomination_cents=5))
    try:
        rig.wait_ready()
        with rig.act() as (machine, now):  # one lock: the agent cannot poll in between
            machine.insert_bill(now, 5)
            first = machine.cash_out(now)
            machine.insert_bill(now, 20)
            second = machine.cash_out(now)
        assert isinstance(first, Ticket) and isinstance(second, Ticket)
        printed = rig.wait_event("ticketPrinted", 2)
        assert sorted(e.event.data["validationNumber"] for e in printed) == sorted(
            f"{t.validation_number:016d}" for t in (first, second))
        assert sorted(int(e.event.data["amount"]) for e in printed) == [500, 2000]
        rig.wait_quiet()
        assert len(rig.events("ticketPrinted")) == 2  # neither reported twice
        with rig.act() as (machine, _now):
            assert machine.unread_tickets == []
    finally:
        rig.close()
