"""The pure poll planner: meter stepdown, discovery steps, read merging, command priority."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent.config import PollConfig
from agent.line.commands import CommandKind, CommandResult, MachineCommand
from agent.line.meter_reads import (
    FULL_SNAPSHOT_CODES,
    LEGACY_CODES,
    STAND_INS,
    MeterRead,
    legacy_poll_for,
)
from agent.line.schedule import MachineSchedule
from agent.observations import ClockRead, HostLockChanged, MachineIdentified, MetersRead
from agent.reads import GAME_END_METERS, ReadHandpay, ReadIdentity, ReadMeters
from sas_protocol.messages.meters import MeterReply, MeterValue
from sas_protocol.messages.requests import (
    DateTimeRequest,
    ExtendedMetersRequest,
    GeneralPoll,
    HandpayInfoRequest,
    LockRequest,
    MetersRequest,
    RealTimeReportingRequest,
    Request,
    SasVersionRequest,
    SelectedMetersRequest,
    SetDateTimeRequest,
)
from sas_protocol.messages.responses import (
    Ack,
    DateTimeReply,
    EnabledGamesReply,
    GameCountReply,
    MachineInfoReply,
    SasVersionReply,
)

POLL = PollConfig(interval_ms=200, reply_timeout_ms=50, snapshot_interval_s=60.0,
                  clock_sync=True, clock_max_skew_s=30.0)


def answer_meters(poll: Request, values: dict[int, int]) -> MeterReply:
    """What a machine keeping ``values`` answers to a meter poll."""
    if isinstance(poll, ExtendedMetersRequest):
        have = tuple(MeterValue(c, values[c], 5) for c in poll.codes if c in values)
        lack = tuple(c for c in poll.codes if c not in values)
        return MeterReply(poll.command, poll.game, have, (), lack)
    if isinstance(poll, SelectedMetersRequest):
        return MeterReply(0x2F, poll.game,
                          tuple(MeterValue(c, values[c], 4) for c in poll.codes if c in values))
    assert isinstance(poll, MetersRequest)
    return MeterReply(poll.poll, 0, tuple(MeterValue(c, values.get(c, 0), 4)
                                          for c in sorted(LEGACY_CODES[poll.poll])))


def run_read(read: MeterRead, ignored: set[int], values: dict[int, int]) -> list[Request]:
    sent: list[Request] = []
    while (poll := read.next_poll(ignored)) is not None:
        sent.append(poll)
        assert len(sent) < 200
        if poll.command in ignored or (poll.command == 0xAF and 0x6F in ignored):
            ignored.add(poll.command)
            read.unsupported()
        else:
            read.reply(answer_meters(poll, values))
    return sent


def test_extended_meters_alternate_6f_and_af_in_chunks_of_twelve() -> None:
    values = dict.fromkeys(range(0x00, 0x20), 7)
    sent = run_read(MeterRead(range(0x00, 0x20)), set(), values)
    assert [p.command for p in sent] == [0x6F, 0xAF, 0x6F]
    assert all(isinstance(p, ExtendedMetersRequest) and len(p.codes) <= 12 for p in sent)


def test_a_read_that_finds_6f_and_2f_ignored_steps_down_to_the_bill_dollars_too() -> None:
    """At discovery nothing is known ignored yet. The bill dollars (LP 20, a stand-in code
    beyond the meter table) are not read on a machine that answers 6F or 2F (it counts bills
    by its table), but a read that finds both ignored (SAS §3.5) steps down to the legacy
    polls for them as for the rest: they were dropped before 6F had even been asked, so a
    machine whose only bill meter is LP 20 had no bill-dollar baseline until its first
    bill."""
    bills = STAND_INS["total_bill_dollars"]
    values = {0x00: 100, 0x01: 50, 0x0C: 3, bills: 20}
    for machine_ignores, sends_20 in (({0x6F, 0xAF, 0x2F}, True), (set(), False),
                                       ({0x6F, 0xAF}, False)):
        known: set[int] = set()
        read = MeterRead((0x00, 0x01, 0x0C, bills))
        sent = []
        while (poll := read.next_poll(known)) is not None:
            sent.append(poll.command)
            assert len(sent) < 20
            if poll.command in machine_ignores:
                known.add(poll.command)
                read.unsupported()
            else:
                read.reply(answer_meters(poll, values))
        assert (0x20 in sent) is sends_20, (machine_ignores, sent)
        assert (bills in read.meters) is sends_20
        assert (bills in read.unreadable) is not sends_20


def test_stepdown_to_2f_then_legacy() -> None:
    values = {0x00: 100, 0x01: 50, 0x04: 9, 0x0C: 3, 0x0B: 20}
    ignored = {0x6F, 0xAF}
    read = MeterRead((0x00, 0x01, 0x04, 0x0C, 0x0B))
    sent = run_read(read, ignored, values)
    assert {p.command for p in sent} == {0x2F}
    assert read.meters == values

    ignored = {0x6F, 0xAF, 0x2F}
    read = MeterRead((0x00, 0x01, 0x04, 0x0C, 0x0B))
    sent = run_read(read, ignored, values)
    assert all(isinstance(p, MetersRequest) for p in sent)
    assert sent[0].command == 0x0F  # carries 04 as well as 00/01
    assert read.meters[0x00] == 100 and read.meters[0x0C] == 3
    assert read.meters[0x0B] == 20  # LP 46, the bill meter poll (reference §3.9b)
    assert 0x46 in {p.command for p in sent}

    ignored |= {0x46}  # an old machine without the bill meter polls
    read = MeterRead((0x00, 0x01, 0x04, 0x0C, 0x0B))
    run_read(read, ignored, values)
    assert read.unreadable == {0x0B}  # no poll it answers carries the bills meter


def test_a_machine_ignoring_6f_steps_down_after_learning_it() -> None:
    values = {0x00: 1, 0x01: 2}
    ignored: set[int] = set()
    read = MeterRead((0x00, 0x01))
    first = read.next_poll(ignored)
    assert first is not None and first.command == 0x6F
    ignored.add(0x6F)  # NotSupported
    read.unsupported()
    second = read.next_poll(ignored)
    assert isinstance(second, SelectedMetersRequest)
    read.reply(answer_meters(second, values))
    assert read.next_poll(ignored) is None and read.meters == values


@given(
    wanted=st.lists(st.sampled_from(FULL_SNAPSHOT_CODES), min_size=1, max_size=40),
    ignored=st.sets(st.sampled_from([0x6F, 0xAF, 0x2F, 0x0F, 0x1C, 0x19, 0x11, 0x1A])),
    kept=st.sets(st.sampled_from(FULL_SNAPSHOT_CODES)),
)
def test_every_wanted_meter_is_read_or_known_unreadable(
        wanted: list[int], ignored: set[int], kept: set[int]) -> None:
    values = {c: c * 3 for c in kept}
    read = MeterRead(wanted)
    run_read(read, set(ignored), values)
    assert read.done
    for code in set(wanted):
        assert code in read.meters or code in read.unreadable or code in read.lacking
        if code in read.meters and code in values:
            assert read.meters[code] == values[code]


def test_legacy_poll_choice_skips_ignored_polls() -> None:
    assert legacy_poll_for({0x00, 0x01, 0x05, 0x06}, set()) == 0x1C
    assert legacy_poll_for({0x00, 0x01, 0x05, 0x06}, {0x1C}) in (0x0F, 0x19)
    assert legacy_poll_for({0x0B}, set()) == 0x46
    assert legacy_poll_for({0x0B}, {0x46}) is None


# -- MachineSchedule ----------------------------------------------------------------------


def drive(s: MachineSchedule[Any], replies: dict[int, object], at: float = 1_000.0,
          limit: int = 100) -> tuple[list[Request], list[object]]:
    """Run the schedule's long polls; ``replies`` maps a command byte to its reply (an
    absent command is NotSupported)."""
    sent: list[Request] = []
    produced: list[object] = []
    for _ in range(limit):
        poll, out = s.next_long_poll(at)
        produced += [*out.observations, *out.commands]
        if poll is None:
            return sent, produced
        sent.append(poll)
        if isinstance(poll, (ExtendedMetersRequest, SelectedMetersRequest, MetersRequest)):
            produced += s.replied(answer_meters(poll, {0x00: 10, 0x01: 4}), at)
        elif poll.command in replies:
            produced += s.replied(replies[poll.command], at)  # type: ignore[arg-type]
        else:
            produced += s.not_supported(at)
            produced += s.general_poll_done(True, at)  # the machine is there: confirmed
    raise AssertionError("schedule never went idle")


IDENTITY: dict[int, object] = {
    0x54: SasVersionReply("602", "SN1"),
    0x1F: MachineInfoReply("AB", "001", 0x02, 5, 0, 0, "PT0001", "9500"),
    0x51: GameCountReply(2),
    0x56: EnabledGamesReply((1, 2)),
    0x0E: Ack(),
    0x7F: Ack(),
}


def test_discovery_identifies_reads_the_clock_and_takes_a_snapshot() -> None:
    s: MachineSchedule[Any] = MachineSchedule(1, rte=True, poll=POLL)
    s.on_link_up(1_000.0)
    skewed = DateTimeReply(1, 1, 2020, 0, 0, 0)
    sent, produced = drive(s, {**IDENTITY, 0x7E: skewed})
    commands = [p.command for p in sent]
    assert commands[:3] == [0x0E, 0x54, 0x1F]
    assert isinstance(sent[0], RealTimeReportingRequest) and sent[0].enable
    # per enabled game, until the machine shows it ignores them (then never again)
    assert commands.count(0x53) == 1 and commands.count(0xB5) == 1
    assert 0x7E in commands and 0x7F in commands  # skew > 30 s and clock_sync on
    identified = [o for o in produced if isinstance(o, MachineIdentified)]
    assert identified[0].denomination_cents == 5 and identified[0].serial_number == "SN1"
    assert identified[0].games == 2
    assert set(identified[0].unsupported_polls) >= {0x55}  # not answered above
    assert [o for o in produced if isinstance(o, ClockRead)]
    snapshot = [o for o in produced if isinstance(o, MetersRead)]
    assert snapshot and snapshot[0].reason == "discovery" and snapshot[0].meters[0x00] == 10
    # what was ignored is remembered: the next discovery does not ask again
    s.on_link_up(2_000.0)
    again, _ = drive(s, {**IDENTITY, 0x7E: skewed})
    assert 0x55 not in [p.command for p in again]


def test_pending_reads_merge_and_a_full_read_wins() -> None:
    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    drive(s, IDENTITY)
    s.request(ReadMeters(1, "game_start", (0x00,)))
    s.request(ReadMeters(1, "game_end", GAME_END_METERS))
    s.request(ReadHandpay(1))
    s.request(ReadHandpay(1))
    _, produced = drive(s, {0x1B: Ack()})
    reads = [o for o in produced if isinstance(o, MetersRead)]
    assert len(reads) == 1 and reads[0].reason == "game_start"
    s.request(ReadMeters(1, "bill", (0x0B,)))
    s.request(ReadMeters(1, "gap"))
    _, produced = drive(s, {})
    reads = [o for o in produced if isinstance(o, MetersRead)]
    assert [r.reason for r in reads] == ["gap"]


def test_reads_while_the_link_is_down_are_dropped() -> None:
    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=POLL)
    s.request(ReadIdentity(1))
    assert s.next_long_poll(0.0)[0] is None and s.idle


def test_commands_go_ahead_of_routine_jobs() -> None:
    s: MachineSchedule[str] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    first, _ = s.next_long_poll(0.0)
    assert first == RealTimeReportingRequest(False)  # RTE as configured: off
    s.command(MachineCommand(CommandKind.LOCK, 1, "a-1"), "handle-1")
    s.replied(Ack(), 0.0)
    poll, _ = s.next_long_poll(0.0)
    assert isinstance(poll, LockRequest)
    produced = s.replied(Ack(), 0.0)
    poll, out = s.next_long_poll(0.0)
    assert isinstance(poll, SasVersionRequest)  # discovery resumes where it paused
    assert out.commands == [("handle-1", CommandResult(True, None, {}))]
    locks = [o for o in produced + out.observations if isinstance(o, HostLockChanged)]
    assert locks and locks[0].locked and locks[0].action_id == "a-1"


def test_a_cancelled_command_is_never_sent() -> None:
    s: MachineSchedule[str] = MachineSchedule(1, rte=False, poll=POLL,
                                              start_command=lambda handle: handle != "stale")
    s.on_link_up(0.0)
    s.command(MachineCommand(CommandKind.LOCK, 1), "stale")
    poll, out = s.next_long_poll(0.0)
    assert isinstance(poll, RealTimeReportingRequest) and out.commands == []


def test_link_down_fails_waiting_commands() -> None:
    s: MachineSchedule[str] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    s.command(MachineCommand(CommandKind.SOUND_OFF, 1), "h")
    s.next_long_poll(0.0)
    failed = s.on_link_down()
    assert failed == [("h", CommandResult(False, "the machine link is down"))]
    assert s.idle


def test_command_failures_and_results() -> None:
    s: MachineSchedule[str] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    s.command(MachineCommand(CommandKind.SYNC_CLOCK, 1), "clock")
    s.command(MachineCommand(CommandKind.HANDPAY_RESET, 1), "hp")
    poll, _ = s.next_long_poll(0.0)
    assert isinstance(poll, SetDateTimeRequest)
    s.failed("timeout", 0.0)
    poll, out = s.next_long_poll(0.0)
    assert out.commands == [("clock", CommandResult(False, "LP 7F failed: timeout"))]
    assert poll is not None and poll.command == 0xA8
    s.not_supported(0.0)  # A8 is optional: 94 follows
    s.general_poll_done(True, 0.0)
    poll, _ = s.next_long_poll(0.0)
    assert poll is not None and poll.command == 0x94
    from sas_protocol.messages.responses import HandpayResetReply

    s.replied(HandpayResetReply(0x02), 0.0)
    _, out = s.next_long_poll(0.0)
    assert out.commands == [("hp", CommandResult(False, "no handpay is pending"))]


def test_snapshot_timer() -> None:
    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    drive(s, IDENTITY, at=1.0)
    assert s.next_long_poll(30.0)[0] is None
    sent, produced = drive(s, {}, at=61.0)
    assert [o.reason for o in produced if isinstance(o, MetersRead)] == ["snapshot"]
    assert isinstance(sent[0], ExtendedMetersRequest)


def test_handpay_read_converts_credits_with_the_denomination() -> None:
    from agent.observations import HandpayInfoRead
    from sas_protocol.messages.responses import HandpayInfoReply

    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    drive(s, IDENTITY)  # denomination 5 cents
    s.request(ReadHandpay(1))
    sent, produced = drive(s, {0x1B: HandpayInfoReply(0, 0x40, 300, 0, 0)})
    assert isinstance(sent[0], HandpayInfoRequest)
    reads = [o for o in produced if isinstance(o, HandpayInfoRead)]
    assert reads[0].amount_cents == 1500


def test_general_poll_is_never_planned_as_a_long_poll() -> None:
    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    sent, _ = drive(s, {**IDENTITY, 0x7E: DateTimeReply(1, 1, 2020, 0, 0, 0)})
    assert not any(isinstance(p, GeneralPoll) for p in sent)
    assert DateTimeRequest() in sent


def test_per_game_details_are_asked_for_every_enabled_game() -> None:
    from sas_protocol.messages.responses import ExtendedGameInfoReply, GameConfigurationReply

    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    details = {0x53: GameConfigurationReply(1, "AB", "001", 0x02, 5, 0, 0, "PT0001", "9500"),
               0xB5: ExtendedGameInfoReply(1, 5, 0, 0, "Lucky", "PT0001", 0)}
    sent, produced = drive(s, {**IDENTITY, **details})
    commands = [p.command for p in sent]
    assert commands.count(0x53) == 2 and commands.count(0xB5) == 2
    identified = next(o for o in produced if isinstance(o, MachineIdentified))
    assert identified.info["gameDetails"]["1"]["name"] == "Lucky"


def test_silence_during_a_cut_is_not_taken_for_an_unsupported_poll() -> None:
    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    first, _ = s.next_long_poll(0.0)
    assert first is not None
    s.not_supported(0.0)
    assert s.next_long_poll(0.0)[0] is None  # waits for the general poll's verdict
    s.general_poll_done(False, 0.0)  # the general poll failed too: the line is cut
    assert first.command not in s.memory.ignored
    again, _ = s.next_long_poll(0.0)
    assert again is not None and again.command != first.command  # that poll gave up, next


def test_a_poll_taken_for_unsupported_is_probed_again_at_the_timer_snapshot() -> None:
    """On a noisy line a supported LP 6F can meet silence on every send; remembered for
    good, the meters only 6F/2F carry would never be read again."""
    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    drive(s, IDENTITY, at=1.0)
    s.memory.ignored.add(0x6F)  # as if noise had silenced three sends in a row
    s.request(ReadMeters(1, "game_end", GAME_END_METERS))
    sent, _ = drive(s, {}, at=2.0)
    assert 0x6F not in [p.command for p in sent]  # skipped while remembered
    sent, produced = drive(s, {}, at=61.0)  # the timer snapshot
    assert isinstance(sent[0], ExtendedMetersRequest)
    assert 0x6F not in s.memory.ignored
    assert [o.reason for o in produced if isinstance(o, MetersRead)] == ["snapshot"]


def test_a_failed_read_is_retried_after_a_growing_wait_until_it_succeeds() -> None:
    from agent.observations import TicketValidationRead
    from agent.reads import ReadTicket
    from sas_protocol.messages.responses import EnhancedValidationReply

    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    drive(s, IDENTITY)
    s.request(ReadMeters(1, "game_end", GAME_END_METERS))
    first, _ = s.next_long_poll(10.0)
    assert isinstance(first, ExtendedMetersRequest)
    at = 10.0
    for wait in (0.25, 0.5, 1.0, 1.5, 1.5):  # tenacity's doubling, capped (agent.reads)
        assert s.failed("crc", at) == []
        assert s.next_long_poll(at + wait - 0.01)[0] is None  # general polls go on meanwhile
        again, _ = s.next_long_poll(at + wait)
        assert again == first  # the same poll, not given up
        at += wait
    assert s.replied(answer_meters(first, {0x00: 10, 0x01: 4}), at) == []
    poll, out = s.next_long_poll(at)
    [read] = [o for o in out.observations if isinstance(o, MetersRead)]
    assert read.reason == "game_end" and read.meters[0x00] == 10 and poll is None
    # LP 4D too: a ticket's validation record is money
    s.memory.ignored.discard(0x4D)  # (discovery's LP 4D met silence in drive())
    s.request(ReadTicket(1))
    ticket, _ = s.next_long_poll(at)
    assert ticket is not None and ticket.command == 0x4D
    s.failed("timeout", at)
    assert s.next_long_poll(at + 0.25)[0] == ticket
    s.replied(EnhancedValidationReply(0x00, 0, 12062026, 120000, 1234, 500, 7, 0, 0, 0), at + 0.3)
    _, out = s.next_long_poll(at + 0.3)
    assert [type(o) for o in out.observations] == [TicketValidationRead]


def test_link_down_drops_a_read_waiting_for_its_retry() -> None:
    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    drive(s, IDENTITY)
    s.request(ReadMeters(1, "game_end", GAME_END_METERS))
    s.next_long_poll(1.0)
    s.failed("timeout", 1.0)
    s.on_link_down()
    assert s.idle and s.next_long_poll(100.0)[0] is None


def test_ticket_read_steps_down_to_lp_3d_where_lp_4d_is_ignored() -> None:
    """Reference §3.9b: standard validation answers LP 3D, not LP 4D. Discovery's ticket read
    learns that 4D is ignored; the next read after a 3D exception goes straight to LP 3D."""
    from agent.observations import TicketValidationRead
    from agent.reads import ReadTicket
    from sas_protocol.messages.ticket_info import CashoutTicketReply

    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    replies = {**IDENTITY, 0x3D: CashoutTicketReply(12_345_678, 10_150)}
    sent, produced = drive(s, replies)
    commands = [p.command for p in sent]
    assert commands.index(0x4D) + 1 == commands.index(0x3D)
    (record,) = [o for o in produced if isinstance(o, TicketValidationRead)]
    assert (record.poll, record.validation_number, record.amount_cents, record.validation_type,
            record.ticket_number) == ("LP 3D", "12345678", 10_150, 0x00, None)
    assert 0x4D in s.memory.ignored
    s.request(ReadTicket(1))
    again, produced = drive(s, replies)
    assert [p.command for p in again] == [0x3D]
    assert [type(o) for o in produced] == [TicketValidationRead]


def test_lp_3d_is_not_sent_where_lp_4d_answers() -> None:
    from agent.reads import ReadTicket
    from sas_protocol.messages.responses import EnhancedValidationReply

    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    replies = {**IDENTITY,
               0x4D: EnhancedValidationReply(0x00, 0, 12062026, 120000, 1234, 500, 7, 0, 0, 0)}
    drive(s, replies)
    s.request(ReadTicket(1))
    sent, _ = drive(s, replies)
    assert [p.command for p in sent] == [0x4D]


def test_lp_48_goes_ahead_of_the_bill_meter_read_and_is_remembered_when_ignored() -> None:
    from agent.observations import LastBillRead
    from agent.reads import BILL_METERS, ReadLastBill
    from sas_protocol.messages.responses import LastBillReply

    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    drive(s, IDENTITY)
    s.request(ReadMeters(1, "bill", (*BILL_METERS, 0x00)))
    s.request(ReadLastBill(1))
    s.request(ReadLastBill(1))  # a second bill before the read: one LP 48
    sent, produced = drive(s, {**IDENTITY, 0x48: LastBillReply(0x00, 0x04, 31)})
    assert sent[0].command == 0x48 and [p.command for p in sent].count(0x48) == 1
    (bill,) = [o for o in produced if isinstance(o, LastBillRead)]
    assert (bill.denomination_code, bill.bill_count) == (0x04, 31)
    assert isinstance(sent[1], ExtendedMetersRequest)  # then the bill meters
    s.request(ReadLastBill(1))
    drive(s, IDENTITY)  # not answered: remembered as ignored
    s.request(ReadLastBill(1))
    assert drive(s, IDENTITY)[0] == []


# -- game lock: LP 74 after 6F, read again while locked (SAS §3.11) ----------------------


def _lock_reply(status: int) -> object:
    from sas_protocol.messages.responses import AftLockStatusReply

    return AftLockStatusReply(1, status, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def _lock_reads(produced: list[object]) -> list[int]:
    from agent.observations import GameLockRead

    return [o.lock_status for o in produced if isinstance(o, GameLockRead)]


def test_a_game_lock_is_read_again_until_it_reads_not_locked() -> None:
    from agent.reads import ReadGameLock
    from sas_protocol.messages.requests import AftLockStatusRequest

    poll = PollConfig(interval_ms=200, reply_timeout_ms=50, snapshot_interval_s=600.0,
                      game_lock_recheck_s=5.0)
    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=poll)
    s.on_link_up(0.0)
    drive(s, IDENTITY, at=1.0)
    s.request(ReadGameLock(1))
    sent, produced = drive(s, {0x74: _lock_reply(0x00)}, at=2.0)
    assert sent == [AftLockStatusRequest(0xFF, 0, 0)]  # interrogate only, never a lock
    assert _lock_reads(produced) == [0x00]
    assert s.next_long_poll(6.9)[0] is None  # not before the recheck interval
    sent, produced = drive(s, {0x74: _lock_reply(0x40)}, at=7.0)  # pending: still watched
    assert [p.command for p in sent] == [0x74] and _lock_reads(produced) == [0x40]
    sent, produced = drive(s, {0x74: _lock_reply(0xFF)}, at=12.0)
    assert [p.command for p in sent] == [0x74] and _lock_reads(produced) == [0xFF]
    assert drive(s, {0x74: _lock_reply(0xFF)}, at=100.0)[0] == []  # not locked: not watched


def test_a_machine_ignoring_lp_74_is_remembered_and_not_watched() -> None:
    from agent.reads import ReadGameLock

    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    drive(s, IDENTITY, at=1.0)
    s.request(ReadGameLock(1))
    sent, produced = drive(s, {}, at=2.0)  # silence to LP 74, the general poll answered
    assert [p.command for p in sent] == [0x74] and _lock_reads(produced) == []
    assert 0x74 in s.memory.ignored and s.memory.game_lock_recheck_at is None
    s.request(ReadGameLock(1))  # the next 6F: not asked again
    assert drive(s, {}, at=3.0)[0] == []


def test_a_link_up_stops_watching_a_game_lock() -> None:
    """The interpreter asks again at link-up when it knows a lock (its state persists)."""
    from agent.reads import ReadGameLock

    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=POLL)
    s.on_link_up(0.0)
    drive(s, IDENTITY, at=1.0)
    s.request(ReadGameLock(1))
    drive(s, {0x74: _lock_reply(0x00)}, at=2.0)
    assert s.memory.game_lock_recheck_at is not None
    s.on_link_down()
    s.on_link_up(3.0)
    assert s.memory.game_lock_recheck_at is None
    sent, _ = drive(s, IDENTITY, at=30.0)
    assert 0x74 not in [p.command for p in sent]


def test_each_long_polls_last_verdict_is_kept_through_the_snapshots_re_probe() -> None:
    """``Memory.verdicts``: answered or ignored, per long poll sent (diag tells a poll not
    asked yet from one answered by it); the timer snapshot empties ``ignored`` to probe again,
    never the verdicts."""
    s: MachineSchedule[Any] = MachineSchedule(1, rte=False, poll=POLL)
    assert s.memory.verdicts == {}
    s.on_link_up(0.0)
    drive(s, IDENTITY, at=0.0)  # LP 4D and LP 3D unanswered: ignored
    verdicts = s.memory.verdicts
    assert verdicts[0x54] is True and verdicts[0x1F] is True and verdicts[0x6F] is True
    assert verdicts[0x4D] is False and verdicts[0x3D] is False
    assert 0x48 not in verdicts and 0x1B not in verdicts  # never needed yet
    assert {0x4D, 0x3D} <= s.memory.ignored
    sent, _ = drive(s, IDENTITY, at=POLL.snapshot_interval_s)  # the timer snapshot
    assert sent and 0x4D not in s.memory.ignored  # probed again when next needed
    assert s.memory.verdicts[0x4D] is False  # still what the machine did last
    s.request(ReadHandpay(1))
    drive(s, {0x1B: Ack()}, at=POLL.snapshot_interval_s)
    assert s.memory.verdicts[0x1B] is True
