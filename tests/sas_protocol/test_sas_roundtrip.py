"""Hypothesis: every message type survives encode -> decode unchanged, and decoders fed
arbitrary bytes raise nothing but SasProtocolError subclasses."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import sas_protocol as sp
from sas_protocol.messages.meters import LEGACY_METER_LAYOUTS

ADDRESS = st.integers(1, 127)
GAME = st.integers(0, 9999)
BYTE = st.integers(0, 255)


def bcd(width: int) -> st.SearchStrategy[int]:
    return st.integers(0, 10 ** (2 * width) - 1)


def text(size: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), min_size=size,
                   max_size=size)


DATE_TIME = dict(
    month=st.integers(1, 12), day=st.integers(1, 31), year=st.integers(0, 9999),
    hour=st.integers(0, 23), minute=st.integers(0, 59), second=st.integers(0, 59),
)

BASE_REQUESTS: st.SearchStrategy[sp.Request] = st.one_of(
    st.sampled_from([
        sp.LockRequest(), sp.UnlockRequest(), sp.SoundOffRequest(), sp.SoundOnRequest(),
        sp.EnableBillAcceptorRequest(), sp.DisableBillAcceptorRequest(),
        sp.HandpayInfoRequest(), sp.MachineInfoRequest(), sp.LastBillRequest(),
        sp.GameCountRequest(), sp.SasVersionRequest(), sp.SelectedGameRequest(),
        sp.EnabledGamesRequest(), sp.DateTimeRequest(), sp.RemoteHandpayResetRequest(),
        sp.CashoutTicketRequest(), sp.CurrentDenominationRequest(),
        sp.EnabledDenominationsRequest(),
    ]),
    st.builds(sp.EnabledFeaturesRequest, GAME),
    st.builds(sp.GameMetersRequest, GAME),
    st.builds(sp.GameEnableRequest, GAME, st.booleans()),
    st.builds(sp.DelayGameRequest, st.integers(0, 0xFFFF).map(lambda tenths: tenths * 100)),
    st.builds(sp.MetersRequest, st.sampled_from(sorted(sp.LEGACY_METER_POLLS))),
    st.builds(sp.RealTimeReportingRequest, st.booleans()),
    st.builds(sp.RomSignatureRequest, st.integers(0, 0xFFFF)),
    st.builds(sp.SelectedMetersRequest, GAME, st.lists(BYTE, min_size=1, max_size=10).map(tuple)),
    st.builds(sp.ExtendedMetersRequest, GAME,
              st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=12).map(tuple), st.booleans()),
    st.builds(sp.EnhancedValidationRequest, BYTE),
    st.builds(sp.GameConfigurationRequest, GAME),
    st.builds(sp.ExtendedGameInfoRequest, GAME),
    st.builds(sp.AftLockStatusRequest, BYTE, BYTE, st.integers(0, 9999)),
    st.builds(sp.SetDateTimeRequest, **DATE_TIME),
    st.builds(sp.HandpayResetMethodRequest, BYTE),
)

#: Any poll, also wrapped in the B0 multi-denomination preamble (reference §3.9b).
REQUESTS: st.SearchStrategy[sp.Request] = st.one_of(
    BASE_REQUESTS, st.builds(sp.MultiDenomRequest, BYTE, BASE_REQUESTS)
)


@given(ADDRESS, REQUESTS)
def test_request_round_trip(address: int, request: sp.Request) -> None:
    frame = request.encode(address)
    assert sp.request_length(frame) == len(frame)
    assert sp.decode_request(frame) == (address, request)
    assert sp.describe_frame(frame).message == request


@st.composite
def legacy_meter_replies(draw: st.DrawFn) -> sp.MeterReply:
    command = draw(st.sampled_from(sorted(LEGACY_METER_LAYOUTS)))
    values, other = [], []
    for key, size in LEGACY_METER_LAYOUTS[command]:
        value = draw(bcd(size))
        if isinstance(key, int):
            values.append(sp.MeterValue(key, value, size))
        else:
            other.append((key, value))
    return sp.MeterReply(command, 0, tuple(values), tuple(other))


@st.composite
def selected_meter_replies(draw: st.DrawFn) -> sp.MeterReply:
    codes = draw(st.lists(BYTE, min_size=0, max_size=10))
    values = []
    for code in codes:
        size = sp.meter_spec(code).size
        values.append(sp.MeterValue(code, draw(bcd(size)), size))
    return sp.MeterReply(0x2F, draw(GAME), tuple(values))


@st.composite
def extended_meter_replies(draw: st.DrawFn) -> sp.MeterReply:
    count = draw(st.integers(0, 12))
    values = []
    for _ in range(count):
        size = draw(st.integers(1, 9))
        values.append(sp.MeterValue(draw(st.integers(0, 0xFFFF)), draw(bcd(size)), size))
    unsupported = tuple(draw(st.lists(st.integers(0, 0xFFFF), max_size=3)))
    return sp.MeterReply(draw(st.sampled_from([0x6F, 0xAF])), draw(GAME), tuple(values), (),
                         unsupported)


@st.composite
def game_meter_replies(draw: st.DrawFn) -> sp.MeterReply:
    values = tuple(sp.MeterValue(code, draw(bcd(size)), size)
                   for code, size in sp.GAME_METER_LAYOUT)
    return sp.MeterReply(0x52, draw(GAME), values)


MACHINE_INFO = dict(
    game_id=text(2), additional_id=text(3), denomination=BYTE, max_bet=BYTE,
    progressive_group=BYTE, game_options=st.integers(0, 0xFFFF), paytable_id=text(6),
    base_percent=text(4),
)

WRAPPABLE: st.SearchStrategy[Any] = st.one_of(
    legacy_meter_replies(),
    selected_meter_replies(),
    extended_meter_replies(),
    st.builds(sp.EnabledGamesReply, st.lists(GAME, max_size=20).map(tuple)),
)

RESPONSES: st.SearchStrategy[Any] = st.one_of(
    game_meter_replies(),
    st.builds(sp.EnabledFeaturesReply, GAME, BYTE, BYTE, BYTE, BYTE,
              st.binary(min_size=2, max_size=2)),
    st.builds(sp.CashoutTicketReply, bcd(4), bcd(5)),
    st.builds(sp.CashoutTicketReply, bcd(2), bcd(5), st.just(sp.TicketNumberSize.BCD2)),
    st.builds(sp.CurrentDenominationReply, BYTE),
    st.builds(sp.EnabledDenominationsReply, st.lists(BYTE, max_size=30).map(tuple)),
    st.builds(sp.MultiDenomError, BYTE, BYTE),
    st.builds(lambda denom, reply: sp.MultiDenomReply(denom, reply.command, reply),
              BYTE, WRAPPABLE),
    legacy_meter_replies(),
    selected_meter_replies(),
    extended_meter_replies(),
    st.builds(sp.MachineInfoReply, **MACHINE_INFO),
    st.builds(sp.GameConfigurationReply, game=GAME, **MACHINE_INFO),
    st.builds(sp.HandpayInfoReply, BYTE, BYTE, bcd(5), bcd(2), BYTE,
              st.binary(min_size=10, max_size=10)),
    st.builds(sp.RomSignatureReply, st.integers(0, 0xFFFF)),
    st.builds(sp.LastBillReply, BYTE, BYTE, bcd(4)),
    st.builds(sp.EnhancedValidationReply, BYTE, BYTE, bcd(4), bcd(3), bcd(8), bcd(5),
              st.integers(0, 0xFFFF), bcd(1), bcd(4), st.integers(0, 0xFFFF)),
    st.builds(sp.GameCountReply, bcd(2)),
    st.builds(sp.SelectedGameReply, bcd(2)),
    st.builds(sp.DateTimeReply, **DATE_TIME),
    st.builds(sp.HandpayResetReply, BYTE),
    st.builds(sp.HandpayResetMethodReply, BYTE),
    st.builds(sp.SasVersionReply, text(3), st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)),
    st.builds(sp.EnabledGamesReply, st.lists(GAME, max_size=20).map(tuple)),
    st.builds(sp.AftLockStatusReply, st.integers(0, 2**32 - 1), BYTE, BYTE, BYTE, BYTE, BYTE,
              bcd(5), bcd(5), bcd(5), bcd(5), bcd(4), st.integers(0, 0xFFFF)),
    st.builds(sp.ExtendedGameInfoReply, GAME, bcd(2), BYTE, st.integers(0, 2**32 - 1),
              st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40),
              st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40),
              bcd(2), st.lists(BYTE, max_size=10).map(tuple)),
)


@given(ADDRESS, RESPONSES)
def test_response_round_trip(address: int, reply: Any) -> None:
    frame = reply.encode(address)
    assert sp.decode_reply_frame(frame, address=address) == reply
    description = sp.describe_frame(frame)
    if description.kind == "reply":
        assert description.message == reply
        if isinstance(reply, sp.MeterReply):
            assert description.meters == reply.meters
        if isinstance(reply, sp.MultiDenomReply) and isinstance(reply.reply, sp.MeterReply):
            assert description.meters == reply.reply.meters
    else:  # a captured frame can be ambiguous: e.g. a 2F reply that is also a valid 2F poll
        assert "also a valid reply" in description.meaning


RTE_EVENTS: st.SearchStrategy[sp.RealTimeEvent] = st.one_of(
    st.builds(sp.PlainEvent, BYTE.filter(lambda c: c not in sp.RTE_LAYOUTS)),
    st.builds(sp.GameStartedEvent, bcd(2), bcd(4), BYTE, BYTE),
    st.builds(sp.GameEndedEvent, bcd(4)),
    st.builds(sp.GameSelectedEvent, bcd(2)),
    st.builds(sp.BillAcceptedEvent, BYTE, BYTE, bcd(4)),
    st.builds(sp.LegacyBonusEvent, BYTE, bcd(4), BYTE, bcd(4)),
    st.builds(sp.ReelStoppedEvent, BYTE, BYTE),
    st.builds(sp.GameRecallEvent, bcd(2), bcd(2)),
    st.builds(sp.CardHeldEvent, st.integers(0, 127), st.booleans()),
)


@given(ADDRESS, RTE_EVENTS)
def test_rte_round_trip(address: int, event: sp.RealTimeEvent) -> None:
    frame = sp.encode_rte_frame(address, event)
    assert len(frame) == sp.rte_frame_length(event.event_code)
    assert sp.decode_rte_frame(frame, address=address) == event


@given(st.integers(0, 10**12), st.integers(1, 8))
def test_bcd_round_trip(value: int, width: int) -> None:
    if value < 10 ** (2 * width):
        assert sp.decode_bcd(sp.encode_bcd(value, width)) == value
        assert len(sp.encode_bcd(value, width)) == width
    else:
        try:
            sp.encode_bcd(value, width)
        except sp.LocalProtocolError:
            return
        raise AssertionError("encode_bcd accepted a value wider than its width")


@given(st.binary(max_size=80), ADDRESS, REQUESTS)
def test_decoders_raise_only_protocol_errors(data: bytes, address: int, poll: sp.Request) -> None:
    for decode in (
        sp.decode_request,
        sp.decode_reply_frame,
        sp.decode_rte_frame,
        sp.describe_frame,
        lambda d: sp.decode_reply(poll, d, address=address),
        lambda d: sp.decode_reply(sp.GeneralPoll(), d, address=address),
    ):
        with contextlib.suppress(sp.SasProtocolError):
            decode(data)


@given(ADDRESS, BYTE)
def test_link_level_replies_round_trip(address: int, code: int) -> None:
    lock, gp = sp.LockRequest(), sp.GeneralPoll()
    assert sp.decode_reply(lock, sp.Ack().encode(address), address=address) == sp.Ack()
    assert sp.decode_reply(lock, sp.Nack().encode(address), address=address) == sp.Nack()
    assert sp.decode_reply(lock, sp.Busy().encode(address), address=address) == sp.Busy()
    reply = sp.ExceptionReply(code)
    assert sp.decode_reply(gp, reply.encode(address), address=address) == reply
    assert gp.encode(address) == bytes((0x80 | address,))
