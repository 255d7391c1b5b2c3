"""The pure machine model: play, money in and out, handpay, doors, meters, rollover."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.exceptions_queue import PendingException
from emulator.meters import METERS, meter_def
from emulator.model import (
    Door,
    Handpay,
    HandpayKind,
    Machine,
    MachineConfig,
    PlayRefusedError,
    Ticket,
)


def drain(machine: Machine, now: float = 0.0) -> list[int]:
    """Report and acknowledge every exception that is due, as a polite host would."""
    codes = []
    while (exc := machine.next_exception(now)) is not None:
        codes.append(exc.code)
        machine.acknowledge_exception(exc, now)
        if len(codes) > 1000:
            raise AssertionError("exceptions never drain")
    return codes


def test_a_game_moves_credits_meters_and_reports_7e_7f() -> None:
    m = Machine(MachineConfig(denomination_cents=5))
    assert m.insert_bill(0.0, 20)
    assert m.credits == 400 and m.meter(0x0B) == 400 and m.meter(0x44) == 1
    result = m.play_game(1.0, bet=10, win=25)
    assert result.handpay is None
    assert m.credits == 415
    assert (m.meter(0x00), m.meter(0x01), m.meter(0x05), m.meter(0x06), m.meter(0x07)) == (
        10, 25, 1, 1, 0)
    assert m.meter(0x00, game=1) == 10 and m.meter(0x22) == 25
    m.play_game(2.0, bet=10, win=0)
    assert m.meter(0x07) == 1 and m.meter(0x05) == 2
    assert drain(m) == [0x4A, 0x7E, 0x7F, 0x7E, 0x7F]  # $20 bill is exception 4A
    totals = m.totals()
    assert totals.coin_in == 100 and totals.coin_out == 125 and totals.bills == 2000


def test_rte_data_of_game_start_and_end() -> None:
    m = Machine()
    m.insert_bill(0.0, 1)
    drain(m)
    m.play_game(0.0, bet=7, win=12)
    start = m.next_exception(0.0)
    assert start is not None and start.rte_code == 0x7E
    assert start.rte_data == bytes.fromhex("0007 00000007 00 00".replace(" ", ""))
    m.acknowledge_exception(start, 0.0)
    end = m.next_exception(0.0)
    assert end is not None and end.rte_data == bytes.fromhex("00000012")


def test_lock_really_stops_play_and_bills() -> None:
    m = Machine()
    m.insert_bill(0.0, 5)
    m.lock()
    with pytest.raises(PlayRefusedError, match="locked"):
        m.play_game(0.0, bet=1, win=0)
    assert not m.insert_bill(0.0, 5)
    m.unlock()
    m.play_game(0.0, bet=1, win=0)
    assert m.meter(0x05) == 1


def test_disabled_bill_acceptor_rejects_bills_with_2b() -> None:
    m = Machine()
    m.set_bill_acceptor(False)
    assert not m.insert_bill(0.0, 20)
    assert m.credits == 0 and m.meter(0x0B) == 0
    assert drain(m) == [0x2B]


def test_open_slot_door_stops_play_and_resets_games_since_door_close() -> None:
    m = Machine()
    m.insert_bill(0.0, 5)
    m.play_game(0.0, bet=1, win=0)
    m.open_door(0.0, Door.SLOT)
    with pytest.raises(PlayRefusedError, match="door"):
        m.play_game(0.0, bet=1, win=0)
    m.close_door(0.0, Door.SLOT)
    assert m.meter(0x26) == 0 and m.meter(0x25) == 1
    assert drain(m)[-2:] == [0x11, 0x12]


def test_jackpot_over_limit_locks_up_until_reset_and_meters_jackpot_at_reset() -> None:
    m = Machine(MachineConfig(denomination_cents=1, handpay_limit_cents=120_000))
    m.insert_bill(0.0, 100)
    result = m.play_game(0.0, bet=10, win=150_000)
    assert result.handpay is not None and result.handpay.kind is HandpayKind.JACKPOT
    assert m.meter(0x02) == 0  # not paid yet
    with pytest.raises(PlayRefusedError, match="handpay"):
        m.play_game(0.0, bet=1, win=0)
    info = m.read_handpay_info(1.0)
    assert info is not None and info.level == 0x40 and info.credits == 150_000
    m.reset_handpay(2.0)
    assert m.meter(0x02) == 150_000 and m.meter(0x1F) == 150_000 and m.meter(0x23) == 150_000
    assert m.totals().jackpot == 150_000
    assert 0x52 in drain(m, 2.0)
    m.play_game(3.0, bet=1, win=0)


def test_cash_out_prints_a_ticket_and_3d_persists_until_4d() -> None:
    m = Machine(MachineConfig(denomination_cents=25))
    m.insert_bill(0.0, 10)
    ticket = m.cash_out(1.0)
    assert isinstance(ticket, Ticket) and ticket.amount_cents == 1000
    assert m.meter(0x04) == 40 and m.meter(0x0E) == 1000 and m.meter(0x86) == 1000
    assert m.credits == 0
    assert drain(m, 1.0) == [0x3D, 0x49, 0x66]  # priority 3D first
    assert m.next_exception(10.0) is None
    again = m.next_exception(16.0)  # re-issued after 15 s
    assert again is not None and again.code == 0x3D
    assert m.read_validation_info(16.5) == ticket
    assert m.next_exception(100.0) is None


def test_cash_out_over_limit_is_a_cancelled_credit_handpay() -> None:
    m = Machine(MachineConfig(handpay_limit_cents=5_000))
    m.insert_bill(0.0, 100)
    handpay = m.cash_out(0.0)
    assert handpay is not None and not isinstance(handpay, Ticket)
    assert handpay.level == 0x80
    m.reset_handpay(1.0)
    assert m.meter(0x03) == 10_000 and m.meter(0x04) == 10_000
    assert m.totals().handpaid_cancelled_credits == 10_000


def test_meter_rollover_reports_modulo_and_keeps_true_value() -> None:
    m = Machine()
    m.set_meters_near_rollover(margin=5)
    m.insert_bill(0.0, 1)  # 100 credits
    assert m.meter(0x0B) == 10**8 - 5 + 100
    assert m.reported_meter(0x0B) == 95
    m.play_game(0.0, bet=10, win=0)
    assert m.reported_meter(0x00) == 5 and m.meter(0x00) == 10**8 + 5
    m.aft_in(0.0, 500)
    assert m.meter(0xA0) == 10**10 - 5 + 500 and m.reported_meter(0xA0) == 495


def test_soft_meter_reset_zeroes_meters_but_not_lifetime_totals() -> None:
    m = Machine()
    m.insert_bill(0.0, 5)
    m.play_game(0.0, bet=3, win=0)
    m.reset_soft_meters(1.0)
    assert all(v == 0 for code, v in m.meters().items() if code != 0x0C)
    assert m.credits == 497
    assert m.totals().coin_in == 3 and m.totals().bills == 500
    assert drain(m, 1.0)[-1] == 0x7A


def test_power_cycle_queues_18_then_17() -> None:
    m = Machine()
    m.power_off(0.0)
    with pytest.raises(PlayRefusedError, match="powered"):
        m.play_game(0.0, bet=1, win=0)
    m.power_on(5.0)
    assert drain(m, 5.0) == [0x18, 0x17]


def test_meter_widths_follow_the_sas_units() -> None:
    assert meter_def(0x00).size == 4 and meter_def(0x0D).size == 5
    assert all(m.size == (5 if m.unit.value == "cents" else 4) for m in METERS.values())


def test_queue_entries_are_reported_in_order() -> None:
    m = Machine()
    for door in (Door.SLOT, Door.DROP, Door.BELLY):
        m.open_door(0.0, door)
    first = m.next_exception(0.0)
    assert first == PendingException.simple(0x11)
    assert m.next_exception(0.0) == first  # not acknowledged: same again (implied NACK)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("bill"), st.sampled_from([1, 5, 20, 100])),
        st.tuples(st.just("play"), st.integers(1, 10), st.integers(0, 400)),
        st.tuples(st.just("ticket"), st.integers(1, 5000)),
        st.tuples(st.just("cashout"), st.just(0)),
        st.tuples(st.just("reset"), st.just(0)),
        st.tuples(st.just("aft_in"), st.integers(1, 5000)),
        st.tuples(st.just("aft_out"), st.integers(1, 5000)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops, st.sampled_from([1, 5, 25]), st.booleans())
def test_money_invariant_holds_for_any_sequence(
    script: list[tuple[int | str, ...]], denom: int, near_rollover: bool
) -> None:
    """credits = in - bets + wins - cash-outs, and the meters agree with the lifetime totals."""
    m = Machine(MachineConfig(denomination_cents=denom, handpay_limit_cents=50_000))
    if near_rollover:
        m.set_meters_near_rollover(margin=50)
    start = m.meters()
    for op in script:
        name = op[0]
        try:
            if name == "bill":
                m.insert_bill(0.0, int(op[1]))
            elif name == "play":
                m.play_game(0.0, bet=int(op[1]), win=int(op[2]))
            elif name == "ticket":
                m.insert_ticket(0.0, int(op[1]) * denom)
            elif name == "cashout":
                m.cash_out(0.0)
            elif name == "reset":
                m.reset_handpay(0.0)
            elif name == "aft_in":
                m.aft_in(0.0, int(op[1]) * denom)
            else:
                m.aft_out(0.0, int(op[1]) * denom)
        except PlayRefusedError:
            pass
    t = m.totals()
    money_in = t.bills + t.ticket_in + t.aft_in + t.coin_out
    money_out = t.coin_in + t.cancelled_credits + t.aft_out
    pending = m.handpay.cents if m.handpay and m.handpay.kind is HandpayKind.CANCELLED_CREDITS \
        else 0
    assert m.credits * denom == money_in - money_out - pending
    delta = {code: m.meter(code) - start[code] for code in start}
    assert delta[0x00] * denom == t.coin_in
    assert delta[0x01] * denom == t.coin_out
    assert delta[0x02] * denom == t.jackpot
    assert delta[0x0B] * denom == t.bills
    assert delta[0x0D] == t.ticket_in and delta[0x0E] == t.ticket_out
    assert delta[0x04] * denom == t.cancelled_credits
    assert delta[0x05] == t.games_played == delta[0x06] + delta[0x07]
    assert delta[0xA0] == t.aft_in and delta[0xB8] == t.aft_out
    for code, value in m.meters().items():
        assert m.reported_meter(code) == value % meter_def(code).modulus


def test_two_tickets_before_4d_are_both_kept_and_read_in_order() -> None:
    m = Machine()
    m.insert_bill(0.0, 5)
    first = m.cash_out(0.0)
    m.insert_bill(0.0, 10)
    second = m.cash_out(0.0)
    assert isinstance(first, Ticket) and isinstance(second, Ticket)
    assert (first.buffer_index, second.buffer_index) == (1, 2)
    assert m.unread_tickets == [first, second]
    assert m.peek_validation_info() == first  # look-ahead marks nothing read
    assert m.read_validation_info(1.0) == first
    # 3D stays until every record is read, and comes again at once for the next one
    again = m.next_exception(1.0)
    assert again is not None and again.code == 0x3D
    assert m.peek_validation_info() == second
    assert m.read_validation_info(1.1) == second
    assert not m.queue.is_flagged(0x3D) and m.unread_tickets == []
    assert m.peek_validation_info() is None
    assert m.read_validation_info(1.2) == second  # nothing unread: the latest record again
    assert m.validation_record(1) == first and m.validation_record(2) == second
    assert m.validation_record(3) is None


def test_the_validation_buffer_keeps_31_records_and_never_overwrites_an_unread_one() -> None:
    m = Machine()
    printed = []
    for i in range(31):
        m.insert_bill(float(i), 1)
        printed.append(m.cash_out(float(i)))
    assert all(isinstance(t, Ticket) for t in printed)
    assert len(m.unread_tickets) == 31
    m.insert_bill(40.0, 1)
    handpay = m.cash_out(40.0)  # buffer full: no 32nd ticket, an attendant pays
    assert isinstance(handpay, Handpay) and handpay.kind is HandpayKind.CANCELLED_CREDITS
    m.reset_handpay(41.0)
    assert m.read_validation_info(42.0) == printed[0]
    m.insert_bill(43.0, 1)
    latest = m.cash_out(43.0)
    assert isinstance(latest, Ticket) and latest.buffer_index == 1  # slot 01 reused
    assert m.validation_record(1) == latest and m.validation_record(31) == printed[30]
    assert m.unread_tickets == [*printed[1:], latest]
