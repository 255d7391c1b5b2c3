"""The served machine answers the long polls of reference §3.9b from its model: A0 enabled
features (with the 40 ms poll interval), bill meters 1E/20, 3D, 52, 09, 2E and the
multi-denomination polls B0/B1/B2, each decoded by the protocol core's own decoder."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.model import Machine, MachineConfig, PlayRefusedError
from sas_protocol import (
    Ack,
    CashoutTicketReply,
    CashoutTicketRequest,
    CurrentDenominationRequest,
    DelayGameRequest,
    EnabledDenominationsRequest,
    EnabledFeaturesReply,
    EnabledFeaturesRequest,
    EnabledGamesRequest,
    GameEnableFlag,
    GameEnableRequest,
    GameMetersRequest,
    MeterReply,
    MetersRequest,
    MultiDenomError,
    MultiDenomErrorCode,
    MultiDenomReply,
    MultiDenomRequest,
    PollLayouts,
    Request,
    SelectedMetersRequest,
    TicketNumberSize,
    UnknownRequest,
    WrappedAck,
    decode_reply,
)
from tests.emulator.test_served_rules import SYNC, Line


def ask(line: Line, request: Request, now: float) -> Any:
    line.send(SYNC, now)  # acknowledge whatever came before
    frame = line.send(request.encode(1), now)
    return decode_reply(request, frame, address=1)


def silent(line: Line, request: Request, now: float) -> bool:
    line.send(SYNC, now)
    return line.send(request.encode(1), now) == b""


def test_a0_advertises_the_40ms_interval_and_what_the_machine_does() -> None:
    features = ask(Line(), EnabledFeaturesRequest(), 0.0)
    assert isinstance(features, EnabledFeaturesReply)
    assert features.polling_40ms and features.aft and features.extended_meters
    assert features.ticket_redemption and features.validation_extensions
    assert features.validation_style == 0  # standard: LP 3D carries the validation number
    assert features.meter_model == 1 and not features.multi_denom
    slow = Line(Machine(MachineConfig(polling_40ms=False, multi_denom=True)))
    features = ask(slow, EnabledFeaturesRequest(2), 0.0)
    assert features.game == 2 and not features.polling_40ms and features.multi_denom
    assert silent(slow, EnabledFeaturesRequest(9), 0.1)  # no game 9


def test_bill_meters_count_bills_and_total_their_dollars() -> None:
    m = Machine()
    for dollars in (1, 5, 20, 20, 100, 2):
        assert m.insert_bill(0.0, dollars)
    line = Line(m)
    counts = ask(line, MetersRequest(0x1E), 0.0)
    assert isinstance(counts, MeterReply)
    # reference §3.9b: $1, $5, $10, $20, $50, $100 counts; the $2 bill has no slot in LP 1E
    assert counts.meters == {0x40: 1, 0x42: 1, 0x43: 0, 0x44: 2, 0x46: 0, 0x47: 1}
    total = ask(line, MetersRequest(0x20), 0.1)
    assert total.meters == {} and dict(total.other) == {"total_bill_dollars": 148}


def test_3d_reports_the_cashout_ticket_in_either_layout() -> None:
    m = Machine(MachineConfig(denomination_cents=5))
    line = Line(m)
    assert ask(line, CashoutTicketRequest(), 0.0) == CashoutTicketReply(0, 0)
    m.insert_bill(0.0, 20)
    ticket = m.cash_out(0.1)
    assert ticket is not None
    reply = ask(line, CashoutTicketRequest(), 0.2)
    number = getattr(ticket, "validation_number")  # noqa: B009
    assert reply == CashoutTicketReply(number % 10**8, 2000)
    assert ask(line, CashoutTicketRequest(), 0.3) == reply  # reading it marks nothing read
    short = PollLayouts(ticket_number=TicketNumberSize.BCD2)
    saspy_machine = Machine(MachineConfig(layouts=short))
    saspy_machine.insert_bill(0.0, 10)
    ticket = saspy_machine.cash_out(0.1)
    reply = ask(Line(saspy_machine), CashoutTicketRequest(TicketNumberSize.BCD2), 0.2)
    number = getattr(ticket, "validation_number")  # noqa: B009
    assert reply == CashoutTicketReply(number % 10**4, 1000, TicketNumberSize.BCD2)


def test_52_reports_one_games_meters() -> None:
    m = Machine()
    m.insert_bill(0.0, 5)
    m.select_game(0.0, 2)
    m.play_game(0.0, bet=7, win=3)
    m.play_game(0.1, bet=2, win=0)
    line = Line(m)
    reply = ask(line, GameMetersRequest(2), 0.2)
    assert reply.game == 2 and reply.meters == {0x00: 9, 0x01: 3, 0x02: 0, 0x05: 2}
    assert ask(line, GameMetersRequest(1), 0.3).meters == {0x00: 0, 0x01: 0, 0x02: 0, 0x05: 0}
    assert ask(line, GameMetersRequest(0), 0.4).meters[0x05] == 2
    assert silent(line, GameMetersRequest(4), 0.5)


@pytest.mark.parametrize("flag_style", list(GameEnableFlag))
def test_09_enables_and_disables_a_game(flag_style: GameEnableFlag) -> None:
    m = Machine(MachineConfig(layouts=PollLayouts(game_enable=flag_style)))
    m.insert_bill(0.0, 5)
    line = Line(m)
    assert ask(line, GameEnableRequest(2, False, flag_style), 0.0) == Ack()
    assert ask(line, EnabledGamesRequest(), 0.1).games == (1, 3)
    with pytest.raises(PlayRefusedError, match="disabled"):
        m.play_game(0.2, bet=1, win=0, game=2)
    assert ask(line, GameEnableRequest(2, True, flag_style), 0.3) == Ack()
    m.play_game(0.4, bet=1, win=0, game=2)
    assert silent(line, GameEnableRequest(7, True, flag_style), 0.5)  # no game 7


def test_2e_holds_each_game_end_until_cleared() -> None:
    m = Machine()
    m.insert_bill(0.0, 5)
    line = Line(m)
    assert ask(line, DelayGameRequest(1000), 0.0) == Ack()
    m.play_game(1.0, bet=1, win=0)
    with pytest.raises(PlayRefusedError, match="LP 2E"):
        m.play_game(1.5, bet=1, win=0)
    m.play_game(2.0, bet=1, win=0)
    assert ask(line, DelayGameRequest(0), 2.1) == Ack()
    m.play_game(2.1, bet=1, win=0)


def test_multi_denom_polls_are_silent_on_a_single_denomination_machine() -> None:
    line = Line()
    assert silent(line, CurrentDenominationRequest(), 0.0)
    assert silent(line, EnabledDenominationsRequest(), 0.1)
    assert silent(line, MultiDenomRequest(0, MetersRequest(0x11)), 0.2)


def test_b0_b1_b2_on_a_multi_denom_machine() -> None:
    m = Machine(MachineConfig(denomination_cents=5, multi_denom=True))
    m.insert_bill(0.0, 5)
    m.play_game(0.0, bet=4, win=0)
    line = Line(m)
    assert ask(line, CurrentDenominationRequest(), 0.0).denomination == 0x02  # $0.05
    assert ask(line, EnabledDenominationsRequest(), 0.1).denominations == (0x02,)
    for denom in (0x00, 0x02):
        wrapped = ask(line, MultiDenomRequest(denom, MetersRequest(0x11)), 0.2 + denom)
        assert isinstance(wrapped, MultiDenomReply) and wrapped.base == 0x11
        assert wrapped.reply.meters == {0x00: 4}  # type: ignore[union-attr]
    code = MultiDenomErrorCode
    errors = {
        MultiDenomRequest(0x01, MetersRequest(0x11)): code.DENOMINATION_NOT_SUPPORTED,
        MultiDenomRequest(0x40, MetersRequest(0x11)): code.NOT_A_PLAYER_DENOMINATION,
        MultiDenomRequest(0x02, MetersRequest(0x1E)): code.NOT_MULTI_DENOM_AWARE,
        MultiDenomRequest(0x02, UnknownRequest(0xEE)): code.POLL_NOT_SUPPORTED,
        MultiDenomRequest(0x02, SelectedMetersRequest(1, (0x00,))): code.BADLY_FORMATTED,
    }
    for i, (request, error) in enumerate(errors.items()):
        assert ask(line, request, 3.0 + i) == MultiDenomError(request.denomination, error)
    assert silent(line, MultiDenomRequest(0x02, GameEnableRequest(9, True)), 9.0)


@pytest.mark.parametrize("style", list(WrappedAck))
def test_b0_wrapped_09_is_acknowledged_in_the_machines_layout(style: WrappedAck) -> None:
    m = Machine(MachineConfig(multi_denom=True, layouts=PollLayouts(wrapped_ack=style)))
    line = Line(m)
    request = MultiDenomRequest(0x01, GameEnableRequest(3, False), style)
    reply = ask(line, request, 0.0)
    expected = MultiDenomReply(0x01, 0x09, Ack()) if style is WrappedAck.WRAPPED else Ack()
    assert reply == expected and m.enabled_games == {1, 2}


def test_single_bill_polls_count_each_bill() -> None:
    """LP 31-45 (reference §3.9b) each answer the count meter of one bill; LP 46 the
    credits from bills (meter 0B)."""
    m = Machine(MachineConfig(denomination_cents=5))
    for dollars in (1, 2, 2, 200, 250):
        assert m.insert_bill(0.0, dollars)
    line = Line(m)
    expected = {0x31: 1, 0x32: 2, 0x33: 0, 0x3A: 1, 0x45: 1, 0x3B: 0}
    for i, (poll, count) in enumerate(expected.items()):
        assert list(ask(line, MetersRequest(poll), 0.1 * i).meters.values()) == [count], hex(poll)
    assert ask(line, MetersRequest(0x46), 1.0).meters == {0x0B: 455 * 20}


def test_74_reports_the_game_lock_raised_with_6f_and_released_without_an_exception() -> None:
    from sas_protocol import AftLockStatusReply, AftLockStatusRequest

    m = Machine()
    line = Line(m)
    status = ask(line, AftLockStatusRequest(), 0.0)
    assert isinstance(status, AftLockStatusReply) and status.lock_status == 0xFF
    m.game_lock(0.1)
    assert m.queue.is_flagged(0x6F)
    assert ask(line, AftLockStatusRequest(), 0.2).lock_status == 0x00  # reference §3.9
    with pytest.raises(PlayRefusedError, match="game locked"):
        m.play_game(0.3, bet=1, win=0)
    m.game_unlock()
    assert ask(line, AftLockStatusRequest(), 0.4).lock_status == 0xFF
    assert m.snapshot()["gameLocked"] is False
