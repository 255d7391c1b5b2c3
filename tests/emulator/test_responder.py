"""Every long poll the protocol core supports, answered by the served machine and decoded
by the core's own reply decoder."""

from __future__ import annotations

from datetime import UTC, datetime

from emulator.model import Machine, MachineConfig
from emulator.responder import rom_signature
from sas_protocol.crc import crc_ok
from sas_protocol.messages.requests import (
    AftLockStatusRequest,
    DateTimeRequest,
    DisableBillAcceptorRequest,
    EnableBillAcceptorRequest,
    EnabledGamesRequest,
    ExtendedGameInfoRequest,
    GameConfigurationRequest,
    GameCountRequest,
    HandpayResetMethodRequest,
    LastBillRequest,
    MachineInfoRequest,
    MetersRequest,
    RemoteHandpayResetRequest,
    Request,
    RomSignatureRequest,
    SelectedGameRequest,
    SelectedMetersRequest,
    SetDateTimeRequest,
    SoundOffRequest,
    SoundOnRequest,
)
from sas_protocol.messages.responses import decode_reply
from tests.emulator.test_served_rules import GP, SYNC, Line


def ask(line: Line, request: Request, now: float) -> object:
    line.send(SYNC, now)  # acknowledge whatever came before
    frame = line.send(request.encode(1), now)
    return decode_reply(request, frame, address=1)


def test_identity_games_and_configuration() -> None:
    line = Line(Machine(MachineConfig(denomination_cents=5)))
    info = ask(line, MachineInfoRequest(), 0.0)
    assert getattr(info, "denomination") == 0x02 and getattr(info, "max_bet") == 50  # noqa: B009
    assert getattr(ask(line, GameCountRequest(), 0.1), "count") == 3  # noqa: B009
    assert getattr(ask(line, EnabledGamesRequest(), 0.2), "games") == (1, 2, 3)  # noqa: B009
    assert getattr(ask(line, SelectedGameRequest(), 0.3), "game") == 1  # noqa: B009
    config = ask(line, GameConfigurationRequest(2), 0.4)
    assert getattr(config, "paytable_id") == "FF0001"  # noqa: B009
    extended = ask(line, ExtendedGameInfoRequest(3), 0.5)
    assert getattr(extended, "name") == "Gold Rush"  # noqa: B009
    assert getattr(extended, "max_bet") == 50  # noqa: B009
    line.send(SYNC, 0.6)
    assert line.send(GameConfigurationRequest(9).encode(1), 0.6) == b""  # no such game


def test_every_legacy_meter_poll_decodes() -> None:
    m = Machine()
    m.insert_bill(0.0, 5)
    m.play_game(0.0, bet=4, win=8)
    line = Line(m)
    for i, poll in enumerate((0x0F, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
                              0x19, 0x1A, 0x1C)):
        reply = ask(line, MetersRequest(poll), 0.1 * i)
        for code, value in getattr(reply, "meters").items():  # noqa: B009
            assert value == m.reported_meter(code) % 10 ** (2 * reply.widths[code]), (poll, code)  # type: ignore[attr-defined]


def test_per_game_meters_with_2f() -> None:
    m = Machine()
    m.insert_bill(0.0, 5)
    m.select_game(0.0, 2)
    m.play_game(0.0, bet=7, win=0)
    line = Line(m)
    reply = ask(line, SelectedMetersRequest(2, (0x00, 0x05, 0x07)), 0.0)
    assert getattr(reply, "meters") == {0x00: 7, 0x05: 1, 0x07: 1}  # noqa: B009
    reply = ask(line, SelectedMetersRequest(1, (0x00,)), 0.1)
    assert getattr(reply, "meters") == {0x00: 0}  # noqa: B009


def test_sound_bill_acceptor_and_clock() -> None:
    m = Machine(wall_clock=datetime(2026, 3, 15, 13, 45, 30, tzinfo=UTC))
    line = Line(m)
    line.send(SYNC, 0.0)
    assert line.send(SoundOffRequest().encode(1), 0.0) == b"\x01" and not m.sound_on
    assert line.send(SoundOnRequest().encode(1), 0.1) == b"\x01" and m.sound_on
    assert line.send(DisableBillAcceptorRequest().encode(1), 0.2) == b"\x01"
    assert not m.insert_bill(0.3, 20)  # disabled: rejected
    assert line.send(EnableBillAcceptorRequest().encode(1), 0.4) == b"\x01"
    assert m.insert_bill(0.5, 20)
    bill = ask(line, LastBillRequest(), 0.6)
    assert (getattr(bill, "denomination_code"), getattr(bill, "bill_count")) == (4, 1)  # noqa: B009
    t = ask(line, DateTimeRequest(), 10.0)
    assert (getattr(t, "hour"), getattr(t, "minute"), getattr(t, "second")) == (13, 45, 40)  # noqa: B009
    line.send(SYNC, 11.0)
    assert line.send(SetDateTimeRequest(1, 2, 2027, 3, 4, 5).encode(1), 11.0) == b"\x01"
    t = ask(line, DateTimeRequest(), 12.0)
    assert (getattr(t, "year"), getattr(t, "second")) == (2027, 6)  # noqa: B009


def test_handpay_reset_polls_without_a_handpay() -> None:
    line = Line()
    assert getattr(ask(line, RemoteHandpayResetRequest(), 0.0), "code") == 0x02  # noqa: B009
    assert getattr(ask(line, HandpayResetMethodRequest(1), 0.1), "code") == 0x02  # noqa: B009


def test_handpay_reset_to_credit_meter_with_a8() -> None:
    m = Machine(MachineConfig(handpay_limit_cents=1000))
    m.insert_bill(0.0, 1)
    m.play_game(0.0, bet=1, win=2000)
    line = Line(m)
    assert getattr(ask(line, HandpayResetMethodRequest(1), 0.0), "code") == 0x00  # noqa: B009
    assert getattr(ask(line, RemoteHandpayResetRequest(), 0.1), "code") == 0x00  # noqa: B009
    assert m.credits == 2099 and m.meter(0x01) == 2000 and m.meter(0x02) == 0


def test_rom_signature_follows_on_a_general_poll() -> None:
    line = Line()
    line.send(SYNC, 0.0)
    assert line.send(RomSignatureRequest(0x1234).encode(1), 0.0) == b"\x01"
    line.send(SYNC, 0.1)
    frame = line.send(GP, 0.1)
    assert frame[:2] == b"\x01\x21" and crc_ok(frame) and len(frame) == 6
    assert int.from_bytes(frame[2:4], "little") == rom_signature(0x1234, "EMU0000001")


def test_aft_status_reports_the_cashable_balance() -> None:
    m = Machine(MachineConfig(denomination_cents=5))
    m.insert_bill(0.0, 10)
    status = ask(Line(m), AftLockStatusRequest(), 0.0)
    assert getattr(status, "cashable") == 1000 and getattr(status, "lock_status") == 0xFF  # noqa: B009
