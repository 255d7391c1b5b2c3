"""The long polls of reference §3.9b: layout choices round-trip, A0 feature bits, the B0
multi-denomination wrapper through the host, and every malformed frame or misuse raising
the package's own errors."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sas_protocol as sp
from tests.sas_protocol.sas_helpers import words

ADDRESS = st.integers(1, 127)
GAME = st.integers(0, 9999)
BYTE = st.integers(0, 255)

ALL_LAYOUTS = [
    sp.PollLayouts(*choice)
    for choice in itertools.product(
        sp.GameEnableFlag, sp.DelayEncoding, sp.TicketNumberSize, sp.WrappedAck
    )
]


@st.composite
def polls_under_layouts(draw: st.DrawFn) -> tuple[sp.PollLayouts, sp.Request]:
    """A layout set and a poll built under it (what a machine with that setting decodes)."""
    layouts = draw(st.sampled_from(ALL_LAYOUTS))
    if layouts.delay is sp.DelayEncoding.BINARY_100MS:
        delay = draw(st.integers(0, 0xFFFF)) * 100
    else:
        delay = draw(st.integers(0, 9999))
    base = draw(st.sampled_from([
        sp.GameEnableRequest(draw(GAME), draw(st.booleans()), layouts.game_enable),
        sp.DelayGameRequest(delay, layouts.delay),
        sp.CashoutTicketRequest(layouts.ticket_number),
        sp.EnabledFeaturesRequest(draw(GAME)),
        sp.MetersRequest(0x11),
    ]))
    if draw(st.booleans()):
        return layouts, sp.MultiDenomRequest(draw(BYTE), base, layouts.wrapped_ack)
    return layouts, base


@given(ADDRESS, polls_under_layouts())
def test_polls_round_trip_under_every_layout_choice(
    address: int, case: tuple[sp.PollLayouts, sp.Request]
) -> None:
    layouts, poll = case
    frame = poll.encode(address)
    assert sp.request_length(frame) == len(frame)
    assert sp.decode_request(frame, layouts) == (address, poll)
    machine = sp.MachineProtocol(address, layouts=layouts)
    machine.receive_words(words(frame))
    assert machine.events_received() == [sp.PollReceived(poll, frame)]


def test_disputed_layouts_put_different_bytes_on_the_wire() -> None:
    """Reference §3.9b [unsure]: the same request in the majority's and the minority's form."""
    one, zero = sp.GameEnableFlag.ONE_ENABLES, sp.GameEnableFlag.ZERO_ENABLES
    assert sp.GameEnableRequest(1, True, one).body()[-1] == 0x01
    assert sp.GameEnableRequest(1, True, zero).body()[-1] == 0x00
    binary, bcd = sp.DelayEncoding.BINARY_100MS, sp.DelayEncoding.BCD_MS
    assert sp.DelayGameRequest(1200, binary).body() == bytes.fromhex("0C 00")  # 12 x 100 ms
    assert sp.DelayGameRequest(1200, bcd).body() == bytes.fromhex("12 00")
    assert sp.CashoutTicketRequest().reply_length == 13
    assert sp.CashoutTicketRequest(sp.TicketNumberSize.BCD2).reply_length == 11
    assert sp.PollLayouts(
        one, binary, sp.TicketNumberSize.BCD4, sp.WrappedAck.WRAPPED) == sp.DEFAULT_LAYOUTS


@given(ADDRESS, BYTE, GAME, st.booleans(), st.sampled_from(list(sp.WrappedAck)))
def test_wrapped_ack_polls_take_the_ack_their_layout_names(
    address: int, denom: int, game: int, enable: bool, style: sp.WrappedAck
) -> None:
    poll = sp.MultiDenomRequest(denom, sp.GameEnableRequest(game, enable), style)
    host = sp.HostProtocol(address)
    host.send(poll)
    assert [o.data for o in host.data_to_send()][-1] == poll.encode(address)
    if style is sp.WrappedAck.WRAPPED:
        reply: Any = sp.MultiDenomReply(denom, 0x09, sp.Ack())
        host.receive_data(reply.encode(address))
    else:
        reply = sp.Ack()
        host.receive_data(sp.Ack().encode(address))
        host.receive_timeout()  # a lone address byte is an ACK only when the window closes
    assert host.events_received()[-1] == sp.ReplyReceived(poll, reply)


@given(ADDRESS, BYTE, st.integers(0, 99_999_999))
def test_wrapped_meter_reads_and_busy_reach_the_host(
    address: int, denom: int, coin_in: int
) -> None:
    poll = sp.MultiDenomRequest(denom, sp.MetersRequest(0x11))
    meters = sp.MeterReply(0x11, 0, (sp.MeterValue(0x00, coin_in, 4),))
    for inner in (meters, sp.Busy()):
        reply = sp.MultiDenomReply(denom, 0x11, inner)
        assert sp.decode_reply(poll, reply.encode(address), address=address) == reply
    error = sp.MultiDenomError(denom, sp.MultiDenomErrorCode.NOT_MULTI_DENOM_AWARE)
    assert sp.decode_reply(poll, error.encode(address), address=address) == error


def test_a0_feature_bits() -> None:
    """Reference §3.9b "A0 feature bits": F3 bit 0 is the 40 ms poll interval."""
    none = sp.EnabledFeaturesReply(0, 0, 0, 0)
    assert not any((none.polling_40ms, none.aft, none.multi_denom, none.extended_meters,
                    none.ticket_redemption, none.validation_extensions))
    assert (none.validation_style, none.meter_model) == (0, 0)
    every = sp.EnabledFeaturesReply(0, 0xFF, 0xFF, 0xFF, 0xFF)
    assert all((every.polling_40ms, every.aft, every.multi_denom, every.extended_meters,
                every.ticket_redemption, every.validation_extensions))
    assert (every.validation_style, every.meter_model) == (3, 3)
    assert sp.EnabledFeaturesReply(0, 0, 0, sp.Features3.MAX_POLLING_RATE_40MS).polling_40ms
    secure = sp.EnabledFeaturesReply(0, sp.Features1.VALIDATION_STYLE_HIGH, 0x02, 0)
    assert (secure.validation_style, secure.meter_model) == (2, 2)
    assert sp.EnabledFeaturesReply(0, 0, sp.Features2.AFT, 0).aft
    assert sp.EnabledFeaturesReply(0, 0, sp.Features2.MULTI_DENOM_EXTENSIONS, 0).multi_denom
    assert int(sp.Features4.MAX_PROGRESSIVE_PAYBACK) == 0x01


def test_bill_meters_map_onto_table_c7_bill_codes() -> None:
    """LP 1E counts $1, $5, $10, $20, $50, $100 bills: C-7 codes 40, 42, 43, 44, 46, 47."""
    codes = [key for key, _ in sp.LEGACY_METER_LAYOUTS[0x1E] if isinstance(key, int)]
    assert codes == [0x40, 0x42, 0x43, 0x44, 0x46, 0x47]
    assert [sp.BILL_METER_DOLLARS[c] for c in codes] == [1, 5, 10, 20, 50, 100]
    assert sp.MetersRequest(0x1E).reply_length == 28
    assert sp.MetersRequest(0x20).reply_length == 8
    assert sp.GameMetersRequest(3).reply_length == 22


@dataclass(frozen=True, slots=True)
class _HugePoll(sp.Request):
    COMMAND: ClassVar[int] = 0x6F

    def body(self) -> bytes:
        return bytes(254)


def _big_6f() -> sp.MeterReply:
    return sp.MeterReply(0x6F, 0, tuple(sp.MeterValue(i, 0, 8) for i in range(23)))


MISUSE: list[Any] = [
    lambda: sp.GameEnableRequest(10_000, True),
    lambda: sp.DelayGameRequest(150),
    lambda: sp.DelayGameRequest(-100),
    lambda: sp.DelayGameRequest(6_553_600),
    lambda: sp.DelayGameRequest(10_000, sp.DelayEncoding.BCD_MS),
    lambda: sp.EnabledFeaturesRequest(10_000),
    lambda: sp.GameMetersRequest(-1),
    lambda: sp.MultiDenomRequest(256, sp.LockRequest()),
    lambda: sp.MultiDenomRequest(1, sp.MultiDenomRequest(1, sp.LockRequest())),
    lambda: sp.MultiDenomRequest(1, _HugePoll()),
    lambda: sp.MultiDenomReply(1, 0x12, sp.MeterReply(0x11, 0, (sp.MeterValue(0, 1, 4),))).encode(
        1),
    lambda: sp.MultiDenomReply(1, 0x6F, _big_6f()).encode(1),
    lambda: sp.MultiDenomReply(1, 0x11, sp.Ack()).encode(0),
    lambda: sp.MultiDenomError(256, 1),
    lambda: sp.MultiDenomError(1, -1),
    lambda: sp.EnabledDenominationsReply((256,)).encode(1),
    lambda: sp.EnabledDenominationsReply(tuple(range(255))).encode(1),
    lambda: sp.CashoutTicketReply(123_456_789, 0).encode(1),
    lambda: sp.CashoutTicketReply(10_000, 0, sp.TicketNumberSize.BCD2).encode(1),
    lambda: sp.EnabledFeaturesReply(0, 256, 0, 0).encode(1),
]


@pytest.mark.parametrize("build", MISUSE)
def test_misuse_raises_local_errors(build: Any) -> None:
    with pytest.raises(sp.LocalProtocolError):
        build()


def _crc(hex_text: str) -> bytes:
    return sp.append_crc(bytes.fromhex(hex_text))


def test_a_wrapped_unknown_poll_is_kept_for_the_machine_to_refuse() -> None:
    """B0 around a poll the machine does not know: error 01 is the machine's answer
    (reference §3.9b), so the request decodes with the unknown base inside."""
    _, request = sp.decode_request(_crc("01 B0 02 01 EE"))
    assert request == sp.MultiDenomRequest(1, sp.UnknownRequest(0xEE))


def test_describe_shows_wrapped_meters_and_layout_choices() -> None:
    reply = sp.describe_frame(_crc("01 B0 06 01 11 00 00 12 34"))
    assert reply.kind == "reply" and reply.meters == {0x00: 1234}
    assert reply.to_json()["fields"]["reply"]["type"] == "MeterReply"
    poll = sp.describe_frame(bytes.fromhex("01 09 00 01 01 76 FA"))
    assert poll.to_json()["fields"] == {"game": 1, "enable": True, "flag_style": "one-enables"}
    assert poll.meaning == "LP 09 Enable / disable game N"


def test_describe_names_the_a0_feature_bits() -> None:
    every = sp.describe_frame(_crc("01 A0 00 00 FF FF FF FF 00 00")).meaning
    assert "max_polling_rate_40ms" in every and "multi_denom_extensions" in every
    assert every.count(",") == 8 + 8 + 7 + 1 - 1  # F3 bit 3 and F4 bits 1-7 are reserved
    reserved_only = sp.describe_frame(_crc("01 A0 00 00 00 00 08 00 00 00")).meaning
    assert reserved_only.endswith(": no features")


def test_single_bill_polls_follow_the_reference_table() -> None:
    """Reference §3.9b: 31 $1, 32 $2, 33 $5, 34 $10, 35 $20, 36 $50, 37 $100, 38 $500,
    39 $1,000, 3A $200, 3B $25, 3C $2,000, 3E $2,500, 3F $5,000, 40 $10,000, 41 $20,000,
    42 $25,000, 43 $50,000, 44 $100,000, 45 $250; 3D is not a bill meter; 46 credits."""
    listed = [1, 2, 5, 10, 20, 50, 100, 500, 1_000, 200, 25, 2_000, 2_500, 5_000, 10_000,
              20_000, 25_000, 50_000, 100_000, 250]
    polls = [p for p in range(0x31, 0x46) if p != 0x3D]
    for poll, dollars in zip(polls, listed, strict=True):
        ((code, size),) = sp.LEGACY_METER_LAYOUTS[poll]
        assert isinstance(code, int) and sp.BILL_METER_DOLLARS[code] == dollars and size == 4
        assert sp.MetersRequest(poll).reply_length == 8
    assert sp.LEGACY_METER_LAYOUTS[0x46] == ((0x0B, 4),)
    assert 0x3D not in sp.LEGACY_METER_POLLS
