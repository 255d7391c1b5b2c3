"""Every emulator profile (emulator/profiles.py: modern, legacy, legacy-std, rte, busy,
noisy) gets the two checks of issue 12:

- the money invariant with SIGKILLs: an agent process (line owner + pipeline + outbox, the
  money path of ``slot-agent run`` without the uplink; the crash soak carries the same
  money on to the hub) is killed with SIGKILL while seeded autoplay runs on the emulated
  machine; at the end every money sum in the outbox equals what the machine counted since
  the agent's first baseline, and no event is stored twice;
- the exception sweep: every code of the reference's exception table (§3.11,
  ``sas_protocol.codes.ExceptionCode``), raised on the emulated machine, yields its
  documented event (docs/events.md, "Exception codes") in the outbox.

Money a profile cannot meter is named, not skipped: a machine without a ticket-in meter
(the legacy polls carry none, docs/events.md "Tickets on a legacy machine") must report no
ticket-in amount, and the agent's ``diag`` money sources must say "not metered". On a machine
whose only bill meter is the drop, a bill whose exception died with a killed agent becomes a
``totalDrop`` alert (docs/events.md, "Bills on every meter profile"): there the bills plus
those alerts equal the bills the machine took.

Short runs in CI (two kills, one profile at a time); ``SLOT_AGENT_LONG=1`` runs 20 kills.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.derive.exceptions_map import (
    CONFIRMED_CODES,
    DOORS,
    EXCEPTION_EVENTS,
    OPERATOR_MENU,
    READ_TRIGGERED,
    Exc,
    code_text,
)
from agent.line.discovery import money_sources
from agent.store.outbox import Outbox
from api.events import StoredEvent
from drivers import tcp_listen
from emulator.autoplay import AutoPlayer, AutoplaySettings
from emulator.exceptions_queue import PendingException
from emulator.model import LifetimeTotals, Machine, MachineConfig
from emulator.profiles import PROFILES, link_options
from emulator.server import Emulator, LinkOptions
from sas_protocol.codes import IDLE_EXCEPTIONS, ExceptionCode
from sas_protocol.rte import (
    CardHeldEvent,
    GameRecallEvent,
    LegacyBonusEvent,
    RealTimeEvent,
    ReelStoppedEvent,
)
from tests.agent.e2e_helpers import ADDRESS, FAST_POLL, Rig
from tests.reliability.reliability_kit import LONG, long_or_short
from tests.support import ROOT
from tests.support.waits import wait_until

pytestmark = pytest.mark.timeout(600 if LONG else 120)

PROFILE_NAMES = tuple(PROFILES)
KILLS = long_or_short(20, 2)
#: events each agent run stores before it is killed (a random number up to this)
EVENTS_PER_RUN = long_or_short(60, 25)
#: The noisy line corrupts a share of all bytes: reads fail and are retried, so reaching
#: the totals takes longer there. Only the deadline is longer; the assertion is the same.
DEADLINE_S = {"noisy": 90.0}
SETTLE_S = 2.0  # the agent's ticket/drop settle time in these runs (default 10 s)

SETTINGS = AutoplaySettings(games_per_minute=60_000, jackpot_probability=0.01,
                            cashout_probability=0.04, door_probability=0.01,
                            tilt_probability=0.005, attendant_delay=0.0, door_open_for=0.0,
                            tilt_clears_after=0.0)


# -- money ---------------------------------------------------------------------------------


def _handpay_wins(events: list[StoredEvent]) -> int:
    """Wins paid by hand: the winPaid amounts of the jackpot meter (02)."""
    return sum(int(e.event.data["amount"]) for e in events
               if e.event.name == "winPaid" and "jackpot" in e.event.data.get("meters", {}))


#: money class -> (diag money source, the outbox's sum, the machine's lifetime total)
MONEY: dict[str, tuple[str, Callable[[list[StoredEvent]], int], Callable[[LifetimeTotals], int]]]
MONEY = {}


def _sum_of(name: str) -> Callable[[list[StoredEvent]], int]:
    def total(events: list[StoredEvent]) -> int:
        return sum(int(e.event.data["amount"]) for e in events
                   if e.event.name == name and e.event.data.get("metered", True))
    return total


MONEY.update({
    "betPlaced": ("bets", _sum_of("betPlaced"), lambda t: t.coin_in),
    "winPaid": ("wins", _sum_of("winPaid"), lambda t: t.coin_out + t.jackpot),
    "handpayWins": ("handpays", _handpay_wins, lambda t: t.jackpot),
    "billAccepted": ("bills", _sum_of("billAccepted"), lambda t: t.bills),
    "ticketRedeemed": ("ticketsIn", _sum_of("ticketRedeemed"), lambda t: t.ticket_in),
    "ticketPrinted": ("ticketsOut", _sum_of("ticketPrinted"), lambda t: t.ticket_out),
    "cashout": ("cashouts", _sum_of("cashout"), lambda t: t.cancelled_credits),
})


def _drop_alerts(events: list[StoredEvent]) -> int:
    return sum(int(e.event.data["amount"]) for e in events
               if e.event.name == "unexplainedMeterChange"
               and e.event.data["meter"] == "totalDrop")


def outbox_sums(events: list[StoredEvent], drop_only: bool) -> dict[str, int]:
    out = {name: total(events) for name, (_, total, _) in MONEY.items()}
    if drop_only:  # see the module docstring
        out["billAccepted"] += _drop_alerts(events)
    return out


def machine_sums(totals: LifetimeTotals) -> dict[str, int]:
    return {name: total(totals) for name, (_, _, total) in MONEY.items()}


def _start_agent(url: str, db: Path, rte: bool) -> subprocess.Popen[str]:
    code = ("from tests.agent.e2e_helpers import agent_main; "
            f"agent_main({url!r}, {str(db)!r}, rte={rte!r}, ticket_settle={SETTLE_S!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "running"
    return proc


def _stop(proc: subprocess.Popen[str] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def _stored(db: Path) -> list[StoredEvent]:
    if not db.exists():
        return []
    try:
        with Outbox.open_reader(db) as reader:
            return reader.pending(0, 1_000_000)
    except Exception:  # the file is being created
        return []


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_money_invariant_with_sigkills_on_every_profile(tmp_path: Path, profile: str) -> None:
    seed = 1 + PROFILE_NAMES.index(profile)
    rng = random.Random(seed)
    options = link_options(profile, LinkOptions(seed=seed))
    rte = options.rte
    ignored = options.unsupported_polls
    sources = money_sources(ignored)
    drop_only = sources["bills"].startswith("totalDrop")
    machine = Machine(MachineConfig(denomination_cents=5), now=time.monotonic(), seed=seed)
    player = AutoPlayer(machine, random.Random(seed), SETTINGS)
    emulator = Emulator(machine, None, address=ADDRESS, options=options)
    emulator.start()
    listener = tcp_listen("127.0.0.1", 0)
    host, port = listener.address
    url = f"tcp://{host}:{port}"
    db = tmp_path / "outbox.db"
    proc: subprocess.Popen[str] | None = None
    deadline = DEADLINE_S.get(profile, 30.0)

    def connect() -> subprocess.Popen[str]:
        started = _start_agent(url, db, rte)
        conn = wait_until(lambda: listener.accept(time.monotonic() + 0.2), deadline,
                          "the agent to connect")
        emulator.attach(conn)
        return started

    def last_seq() -> int:
        stored = _stored(db)
        return stored[-1].seq if stored else 0

    def reported(number: int) -> bool:
        # LP 4D gives all 16 digits, LP 3D the low 8 (reference §3.9b)
        return any(e.event.name == "ticketPrinted"
                   and str(number).endswith(e.event.data.get("validationNumber") or "-")
                   for e in _stored(db))

    try:
        for kill in range(KILLS):
            proc = connect()
            if kill == 0:
                # money counts from the first baseline on: nothing is played before it
                wait_until(lambda: any(e.event.name == "meterSnapshot" for e in _stored(db)),
                           deadline, "the first meter snapshot")
                with emulator.lock:
                    before = machine_sums(machine.totals())
                    # every money class for sure: a bill, a ticket in, a jackpot handpay (the
                    # player's attendant keys it off at the next decision)
                    now = time.monotonic()
                    machine.insert_bill(now, 20)
                    machine.insert_ticket(now, 500)
                    machine.play_game(now, bet=1, win=machine.config.handpay_limit_cents
                                      // machine.denomination_cents)
            target = last_seq() + rng.randint(10, EVENTS_PER_RUN)
            while last_seq() < target:  # play until the agent stored some more events
                with emulator.lock:
                    tickets = len(machine.tickets)
                    player.tick(time.monotonic())
                    printed = machine.tickets[tickets:]
                polls = emulator.stats.polls
                wait_until(lambda p=polls, a=proc: emulator.stats.polls >= p + 2
                           or a.poll() is not None, deadline, "the agent to poll")
                for ticket in printed:  # the player takes the ticket and walks away
                    wait_until(lambda t=ticket: reported(t.validation_number), deadline,
                               f"ticket {ticket.validation_number} to be reported")
            proc.send_signal(signal.SIGKILL)  # the crash: no clean stop, no flush
            _stop(proc, signal.SIGKILL)
            assert proc.returncode == -signal.SIGKILL
        with emulator.lock:  # a ticket out for sure, printed while no agent runs
            machine.cash_out(time.monotonic())
        proc = connect()  # the last agent catches up with everything played
        with emulator.lock:
            after = machine_sums(machine.totals())
            games = machine.totals().games_played
        assert games > 5, games
        want = {name: after[name] - before[name] for name in after}
        for name, (source, _, _) in MONEY.items():
            if sources[source] == "not metered":
                want[name] = 0  # no amount is invented for money no meter shows
        wait_until(lambda: outbox_sums(_stored(db), drop_only) == want, deadline,
                   lambda: f"{profile}: outbox sums {outbox_sums(_stored(db), drop_only)} == "
                           f"machine totals {want} (sources {sources})")
        events = _stored(db)
        ids = [e.id for e in events]
        assert len(ids) == len(set(ids))
        assert [e.seq for e in events] == sorted(e.seq for e in events)
        assert all(want[name] > 0 for name, (source, _, _) in MONEY.items()
                   if sources[source] != "not metered"), want
        print(f"{profile}: {KILLS} kills, {games} games, money {want}, "
              f"emulator {emulator.stats}")
    finally:
        _stop(proc)
        emulator.stop()
        transport = emulator.detach()
        if transport is not None:
            transport.close()
        listener.close()


# -- the exception sweep -----------------------------------------------------------------

#: RTE data of the codes whose RTE frame has data (sas_protocol.rte); game start/end/select
#: and bills are raised by real play below instead (their frames carry live meters).
_RTE_SAMPLES: dict[int, RealTimeEvent] = {
    0x7C: LegacyBonusEvent(multiplier=1, multiplied_win=0, tax_status=0, bonus_amount=0),
    0x88: ReelStoppedEvent(reel=1, physical_stop=4),
    0x8A: GameRecallEvent(game_number=1, recall_index=1),
    0x8B: CardHeldEvent(card_number=3, held=True),
}
#: events whose data name the code they came from
_CODED = {"tilt", "billAcceptorFault", "printerFault", "memoryError", "progressiveHit",
          "dataGap", "machineException"}
#: codes raised by what the machine really does (their events come from the reads they
#: trigger, or their RTE frames carry meters): see ``_by_play``
_PLAYED = {Exc.GAME_STARTED, Exc.GAME_ENDED, Exc.GAME_SELECTED, Exc.SOFT_METERS_RESET}
#: raised bare: their events come from the exception itself (or a re-identification)
BARE = sorted(int(c) for c in ExceptionCode
              if c not in IDLE_EXCEPTIONS and c not in _PLAYED
              and (c not in READ_TRIGGERED or c in (Exc.OPTIONS_CHANGED, Exc.GAMES_CHANGED)))


def signature(code: int) -> tuple[Any, ...]:
    """What identifies the event of ``code`` in the outbox."""
    if code in DOORS:
        door, opened, power_off = DOORS[code]
        return ("doorOpened" if opened else "doorClosed", door, power_off)
    if code in OPERATOR_MENU:
        return ("operatorMenu", *OPERATOR_MENU[code])
    name = EXCEPTION_EVENTS[code][0]
    return (name, code_text(code)) if name in _CODED else (name,)


def event_signature(e: StoredEvent) -> tuple[Any, ...]:
    data = e.event.data
    if e.event.name in ("doorOpened", "doorClosed"):
        return (e.event.name, data["door"], data["powerOff"])
    if e.event.name == "operatorMenu":
        return ("operatorMenu", data["menu"], data["state"])
    if e.event.name in _CODED:
        return (e.event.name, data["code"])
    return (e.event.name,)


def _pending(code: int) -> PendingException:
    sample = _RTE_SAMPLES.get(code)
    return PendingException(code, code, sample.data() if sample is not None else b"")


#: The sweep's line polls 3 ms after the last byte (was FAST_POLL's 10 ms): the sweep waits
#: for events, so the line's pace is its pace. The reply window stays FAST_POLL's 60 ms (a
#: 120 ms one did not stop the noisy sweep's rare loss of a code with no noise ACK; the
#: failure message names the link-downs and poll results to find its path).
SWEEP_POLL = replace(FAST_POLL, interval_ms=3)


@pytest.fixture(params=PROFILE_NAMES)
def profile_rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    options = link_options(request.param, LinkOptions(seed=7))
    rig = Rig(tmp_path, link=options, rte=options.rte, poll=SWEEP_POLL)
    try:
        rig.wait_ready()
        yield rig
    finally:
        rig.close()


def test_every_reference_code_yields_its_event_on_every_profile(profile_rig: Rig) -> None:
    """Raised codes must all come out. The losses allowed are the machine's own, to line
    noise no host can see: a byte of the host's implied NACK flipped into a poll to another
    address is an implied ACK to the machine (SAS §3.5), which then drops the exception
    unread (``stats.noise_acknowledged``); and the exception's answer to a general poll is
    one byte with no CRC (SAS §3.4): flipped into 00 or into a code the host does not
    confirm (docs/sas.md, "Confirming exception bytes"), it is taken as that, and the next
    poll acknowledges the real one (``stats.noise_misread``; 1 sweep in 10 or so lost one).
    The emulator names both, and only those are raised again; any other missing event fails
    the test."""
    rig = profile_rig
    profile = rig.emulator.options.profile
    deadline = DEADLINE_S.get(profile, 30.0)
    start = rig.events()[-1].seq
    seen: Counter[tuple[Any, ...]] = Counter()
    want: Counter[tuple[Any, ...]] = Counter()
    codes_of: dict[tuple[Any, ...], set[int]] = {}
    raised_again: list[int] = []
    noise_lost: Counter[int] = Counter()
    last = [start]

    def arrived() -> bool:
        # only the events stored since the last look: re-reading the whole outbox every
        # 50 ms held the GIL that the emulator's and the line's threads need
        new = rig.outbox.pending(last[0], 1_000_000)
        if new:
            last[0] = new[-1].seq
        seen.update(event_signature(e) for e in new)
        return not want - seen

    def expect(codes: set[int], *events: tuple[Any, ...]) -> None:
        want.update(events)
        for event in events:
            codes_of.setdefault(event, set()).update(codes)

    def raise_lost() -> None:
        """Raise again the codes of missing events that the machine dropped to noise."""
        with rig.act() as (m, now):
            if m.next_exception(now) is not None:
                return  # still queued: not lost yet
            stats = rig.emulator.stats
            noise_lost.update(stats.noise_acknowledged)
            # a misread is the machine's loss only where the host may take the byte as it
            # came: 00, or a code it does not confirm (a code it should have confirmed, taken
            # unconfirmed, stays missing: the host's defect)
            noise_lost.update(code for code, read_as in stats.noise_misread
                              if read_as == 0 or read_as not in CONFIRMED_CODES)
            stats.noise_acknowledged.clear()
            stats.noise_misread.clear()
            for event in want - seen:
                lost = [c for c in codes_of.get(event, ()) if noise_lost[c] > 0]
                if lost:
                    noise_lost[lost[0]] -= 1
                    raised_again.append(lost[0])
                    m.queue.push(_pending(lost[0]), now)

    def wait(what: str) -> None:
        def done() -> bool:
            if arrived():
                return True
            raise_lost()
            return False

        wait_until(done, deadline, lambda: (
            f"{profile}: {what}: missing {dict(want - seen)}; the machine's noise ACKs: "
            f"{rig.emulator.stats.noise_acknowledged}, misread: "
            f"{rig.emulator.stats.noise_misread}, raised again: {raised_again}; "
            f"link downs since the start: {seen[('machineLinkDown',)]}; the line's polls: "
            f"{rig.line.status()['machines'][str(ADDRESS)].get('polls')}"),
            interval=0.05)

    # 1. bare codes, in batches the machine's queue holds (25 entries, SAS §2.2.1)
    for first in range(0, len(BARE), 20):
        batch = BARE[first:first + 20]
        with rig.act() as (m, now):
            for code in batch:
                m.queue.push(_pending(code), now)
        for code in batch:
            expect({code}, signature(code))
        wait(f"codes {[f'{c:02X}' for c in batch]}")

    # 2. codes raised by play: each with the event its read yields (on a profile that
    # cannot meter a class, its code yields no amount: docs/events.md, "Tickets on a legacy
    # machine"; the codes are still raised and their reads made)
    raised = set(BARE)
    metered = _metered(rig)

    def played(codes: set[int], action: Callable[[Machine, float], object],
               *events: tuple[Any, ...]) -> None:
        with rig.act() as (m, now):
            action(m, now)
        raised.update(codes)
        expect(codes, *events)
        wait(f"codes {sorted(f'{c:02X}' for c in codes)}")

    for dollars, code in ((1, 0x47), (5, 0x48), (10, 0x49), (20, 0x4A), (50, 0x4B),
                          (100, 0x4C), (2, 0x4D), (500, 0x4E), (200, 0x50), (25, 0x4F)):
        played({code}, lambda m, now, d=dollars: m.insert_bill(now, d), ("billAccepted",))
    played({0x7E, 0x7F}, lambda m, now: m.play_game(now, bet=2, win=3),
           ("gameStarted",), ("gameEnded",), ("betPlaced",), ("winPaid",))
    played({0x8C}, lambda m, now: m.select_game(now, 2), ("gameSelected",))
    played({0x68}, lambda m, now: m.insert_ticket(now, 500),
           *([("ticketRedeemed",)] if "ticketRedeemed" in metered else []))
    played({0x69}, lambda m, now: (m.aft_in(now, 1000), m.aft_out(now, 1000)),
           *([("transferIn",), ("transferOut",)] if "transferIn" in metered else []))
    played({0x51}, lambda m, now: m.play_game(
        now, bet=1, win=m.config.handpay_limit_cents // m.denomination_cents),
        ("gameStarted",), ("gameEnded",), ("handpayPending",))
    played({0x52}, lambda m, now: m.reset_handpay(now), ("handpayReset",), ("winPaid",))
    played({0x66, 0x3D}, lambda m, now: m.cash_out(now), ("cashout",), ("ticketPrinted",))
    played({0x7A}, lambda m, now: m.reset_soft_meters(now), ("metersReset",))
    # every code of the table was raised but 3E (handpay validated): the emulator prints no
    # handpay receipt; its LP 4D record is walked in tests/agent/test_exception_codes.py
    defined = {int(c) for c in ExceptionCode} - {int(c) for c in IDLE_EXCEPTIONS}
    assert defined - raised == {0x3E}
    print(f"{profile}: {len(raised)} codes, raised again after a noise ACK or misread: "
          f"{[f'{c:02X}' for c in raised_again]}")


def _metered(rig: Rig) -> set[str]:
    """Money events this profile's meters can give (docs/operations.md, diag)."""
    sources = money_sources(rig.emulator.options.unsupported_polls)
    names = {"ticketsIn": "ticketRedeemed", "transfers": "transferIn"}
    return {event for source, event in names.items() if sources[source] != "not metered"}
