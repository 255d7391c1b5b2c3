"""CRC, BCD, denominations, wire codes, and the error paths of every codec."""

from __future__ import annotations

import binascii
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sas_protocol as sp
from sas_protocol.messages.layout import Field, Kind, decode_layout, encode_field


def _reverse_bits(value: int, width: int) -> int:
    return int(f"{value:0{width}b}"[::-1], 2)


@given(st.binary(max_size=64))
def test_crc_matches_an_independent_computation(data: bytes) -> None:
    """CRC-16/KERMIT is the bit-reflected XMODEM CRC: check against binascii.crc_hqx."""
    reflected = bytes(_reverse_bits(b, 8) for b in data)
    expected = _reverse_bits(binascii.crc_hqx(reflected, 0), 16)
    assert sp.crc16_kermit(data) == expected
    frame = sp.append_crc(data)
    assert frame[-2:] == bytes((expected & 0xFF, expected >> 8))  # low byte first
    assert sp.crc_ok(frame) is (len(frame) >= 3)


def test_crc_check_value() -> None:
    assert sp.crc16_kermit(b"123456789") == 0x2189
    assert not sp.crc_ok(b"\x01\x02")


def test_bcd() -> None:
    assert sp.encode_bcd(12345678, 4) == bytes.fromhex("12345678")
    assert sp.decode_bcd(bytes.fromhex("00000150")) == 150
    assert sp.decode_bcd(b"") == 0
    for value, width in ((-1, 2), (10_000, 2), (1, 0)):
        with pytest.raises(sp.LocalProtocolError):
            sp.encode_bcd(value, width)
    with pytest.raises(sp.FramingError) as info:
        sp.decode_bcd(b"\x1a")
    assert info.value.raw == b"\x1a"


def test_denominations() -> None:
    assert sp.denomination_cents(0x01) == 1
    assert sp.denomination_cents(0x03) == 10
    assert sp.denomination_cents(0x0D) == 250
    assert sp.denomination_cents(0x16) == 500_000
    assert len(sp.DENOMINATION_CENTS) == 26
    with pytest.raises(sp.LocalProtocolError):
        sp.denomination_cents(0x1B)


def test_every_exception_code_has_meaning_and_category() -> None:
    assert set(sp.EXCEPTION_MEANING) == set(sp.ExceptionCode)
    assert set(sp.LONG_POLL_MEANING) == set(sp.LongPoll)
    assert sp.category_of(0x11) is sp.ExceptionCategory.DOOR
    assert sp.category_of(0x17) is sp.ExceptionCategory.POWER
    assert sp.category_of(0x51) is sp.ExceptionCategory.HANDPAY
    assert sp.category_of(0x7E) is sp.ExceptionCategory.GAME
    assert sp.category_of(0x69) is sp.ExceptionCategory.AFT
    assert sp.category_of(0x61) is sp.ExceptionCategory.PRINTER
    assert sp.category_of(0x3D) is sp.ExceptionCategory.TICKET
    assert sp.category_of(0x4F) is sp.ExceptionCategory.BILL
    assert sp.category_of(0x20) is sp.ExceptionCategory.TILT
    assert sp.category_of(0x54) is sp.ExceptionCategory.PROGRESSIVE
    assert sp.category_of(0x31) is sp.ExceptionCategory.MEMORY
    assert sp.category_of(0x84) is sp.ExceptionCategory.OPERATOR
    assert sp.category_of(0xEE) is sp.ExceptionCategory.OTHER
    # Only idle codes and a few genuinely uncategorised ones fall into OTHER.
    other = {c for c in sp.ExceptionCode if sp.category_of(c) is sp.ExceptionCategory.OTHER}
    assert other == {0x00, 0x1F, 0x71, 0x72, 0x80, 0x81, 0x8E, 0x8F}


def _unit_size(code: int) -> tuple[sp.MeterUnit, int]:
    spec = sp.meter_spec(code)
    return spec.unit, spec.size


