"""diag through the running agent says, per long poll that matters for money, whether the
machine answered it, ignores it or was not asked yet (``moneyPolls``), and never takes a poll
not asked yet for answered: the ticket poll before the agent has read it, LP 48 before the
first bill (docs/operations.md, the ``meters`` row). Against the emulator's ``modern`` and
``legacy-std`` profiles, through the daemon's own fact-building (agent.ops.diag_status) on
an in-process line owner and on the line process."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import PollConfig, parse_config
from agent.line.interface import Line
from agent.line.process import LineProcess
from agent.ops.diag_status import line_facts, line_facts_from_status
from agent.ops.diagnostics import Check, CheckStatus, LineFacts, build_report
from drivers import open_pty
from emulator.model import Machine
from emulator.profiles import link_options
from emulator.server import Emulator
from tests.agent.e2e_helpers import WAIT_S, Collected, Rig
from tests.agent.test_line_process import HoldLongPoll
from tests.support.waits import wait_until

pytestmark = pytest.mark.timeout(120)


def _facts(line: Line) -> LineFacts:
    """What ``diag`` gets from the daemon for machine 1: the daemon's own facts (status,
    then identity and meters through the command queue), through the control socket's
    JSON."""
    status = line.status()
    facts = line_facts(line, status, status["machines"]["1"], port="memory")
    return LineFacts.from_json(facts.to_json())


def _meters(facts: LineFacts) -> Check:
    report = build_report(line=facts, outbox=None, uplink=None, source="daemon",
                          terminal_id="T-1")
    return report.check("meters")


def _rig(tmp_path: Path, profile: str) -> Rig:
    rig = Rig(tmp_path, link=link_options(profile))
    rig.wait_ready()
    rig.wait_quiet()
    return rig


def _ticket(rig: Rig) -> None:
    """A $20 bill in, cashed out on a ticket; back when the agent has read its record."""
    with rig.act() as (machine, now):
        assert machine.insert_bill(now, 20)
        assert machine.cash_out(now) is not None
    rig.wait_event("ticketPrinted")
    rig.wait_quiet()
    with rig.act() as (machine, _now):
        assert machine.unread_tickets == []


def test_modern_the_ticket_poll_read_at_link_up_is_answered_before_and_after_a_ticket(
        tmp_path: Path) -> None:
    rig = _rig(tmp_path, "modern")
    try:
        for moment in ("before", "after"):
            if moment == "after":
                _ticket(rig)
            facts = _facts(rig.line)
            assert facts.money_polls is not None
            # the agent reads LP 4D at each link-up (agent.line.schedule on_link_up), so it
            # is answered before the first ticket; LP 3D is never needed here
            assert facts.money_polls["LP 4D"] == "answered", moment
            assert facts.money_polls["LP 3D"] == "notAsked", moment
            assert facts.money_polls["LP 6F"] == "answered", moment
            assert facts.money_polls["LP 1B"] == "notAsked", moment  # no handpay yet
            assert facts.ignored_polls == [], moment
            meters = _meters(facts)
            assert meters.status is CheckStatus.OK, (moment, meters.detail)
            assert meters.data["moneySources"]["ticketsOut"] == (
                "ticketOutCashable (LP 6F) + ticketOutRestricted (LP 6F) + LP 4D records")
            assert "not verified" not in meters.detail
            assert meters.data["moneyPolls"] == facts.money_polls
    finally:
        rig.close()


def test_legacy_std_bills_are_not_verified_until_the_first_bill(tmp_path: Path) -> None:
    """Standard validation, no bill meter: LP 4D ignored and LP 3D answered at link-up, and
    the discovery's meter read, stepping down from 6F and 2F to the legacy polls, found LP 20
    ignored too. LP 48 is sent only after a bill, so before one the bills' source is "not
    verified yet" (a warning), never assumed answered; after a bill and a ticket every money
    poll has its verdict and the check is ok."""
    rig = _rig(tmp_path, "legacy-std")
    try:
        facts = _facts(rig.line)
        assert facts.money_polls is not None
        assert facts.money_polls["LP 4D"] == "ignored"
        assert facts.money_polls["LP 3D"] == "answered"  # the ticket read at link-up
        assert facts.money_polls["LP 20"] == "ignored"  # the discovery's meter read
        assert facts.money_polls["LP 48"] == "notAsked"
        assert facts.money_polls["LP 2F"] == "ignored"
        assert facts.money_polls["LP 46"] == "ignored"
        assert "LP 4D" in facts.ignored_polls
        meters = _meters(facts)
        assert meters.status is CheckStatus.WARN
        sources = meters.data["moneySources"]
        assert sources["bills"] == "totalDrop (LP 1C) + exceptions 47-4F + LP 48 (not verified)"
        assert sources["ticketsOut"] == "LP 3D records matched with cancelledCredits (LP 0F)"
        assert "; LP 48 not verified yet: the agent has not sent it" in meters.detail
        assert meters.hint is not None
        assert "the agent has not sent LP 48 yet (it does after a bill" in meters.hint

        _ticket(rig)
        facts = _facts(rig.line)
        assert facts.money_polls is not None
        assert facts.money_polls["LP 20"] == "ignored"  # sent with the bill's meters
        assert facts.money_polls["LP 48"] == "answered"  # the bill's value
        assert facts.money_polls["LP 3D"] == "answered"  # and the ticket's record
        assert facts.money_polls["LP 4D"] == "ignored"
        meters = _meters(facts)
        assert meters.status is CheckStatus.OK, meters.detail
        assert meters.data["moneySources"]["bills"] == (
            "totalDrop (LP 1C) + exceptions 47-4F + LP 48")
        assert "not verified" not in meters.detail
        tickets = [e.event.data for e in rig.events("ticketPrinted")]
        assert [t["source"] for t in tickets] == ["LP 3D"]
    finally:
        rig.close()


def test_a_ticket_poll_not_asked_yet_with_the_meters_known_is_a_warning(
        tmp_path: Path) -> None:
    """The daemon's facts where the machine has not answered LP 4D yet (its status before
    the link-up ticket read: the verdict taken out of a real status): ``LP 4D records (not
    verified)``, a warning with the hint, never a plain ``LP 4D records``."""
    rig = _rig(tmp_path, "modern")
    try:
        status = rig.line.status()
        machine = dict(status["machines"]["1"])
        verdicts = dict(machine["pollVerdicts"])
        assert verdicts.pop("4D") == "answered"
        machine["pollVerdicts"] = verdicts
        facts = line_facts_from_status(status, machine, port="memory")
    finally:
        rig.close()
    assert facts.money_polls is not None and facts.money_polls["LP 4D"] == "notAsked"
    meters = _meters(facts)
    assert meters.status is CheckStatus.WARN
    assert meters.data["moneySources"]["ticketsOut"] == (
        "ticketOutCashable (LP 6F) + ticketOutRestricted (LP 6F) + LP 4D records "
        "(not verified)")
    assert "; LP 4D not verified yet: the agent has not sent it" in meters.detail
    assert meters.hint is not None
    assert "the agent has not sent LP 4D yet (it does at each link-up and after each " \
           "cash-out ticket)" in meters.hint


def test_a_poll_found_ignored_stays_ignored_for_diag_through_the_snapshots_re_probe(
        tmp_path: Path) -> None:
    """The timer snapshot empties the line's ``ignoredPolls`` to probe them again (agent.
    line.schedule); LP 4D, which is only sent for a ticket, must not turn "not asked"."""
    rig = _rig(tmp_path, "legacy-std")
    try:
        status = rig.line.status()
    finally:
        rig.close()
    machine = dict(status["machines"]["1"], ignoredPolls=[])  # right after the re-probe
    facts = line_facts_from_status(status, machine, port="memory")
    assert "LP 4D" in facts.ignored_polls and "LP 2F" in facts.ignored_polls
    assert facts.money_polls is not None and facts.money_polls["LP 4D"] == "ignored"
    assert _meters(facts).data["moneySources"]["ticketsOut"] == (
        "LP 3D records matched with cancelledCredits (LP 0F)")


# ------------------------------------------------------------------ across the line process

FAST = PollConfig(interval_ms=20, reply_timeout_ms=60, link_down_after=3,
                  link_down_after_s=5.0, snapshot_interval_s=3600.0)


#: ticketsOut once the held poll is answered and the discovery's meters read
TICKETS_OUT = {
    "LP 4D": "ticketOutCashable (LP 6F) + ticketOutRestricted (LP 6F) + LP 4D records",
    "LP 3D": "LP 3D records matched with cancelledCredits (LP 0F)",
}


@pytest.fixture
def held_line(request: pytest.FixtureRequest) -> Iterator[tuple[LineProcess, HoldLongPoll,
                                                                Machine]]:
    """The line process polling an emulated ``profile`` machine on a pty whose end holds the
    first ``command`` long poll (the ticket read of the link-up) until released."""
    profile, command = request.param
    master, path = open_pty()
    held = HoldLongPoll(master, command=command)
    held.arm()
    machine = Machine(now=time.monotonic())
    emulator = Emulator(machine, held, address=1, options=link_options(profile))
    emulator.start()
    config = dataclasses.replace(
        parse_config({"terminal_id": "T-DP", "machines": [{"address": 1}],
                      "serial": {"port": f"pty:{path}"}}), poll=FAST)
    seen = Collected()
    line = LineProcess(config, seen)
    line.start()
    try:
        yield line, held, machine
    finally:
        held.release.set()
        line.stop()
        emulator.stop()
        held.close()


@pytest.mark.parametrize("held_line", [("modern", 0x4D), ("legacy-std", 0x3D)],
                         indirect=True, ids=["modern-LP4D", "legacy-std-LP3D"])
def test_the_line_process_ships_which_ticket_poll_is_not_answered_yet(
        held_line: tuple[LineProcess, HoldLongPoll, Machine]) -> None:
    """While the machine has not answered the ticket poll, the child's status says so (no
    verdict) and diag marks the poll not verified; once answered, the verdict crosses the
    process boundary and the mark is gone."""
    line, held, _machine = held_line
    poll = f"LP {held.command:02X}"
    assert held.held.wait(WAIT_S), f"{poll} never sent"
    status: dict[str, Any] = line.status()  # the child's answer, through the socket pair
    facts = line_facts_from_status(status, status["machines"]["1"], port="pty")
    assert facts.money_polls is not None and facts.money_polls[poll] == "notAsked"
    if poll == "LP 3D":
        assert facts.money_polls["LP 4D"] == "ignored"  # found before LP 3D was sent
    meters = _meters(facts)
    assert f"{poll} records (not verified)" in meters.data["moneySources"]["ticketsOut"]
    assert f"; {poll} not verified yet: the agent has not sent it" in meters.detail
    assert meters.hint is not None and f"the agent has not sent {poll} yet" in meters.hint
    held.release.set()

    def answered() -> bool:
        states = line_facts_from_status(
            s := line.status(), s["machines"]["1"], port="pty").money_polls or {}
        return states.get(poll) == "answered"

    wait_until(lambda: answered() and line.idle(), WAIT_S,
               what=f"{poll} answered in the child's status, and the discovery done")
    status = line.status()
    assert status["machines"]["1"]["pollVerdicts"][f"{held.command:02X}"] == "answered"
    facts = line_facts_from_status(status, status["machines"]["1"], port="pty")
    assert _meters(facts).data["moneySources"]["ticketsOut"] == TICKETS_OUT[poll]


# ------------------------------------------------------------------ the daemon itself


async def test_the_daemon_answers_diag_with_its_money_polls(tmp_path: Path) -> None:
    """The product path: the daemon with its line process on a pty, a ``legacy-std``
    machine; ``diag_facts`` (the control socket's ``diag``) before and after a bill and a
    cash-out ticket."""
    from agent.config import load_config
    from agent.daemon import Daemon
    from agent.store.outbox import Outbox
    from tests.support.waits import wait_for

    master, path = open_pty()
    machine = Machine(now=time.monotonic())
    emulator = Emulator(machine, master, address=1, options=link_options("legacy-std"))
    emulator.start()
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"terminal_id: T-DM\nmachines:\n  - address: 1\nserial:\n  port: pty:{path}\n"
        f"outbox:\n  path: {tmp_path / 'ob.db'}\nmetrics:\n  enabled: false\n"
        "control_socket: null\npoll:\n  interval_ms: 60\n")
    daemon = Daemon(load_config(config))
    task = asyncio.create_task(daemon.run(install_signals=False))

    async def diag() -> LineFacts:
        answer = await asyncio.to_thread(daemon.diag_facts)
        return LineFacts.from_json(json.loads(json.dumps(answer))["lines"][0])

    def settled() -> bool:
        line = daemon.line
        return (line is not None and bool(line.status()["machines"]["1"]["linkUp"])
                and line.idle())

    def printed() -> bool:
        with Outbox.open_reader(tmp_path / "ob.db") as reader:
            return any(e.event.name == "ticketPrinted" for e in reader.pending(0, 10_000))

    try:
        assert await asyncio.to_thread(daemon.ready.wait, 20.0)
        await wait_for(settled, WAIT_S, "the link up and the discovery done", interval=0.02)
        facts = await diag()
        assert facts.money_polls is not None
        assert (facts.money_polls["LP 4D"], facts.money_polls["LP 3D"],
                facts.money_polls["LP 20"], facts.money_polls["LP 48"]) == (
                    "ignored", "answered", "ignored", "notAsked")
        meters = _meters(facts)
        assert meters.status is CheckStatus.WARN
        assert meters.data["moneySources"]["bills"] == (
            "totalDrop (LP 1C) + exceptions 47-4F + LP 48 (not verified)")

        with emulator.lock:
            now = time.monotonic()
            assert machine.insert_bill(now, 20)
            assert machine.cash_out(now) is not None
        await wait_for(printed, WAIT_S, "ticketPrinted in the outbox", interval=0.02)
        await wait_for(settled, WAIT_S, "the reads after the ticket done", interval=0.02)
        facts = await diag()
        assert facts.money_polls is not None
        assert (facts.money_polls["LP 20"], facts.money_polls["LP 48"],
                facts.money_polls["LP 3D"]) == ("ignored", "answered", "answered")
        meters = _meters(facts)
        assert meters.status is CheckStatus.OK, meters.detail
        assert meters.data["moneySources"]["ticketsOut"] == (
            "LP 3D records matched with cancelledCredits (LP 0F)")
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
        emulator.stop()
        master.close()
