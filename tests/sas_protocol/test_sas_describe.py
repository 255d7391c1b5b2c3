"""sas_protocol.describe: the pure half of ``slot-agent decode``."""

from __future__ import annotations

import pytest

import sas_protocol as sp


def _crc(hex_text: str) -> bytes:
    return sp.append_crc(bytes.fromhex(hex_text))


def test_parse_hex_accepts_common_spellings() -> None:
    assert sp.parse_hex("01 2F 05") == b"\x01\x2f\x05"
    assert sp.parse_hex("0x01,0x2f:05-06\n07") == bytes.fromhex("012f050607")
    for bad in ("", "zz", "123"):
        with pytest.raises(sp.LengthError):
            sp.parse_hex(bad)


def test_one_and_two_byte_frames() -> None:
    gp = sp.describe_frame(b"\x81")
    assert (gp.kind, gp.address, gp.crc_ok, gp.command) == ("general poll", 1, None, None)
    one = sp.describe_frame(b"\x11")
    assert "Slot door opened (door)" in one.meaning
    assert "unknown exception" in sp.describe_frame(b"\x01").meaning
    assert sp.describe_frame(b"\x01\x00").kind == "busy"
    poll = sp.describe_frame(b"\x01\x1a").to_json()
    assert poll["command"] == "1A" and poll["crc_ok"] is None and poll["type"] == "MetersRequest"
    with pytest.raises(sp.LengthError):
        sp.describe_frame(b"\x01\xee")
    with pytest.raises(sp.LengthError):
        sp.describe_frame(b"")


def test_meter_reply_json_uses_two_digit_hex_codes() -> None:
    frame = _crc("01 2F 12 00 00 00 00 12 34 56 0D 00 00 01 50 00 0C 00 00 02 50")
    out = sp.describe_frame(frame).to_json()
    assert out["crc_ok"] is True and out["command"] == "2F" and out["kind"] == "reply"
    assert out["meters"] == {"00": 123456, "0D": 15000, "0C": 250}
    assert out["fields"]["values"][1] == {"code": 13, "value": 15000, "size": 5}


def test_rte_and_other_replies() -> None:
    out = sp.describe_frame(sp.encode_rte_frame(1, sp.GameStartedEvent(5, 100, 0, 0))).to_json()
    assert out["kind"] == "real-time event" and out["command"] == "7E"
    assert out["fields"]["credits_wagered"] == 5
    info = sp.describe_frame(sp.HandpayInfoReply(0, 0x40, 5, 0, 0).encode(1)).to_json()
    assert info["fields"]["reserved"] == "00" * 10
    assert "meters" not in info
    unknown = sp.describe_frame(sp.append_crc(b"\x01\x0e\x00"))
    assert unknown.kind == "long poll"
    odd = sp.describe_frame(_crc("01 AF 04 00 00 01 00"))
    assert odd.message == sp.ExtendedMetersRequest(0, (1,), alternate=True)
    assert odd.meaning.startswith("LP AF ")


def test_bad_frames_raise_with_the_crc_error_first() -> None:
    bad_poll = bytearray(_crc("01 2F 05 00 00 00 01 0C"))
    bad_poll[-1] ^= 1
    with pytest.raises(sp.CrcError) as info:
        sp.describe_frame(bytes(bad_poll))
    assert "long poll" in str(info.value)
    with pytest.raises(sp.FramingError):
        sp.describe_frame(_crc("01 25 00"))
