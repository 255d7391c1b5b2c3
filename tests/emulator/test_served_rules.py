"""The served machine's link rules, one by one, with a raw host side and stepped time."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
import yaml

from drivers.base import Word
from drivers.memory import MemoryTransport, pair
from emulator.model import Door, Machine, MachineConfig, PlayRefusedError, Ticket
from emulator.scenario import ScenarioRunner, parse_scenario
from emulator.server import Emulator, LinkOptions
from sas_protocol.crc import append_crc, crc_ok
from sas_protocol.messages.requests import (
    EnhancedValidationRequest,
    ExtendedMetersRequest,
    HandpayInfoRequest,
    LockRequest,
    MetersRequest,
    RealTimeReportingRequest,
    Request,
    SelectedMetersRequest,
    SetDateTimeRequest,
    UnlockRequest,
)
from sas_protocol.messages.responses import decode_reply
from sas_protocol.rte import decode_rte_frame

GP = b"\x81"  # general poll, address 1
SYNC = b"\x80"  # general poll to address 0: syncs the machine and acknowledges


class Line:
    """A raw host on a memory line; every exchange steps the emulator at ``now``."""

    def __init__(self, machine: Machine | None = None, **options: object) -> None:
        self.host, end = pair()
        self.machine = machine or Machine()
        self.emu = Emulator(self.machine, end, address=1,
                            options=LinkOptions(**options),  # type: ignore[arg-type]
                            now=0.0)
        self.host_end: MemoryTransport = self.host

    def send(self, frame: bytes, now: float) -> bytes:
        self.host.write(frame, wakeup=True)
        self.emu.step(now)
        return bytes(w.value for w in self.host.read(deadline=0.0))

    def words(self, now: float) -> list[Word]:
        self.emu.step(now)
        return self.host.read(deadline=0.0)

    def gp(self, now: float) -> bytes:
        """A general poll preceded by a sync/ack poll to address 0 (a polite host)."""
        self.send(SYNC, now)
        return self.send(GP, now)


def test_sync_rule_ignores_own_polls_until_a_poll_to_another_address() -> None:
    line = Line()
    assert line.send(GP, 0.1) == b""
    assert line.send(LockRequest().encode(1), 0.2) == b""
    assert not line.machine.locked
    assert line.send(b"\x82", 0.3) == b""  # a general poll to address 2 syncs
    assert line.send(GP, 0.4) == b"\x00"
    assert line.emu.stats.syncs == 1


def test_implied_nack_resends_and_implied_ack_moves_on() -> None:
    line = Line()
    line.machine.open_door(0.0, Door.SLOT)
    line.machine.close_door(0.0, Door.SLOT)
    line.send(SYNC, 0.1)
    assert line.send(GP, 0.2) == b"\x11"
    assert line.send(GP, 0.3) == b"\x11"  # same poll again: implied NACK, same reply
    assert line.emu.stats.resent == 1
    assert line.send(SYNC, 0.4) == b""  # a poll to address 0 acknowledges
    assert line.send(GP, 0.5) == b"\x12"
    # a different long poll also acknowledges
    reply = line.send(MetersRequest(0x1A).encode(1), 0.6)
    assert reply[:2] == b"\x01\x1a" and crc_ok(reply)
    assert line.send(GP, 0.7) == b"\x00"


def test_bad_crc_on_a_long_poll_is_nacked() -> None:
    line = Line()
    line.send(SYNC, 0.0)
    frame = bytearray(LockRequest().encode(1))
    frame[-1] ^= 0xFF
    assert line.send(bytes(frame), 0.1) == b"\x81"
    assert not line.machine.locked
    assert line.send(LockRequest().encode(1), 0.2) == b"\x01"
    assert line.machine.locked


def test_lock_stops_play_and_unlock_restores_it() -> None:
    machine = Machine()
    machine.insert_bill(0.0, 5)
    line = Line(machine)
    line.send(SYNC, 0.0)
    assert line.send(LockRequest().encode(1), 0.1) == b"\x01"
    with pytest.raises(PlayRefusedError):
        machine.play_game(0.2, bet=1, win=0)
    assert line.send(UnlockRequest().encode(1), 0.3) == b"\x01"
    machine.play_game(0.4, bet=1, win=0)


def test_queue_overflow_reports_70_first_and_keeps_the_newest_25() -> None:
    machine = Machine()
    for _ in range(15):
        machine.open_door(0.0, Door.BELLY)
        machine.close_door(0.0, Door.BELLY)
    line = Line(machine)
    seen = [line.gp(0.1 + i / 100)[0] for i in range(27)]
    assert seen[0] == 0x70
    assert seen[1:26] == [0x1E, 0x1D] * 12 + [0x1E]  # the 5 oldest were dropped
    assert seen[26] == 0x00


def test_handpay_51_is_reissued_every_15_s_until_1b_is_read() -> None:
    machine = Machine(MachineConfig(handpay_limit_cents=1000))
    machine.insert_bill(0.0, 1)
    machine.play_game(0.0, bet=1, win=5000)
    line = Line(machine)
    assert line.gp(1.0) == b"\x51"
    rest = [line.gp(1.1 + i / 10)[0] for i in range(4)]
    assert rest == [0x47, 0x7E, 0x7F, 0x00]  # $1 bill, game start, game end
    assert line.gp(15.9) == b"\x00"
    assert line.gp(16.1) == b"\x51"  # 15 s after it was acknowledged
    reply = line.send(HandpayInfoRequest().encode(1), 16.2)
    info = decode_reply(HandpayInfoRequest(), reply, address=1)
    assert info.level == 0x40 and info.amount == 5000  # type: ignore[union-attr]
    assert line.gp(40.0) == b"\x00"  # serviced: no more re-issues


def test_ticket_3d_persists_until_4d() -> None:
    machine = Machine()
    machine.insert_bill(0.0, 5)
    ticket = machine.cash_out(0.0)
    line = Line(machine)
    assert line.gp(1.0) == b"\x3d"
    while line.gp(1.5) != b"\x00":
        pass
    assert line.gp(16.5) == b"\x3d"
    reply = line.send(EnhancedValidationRequest(0).encode(1), 16.6)
    info = decode_reply(EnhancedValidationRequest(0), reply, address=1)
    assert info.amount == 500  # type: ignore[union-attr]
    assert info.validation_number == ticket.validation_number  # type: ignore[union-attr]
    assert line.gp(40.0) == b"\x00"


def test_chirps_after_5_s_of_silence_every_200_ms_and_needs_resync() -> None:
    line = Line()
    assert line.gp(0.0) == b"\x00"
    assert line.words(4.9) == []
    chirp_times = []
    for i in range(41):
        t = 5.0 + i * 0.025
        words = line.words(t)
        assert words in ([], [Word(0x01, True)])  # its own address with the wakeup bit
        if words:
            chirp_times.append(t)
    assert chirp_times[0] == 5.0 and len(chirp_times) == 5
    gaps = [b - a for a, b in itertools.pairwise(chirp_times)]
    assert all(g == pytest.approx(0.2, abs=0.03) for g in gaps)
    assert line.send(GP, 6.05) == b""  # loop break: own polls ignored until re-sync
    assert line.words(6.3) == []  # an address byte stops the chirping
    assert line.gp(6.4) == b"\x00"


def test_busy_answers_long_polls_with_addr_00() -> None:
    line = Line()
    line.send(SYNC, 0.0)
    line.emu.set_busy(0.0, 5.0)
    assert line.send(MetersRequest(0x11).encode(1), 1.0) == b"\x01\x00"
    assert line.send(GP, 1.1) == b"\x00"  # general polls are still answered
    reply = line.send(MetersRequest(0x11).encode(1), 6.0)
    assert reply[:2] == b"\x01\x11" and len(reply) == 8
    assert line.emu.stats.busy == 1


def test_unsupported_polls_are_ignored_never_nacked() -> None:
    line = Line(unsupported_polls=frozenset({0x6F, 0xAF}))
    line.send(SYNC, 0.0)
    assert line.send(ExtendedMetersRequest(0, (0x00,)).encode(1), 0.1) == b""
    assert line.send(ExtendedMetersRequest(0, (0x00,), alternate=True).encode(1), 0.2) == b""
    reply = line.send(SelectedMetersRequest(0, (0x00, 0x0D)).encode(1), 0.3)
    assert reply[:2] == b"\x01\x2f" and crc_ok(reply)
    assert line.send(b"\x01\x99", 0.4) == b""  # a poll nobody implements
    assert line.emu.stats.unsupported == {0x6F: 1, 0xAF: 1, 0x99: 1}


def test_rte_substitutes_pending_events_for_long_poll_replies() -> None:
    machine = Machine()
    line = Line(machine)
    line.send(SYNC, 0.0)
    assert line.send(RealTimeReportingRequest(True).encode(1), 0.1) == b"\x01"
    machine.insert_bill(0.2, 20)
    coin_in = MetersRequest(0x11).encode(1)
    reply = line.send(coin_in, 0.3)
    event = decode_rte_frame(reply, address=1)
    assert event.event_code == 0x4F and event.fields()["bill_count"] == 1
    assert line.emu.stats.rte_substituted == 1
    assert line.send(SYNC, 0.4) == b""  # acknowledge the event
    reply = line.send(coin_in, 0.5)
    assert reply[:2] == b"\x01\x11"  # now the real answer
    # an idle general poll in RTE mode: addr FF 00 CRC
    assert line.send(GP, 0.6) == append_crc(b"\x01\xff\x00")


def test_rte_game_events_carry_their_data() -> None:
    machine = Machine()
    machine.insert_bill(0.0, 1)
    line = Line(machine, rte=True)
    line.gp(0.0)  # the bill
    machine.play_game(0.1, bet=3, win=9)
    start = decode_rte_frame(line.gp(0.2), address=1)
    end = decode_rte_frame(line.gp(0.3), address=1)
    assert start.fields()["credits_wagered"] == 3 and start.fields()["coin_in_meter"] == 3
    assert end.fields()["game_win"] == 9


def test_meters_on_the_wire_wrap_at_their_bcd_width() -> None:
    machine = Machine()
    machine.set_meters_near_rollover(5)
    machine.insert_bill(0.0, 1)
    machine.play_game(0.0, bet=10, win=0)
    machine.aft_in(0.0, 700)
    line = Line(machine)
    line.send(SYNC, 0.0)
    reply = decode_reply(MetersRequest(0x11), line.send(MetersRequest(0x11).encode(1), 0.1),
                         address=1)
    assert reply.meters == {0x00: 5}  # type: ignore[union-attr]
    request = ExtendedMetersRequest(0, (0x00, 0xA0, 0x0C))
    reply = decode_reply(request, line.send(request.encode(1), 0.2), address=1)
    assert reply.meters == {0x00: 5, 0xA0: 695, 0x0C: 790}  # type: ignore[union-attr]
    assert reply.widths == {0x00: 4, 0xA0: 5, 0x0C: 4}  # type: ignore[union-attr]


def test_power_cycle_goes_silent_then_reports_17_after_resync() -> None:
    machine = Machine()
    scenario = parse_scenario(yaml.safe_load("- at: 4\n  power_cycle: 12\n"), "test")
    runner = ScenarioRunner(scenario, machine, start=0.0)
    line = Line(machine)
    line.emu.runner = runner
    line.gp(0.0)
    while line.gp(0.5) != b"\x00":
        pass
    t = 4.0
    line.emu.step(t)
    assert not machine.powered
    assert line.gp(t + 1) == b""  # no answers at all
    assert line.words(t + 9) == []  # no chirps while off
    line.emu.step(16.0)
    assert machine.powered
    assert line.send(GP, 16.1) == b""  # needs a re-sync
    codes = []
    for i in range(5):
        codes.append(line.gp(16.2 + i / 10)[0])
    assert codes[:2] == [0x18, 0x17]


def test_silence_then_resync() -> None:
    line = Line()
    line.gp(0.0)
    line.emu.silence(1.0, 40.0)
    assert line.gp(2.0) == b""
    assert line.words(30.0) == []  # a hung machine does not chirp either
    assert line.send(GP, 41.5) == b""  # the loop broke: re-sync needed
    assert line.gp(41.6) == b"\x00"


def test_corruption_damages_a_fraction_of_reply_bytes() -> None:
    line = Line(corrupt=0.5, seed=3)
    line.send(SYNC, 0.0)
    bad = 0
    for i in range(40):
        reply = line.send(MetersRequest(0x11 if i % 2 else 0x12).encode(1), 0.01 * i)
        bad += not crc_ok(reply)
    assert bad > 20 and line.emu.stats.corrupted_bytes > 0
    line.emu.set_corruption(0.0)
    assert crc_ok(line.send(MetersRequest(0x11).encode(1), 1.0))


def test_loop_break_no_resend_while_unsynced_and_the_resync_acknowledges() -> None:
    line = Line()
    line.machine.open_door(0.0, Door.SLOT)
    line.machine.close_door(0.0, Door.SLOT)
    assert line.gp(0.0) == b"\x11"
    assert line.emu.synced
    assert line.words(5.5) == [Word(0x01, True)]  # no address byte for 5 s: loop break, chirp
    assert not line.emu.synced and not line.emu.protocol.synced
    assert line.send(GP, 5.6) == b""  # the same poll: no implied NACK re-send out of sync
    assert line.emu.stats.resent == 0 and line.emu.stats.ignored == 1
    assert line.gp(5.7) == b"\x12"  # the re-sync acknowledged 11: it is not reported twice
    assert line.emu.stats.syncs == 2


def broadcast(request: Request) -> bytes:
    """``request`` to address 0 (a global broadcast; ``encode`` refuses address 0)."""
    return append_crc(b"\x00" + request.encode(1)[1:-2])


def test_a_broadcast_7f_sets_the_clock_and_gets_no_answer() -> None:
    line = Line()
    line.machine.open_door(0.0, Door.SLOT)
    line.machine.close_door(0.0, Door.SLOT)
    assert line.gp(0.0) == b"\x11"
    # SAS §2.2.2.4: type G is never answered; it also acknowledges the 11 (SAS §3.5)
    assert line.send(broadcast(SetDateTimeRequest(7, 4, 2027, 12, 30, 0)), 1.0) == b""
    assert line.machine.clock(11.0) == datetime(2027, 7, 4, 12, 30, 10, tzinfo=UTC)
    assert line.emu.stats.broadcasts == 1
    assert line.send(GP, 1.1) == b"\x12"
    # other broadcasts and impossible dates are not acted on, and never answered
    assert line.send(broadcast(LockRequest()), 1.2) == b""
    assert not line.machine.locked
    assert line.send(broadcast(SetDateTimeRequest(2, 31, 2027, 0, 0, 0)), 1.3) == b""
    assert line.machine.clock(11.0) == datetime(2027, 7, 4, 12, 30, 10, tzinfo=UTC)
    assert line.emu.stats.broadcasts == 1 and line.emu.stats.ignored == 2


def test_a_broadcast_syncs_a_machine_that_just_powered_up() -> None:
    line = Line()
    assert line.send(broadcast(SetDateTimeRequest(1, 2, 2028, 3, 4, 5)), 0.5) == b""
    assert line.emu.synced and line.machine.clock(0.5).year == 2028
    assert line.send(GP, 0.6) == b"\x00"


def test_an_addressed_7f_with_an_impossible_date_is_not_acknowledged() -> None:
    line = Line()
    line.send(SYNC, 0.0)
    before = line.machine.clock(1.0)
    assert line.send(SetDateTimeRequest(2, 30, 2027, 0, 0, 0).encode(1), 0.1) == b""
    assert line.machine.clock(1.0) == before
    line.send(SYNC, 0.2)
    assert line.send(SetDateTimeRequest(2, 28, 2027, 0, 0, 0).encode(1), 0.3) == b"\x01"


def test_4d_reads_every_ticket_printed_before_the_host_read_one() -> None:
    machine = Machine()
    machine.insert_bill(0.0, 5)
    first = machine.cash_out(0.0)
    machine.insert_bill(0.0, 10)
    second = machine.cash_out(0.0)
    assert isinstance(first, Ticket) and isinstance(second, Ticket)
    line = Line(machine)

    def read_4d(function: int, now: float) -> tuple[int, int, int]:
        line.send(SYNC, now)
        request = EnhancedValidationRequest(function)
        info = decode_reply(request, line.send(request.encode(1), now), address=1)
        return (info.index, info.validation_number, info.amount)  # type: ignore[union-attr]

    assert line.gp(1.0) == b"\x3d"
    assert read_4d(0xFF, 1.1) == (1, first.validation_number, 500)  # look-ahead: not read
    assert read_4d(0x00, 1.2) == (1, first.validation_number, 500)
    assert line.gp(1.3) == b"\x3d"  # at once: another record waits
    assert read_4d(0x00, 1.4) == (2, second.validation_number, 1000)
    codes = [line.gp(1.5 + i / 10)[0] for i in range(5)]
    assert 0x3D not in codes and codes[-1] == 0x00
    assert line.gp(30.0) == b"\x00"  # serviced: no re-issue
    assert read_4d(0x01, 30.1) == (1, first.validation_number, 500)  # by buffer index
    assert read_4d(0x02, 30.2) == (2, second.validation_number, 1000)
    assert read_4d(0x03, 30.3) == (0, 0, 0)  # an empty slot
    assert read_4d(0x20, 30.4) == (0, 0, 0)  # not a function code
    assert read_4d(0xFF, 30.5) == (0, 0, 0)  # nothing ahead
    assert read_4d(0x00, 30.6) == (2, second.validation_number, 1000)  # the latest again