def test_meter_specs() -> None:
    credits, cents, count = sp.MeterUnit.CREDITS, sp.MeterUnit.CENTS, sp.MeterUnit.COUNT
    assert _unit_size(0x00) == (credits, 4)
    assert _unit_size(0x05) == (count, 4)
    assert _unit_size(0x0D) == (cents, 5)
    assert _unit_size(0x12) == (count, 4)
    assert _unit_size(0x36) == (count, 4)
    assert _unit_size(0x40) == (count, 4)
    assert _unit_size(0x80) == (cents, 5)
    assert _unit_size(0xFA) == (credits, 4)
    assert _unit_size(0x7F) == (sp.MeterUnit.HUNDREDTHS_PERCENT, 4)
    # Reference §3.10, "cents 5 and counts": in 80-93 and A0-BD the even codes are amounts
    # in cents (5 bytes) and the odd ones their transaction counts (4 bytes), named or not.
    for code in [*range(0x80, 0x94), *range(0xA0, 0xBE)]:
        assert _unit_size(code) == ((cents, 5) if code % 2 == 0 else (count, 4)), hex(code)
    for code in sp.MeterCode:
        spec = sp.meter_spec(code)
        assert (spec.unit is cents) == code.name.endswith("_CENTS"), code.name
        assert spec.size == (5 if spec.unit is cents else 4), code.name
        if code.name.endswith("_COUNT") or code.name.startswith("GAMES_"):
            assert spec.unit is count, code.name
    assert spec.modulus == 10**8 and sp.meter_spec(0x0D).modulus == 10**10


def test_meter_names() -> None:
    """Names are the event ``meters`` keys (docs/events.md): unique, camelCase, stable."""
    names = [spec.name for spec in sp.METERS.values()]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z][A-Za-z0-9]*", name) for name in names)
    assert [sp.meter_name(c) for c in (0x00, 0x0B, 0x44, 0xA0, 0xB8, 0xA1)] == [
        "coinIn", "billsAccepted", "bills20", "aftCashableIn", "aftCashableOut",
        "aftCashableInCount"]
    assert sp.meter_name(0x7E) == "meter7E" and sp.meter_name(0xB3) == "meterB3"
    assert sp.meter_spec(0xB3).unit is sp.MeterUnit.COUNT
    assert sp.BILL_METER_DOLLARS[0x40] == 1 and sp.BILL_METER_DOLLARS[0x57] == 1_000_000


def test_layout_errors() -> None:
    with pytest.raises(sp.LocalProtocolError):
        encode_field(Field("x", Kind.BINARY, 1), 256)
    with pytest.raises(sp.LocalProtocolError):
        encode_field(Field("x", Kind.ASCII, 2), "abc")
    with pytest.raises(sp.FramingError) as info:
        decode_layout((Field("x", Kind.BCD, 1),), b"\xff", b"frame")
    assert info.value.raw == b"frame"


BAD_REQUESTS: list[Any] = [
    lambda: sp.GameConfigurationRequest(10_000),
    lambda: sp.SetDateTimeRequest(13, 1, 2024, 0, 0, 0),
    lambda: sp.SetDateTimeRequest(1, 1, 2024, 24, 0, 0),
    lambda: sp.MetersRequest(0x21),
    lambda: sp.RomSignatureRequest(0x10000),
    lambda: sp.SelectedMetersRequest(0, ()),
    lambda: sp.ExtendedMetersRequest(0, (0x10000,)),
    lambda: sp.EnhancedValidationRequest(256),
    lambda: sp.AftLockStatusRequest(256),
    lambda: sp.AftLockStatusRequest(0, 0, 10_000),
    lambda: sp.HandpayResetMethodRequest(-1),
    lambda: sp.GeneralPoll().encode(0),
    lambda: sp.LockRequest().encode(128),
    lambda: sp.PlainEvent(0x7E),
    lambda: sp.CardHeldEvent(128, True),
    lambda: sp.MeterReply(0x21, 0, ()).encode(1),
    lambda: sp.MeterReply(0x2F, 0, (sp.MeterValue(0x0D, 1, 4),)).encode(1),
    lambda: sp.MeterReply(0x6F, 0, tuple(sp.MeterValue(0, 1, 9) for _ in range(30))).encode(1),
    lambda: sp.MeterReply(0x11, 1, (sp.MeterValue(0, 1, 4),)).encode(1),
    lambda: sp.MeterReply(0x11, 0, ()).encode(1),
    lambda: sp.MeterReply(0x6F, 0, (sp.MeterValue(0x10000, 1, 4),)).encode(1),
    lambda: sp.SasVersionReply("60", "").encode(1),
    lambda: sp.EnabledGamesReply(tuple(range(127))).encode(1),
    lambda: sp.ExtendedGameInfoReply(1, 1, 0, 0, "x" * 256, "", 0).encode(1),
    lambda: sp.ExtendedGameInfoReply(1, 1, 0, 0, "x" * 250, "y", 0, tuple(range(10))).encode(1),
]


@pytest.mark.parametrize("build", BAD_REQUESTS)
def test_misuse_raises_local_errors(build: Any) -> None:
    with pytest.raises(sp.LocalProtocolError):
        build()


def test_request_properties() -> None:
    assert sp.UnknownRequest(0xEE).command == 0xEE
    assert sp.MetersRequest(0x0F).reply_length == 28
    assert sp.MetersRequest(0x1C).reply_length == 36
    assert sp.LockRequest().expects_ack and not sp.MachineInfoRequest().expects_ack
    assert sp.ExtendedMetersRequest(0, (1,), alternate=True).command == 0xAF
    assert sp.HandpayInfoReply(0, 0x05, 100, 0, 0).amount_in_cents
    assert not sp.HandpayInfoReply(0, 0x40, 100, 0, 0).amount_in_cents
    assert sp.request_length(b"\x01") is None
    assert sp.request_length(b"\x01\x2f") is None


def _crc(hex_text: str) -> bytes:
    return sp.append_crc(bytes.fromhex(hex_text))


B0_11 = sp.MultiDenomRequest(1, sp.MetersRequest(0x11))
B0_09 = sp.MultiDenomRequest(1, sp.GameEnableRequest(1, True))

BAD_FRAMES: list[tuple[Any, bytes, type[sp.RemoteProtocolError]]] = [
    (sp.decode_request, b"\x01\x01\x51", sp.LengthError),
    (sp.decode_request, _crc("01 0E 02"), sp.FramingError),
    (sp.decode_request, _crc("01 53 00 1A"), sp.FramingError),
    (sp.decode_request, _crc("01 6F 05 00 00 00 01 02"), sp.FramingError),
    (sp.decode_request, _crc("01 2F 02 00 00"), sp.FramingError),
    (sp.decode_reply_frame, b"\x01\x1a\x00", sp.LengthError),
    (sp.decode_reply_frame, _crc("01 25 00"), sp.FramingError),
    (sp.decode_reply_frame, _crc("01 54 02 36 30"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 54 09 36 30"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 56 02 02 00"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 56 03 01 00 1A"), sp.FramingError),
    (sp.decode_reply_frame, _crc("01 7E 03 15 20 24 13 45"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 7E 03 15 20 24 13 45 3A"), sp.FramingError),
    (sp.decode_reply_frame, _crc("01 B5 03 00 01 00"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 B5 0B 00 01 00 05 00 00 00 00 00 09 41"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 B5 0C 00 01 00 05 00 00 00 00 00 01 41 00"),
     sp.LengthError),
    (sp.decode_reply_frame, _crc("01 B5 10 00 01 00 05 00 00 00 00 00 01 41 00 00 01 02 01"),
     sp.LengthError),
    (sp.decode_reply_frame, _crc("01 B5 0D 00 01 00 05 00 00 00 00 00 00 00 1A 00"),
     sp.FramingError),
    (sp.decode_reply_frame, _crc("01 2F 01 00"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 2F 03 00 00 00"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 6F 04 00 00 00 00"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 2F 02 0A 00"), sp.FramingError),
    (sp.decode_reply_frame, _crc("01 11 00 00 00"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 11 00 00 00 0A"), sp.FramingError),
    (sp.decode_reply_frame, _crc("01 1F 41"), sp.LengthError),
    (lambda f: sp.decode_reply_frame(f, address=2), _crc("01 51 00 01"), sp.UnexpectedAddressError),
    (lambda f: sp.decode_reply(sp.GeneralPoll(), f, address=1), _crc("01 51 00 01"),
     sp.FramingError),
    (lambda f: sp.decode_reply(sp.LockRequest(), f, address=1), b"\x01\x01", sp.LengthError),
    (lambda f: sp.decode_reply(sp.LockRequest(), f, address=1), b"\x02", sp.UnexpectedAddressError),
    (lambda f: sp.decode_reply(sp.GameCountRequest(), f, address=1), _crc("01 55 00 01"),
     sp.FramingError),
    (sp.decode_rte_frame, b"\x01\xff\x00\x00", sp.LengthError),
    (lambda f: sp.decode_rte_frame(f, address=2), _crc("01 FF 17"), sp.UnexpectedAddressError),
    (sp.decode_rte_frame, _crc("01 FE 17"), sp.FramingError),
    (sp.decode_rte_frame, _crc("01 FF 7F 00"), sp.LengthError),
    (sp.decode_rte_frame, b"\x01\xff\x17\x00\x00", sp.CrcError),
    (sp.decode_rte_frame, _crc("01 FF 7F 00 00 00 0A"), sp.FramingError),
    # the long polls of reference §3.9b
    (sp.decode_request, _crc("01 09 00 01 02"), sp.FramingError),  # Monaco NACKs flag > 01
    (sp.decode_request, _crc("01 09 0A 01 01"), sp.FramingError),  # game not BCD
    (sp.decode_request, _crc("01 A0 00 0A"), sp.FramingError),  # Monaco NACKs non-BCD
    (sp.decode_request, _crc("01 52 0A 00"), sp.FramingError),
    (lambda f: sp.decode_request(f, sp.PollLayouts(delay=sp.DelayEncoding.BCD_MS)),
     _crc("01 2E 0A 00"), sp.FramingError),
    (sp.decode_request, _crc("01 B0 01 01"), sp.FramingError),  # no room for the base poll
    (sp.decode_request, _crc("01 B0 02 01 B0"), sp.FramingError),  # B0 inside B0
    (sp.decode_request, _crc("01 B0 03 01 11 00"), sp.FramingError),  # type R with data
    (sp.decode_request, _crc("01 B0 03 01 EE 00"), sp.FramingError),  # unknown with data
    (sp.decode_reply_frame, _crc("01 3D 00 00 00"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 3D 1A 00 00 00 00 00 00 00 00"), sp.FramingError),
    (sp.decode_reply_frame, _crc("01 A0 00 00 00 00 00"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 52 00 01 00 00"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 B2 02 02 01"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 B2 00"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 B0 02 01 11"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 B0 04 01 00 03 00"), sp.LengthError),
    (sp.decode_reply_frame, _crc("01 B0 03 01 B0 05"), sp.FramingError),
    (sp.decode_reply_frame, _crc("01 B0 04 01 11 12 34"), sp.LengthError),
    (lambda f: sp.decode_reply(B0_11, f, address=1), _crc("01 B0 06 01 12 00 00 00 01"),
     sp.FramingError),
    (lambda f: sp.decode_reply(B0_11, f, address=1), _crc("01 B0 03 01 11 05"), sp.LengthError),
    (lambda f: sp.decode_reply(B0_11, f, address=1), _crc("01 B0 03 01 11 01"), sp.LengthError),
    (lambda f: sp.decode_reply(B0_09, f, address=1), _crc("01 B0 03 01 09 05"), sp.FramingError),
]


@pytest.mark.parametrize(("decode", "frame", "error"), BAD_FRAMES)
def test_bad_frames_raise_remote_errors_with_raw_bytes(
    decode: Any, frame: bytes, error: type[sp.RemoteProtocolError]
) -> None:
    with pytest.raises(error) as info:
        decode(frame)
    assert info.value.raw == frame
    assert frame.hex(" ")[:20] in str(info.value)


def test_decode_event_data_checks_length() -> None:
    from sas_protocol.rte import decode_event_data

    with pytest.raises(sp.LengthError):
        decode_event_data(0x7F, b"\x00", b"frame")


def test_six_f_unsupported_meters_and_long_error_hex() -> None:
    frame = _crc("01 6F 08 00 00 0C 00 00 0D 00 00")
    reply = sp.decode_reply_frame(frame)
    assert isinstance(reply, sp.MeterReply)
    assert reply.unsupported == (0x0C, 0x0D) and reply.meters == {}
    assert reply.encode(1) == frame
    error = sp.FramingError("x", bytes(range(100)))
    assert "… (68 bytes elided) …" in str(error)
