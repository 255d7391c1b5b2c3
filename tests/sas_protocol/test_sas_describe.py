"""sas_protocol.describe: the pure half of ``slot-agent decode``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import sas_protocol as sp


def _crc(hex_text: str) -> bytes:
    return sp.append_crc(bytes.fromhex(hex_text))


def test_parse_hex_accepts_common_spellings() -> None:
    assert sp.parse_hex("01 2F 05") == b"\x01\x2f\x05"
    assert sp.parse_hex("0x01,0x2f:05-06\n07") == bytes.fromhex("012f050607")


@pytest.mark.parametrize(("text", "message"), [
    ("", "not hex: no bytes given"),
    ("zz", "not hex: 'z' is not a hex digit (character 1 of the input)"),
    ("01 2G", "not hex: 'G' is not a hex digit (character 5 of the input)"),
    ("123", "not hex: 3 hex digits, an odd number (each byte is two digits, e.g. 01 not 1)"),
])
def test_non_hex_input_is_named_never_echoed_as_bytes(text: str, message: str) -> None:
    with pytest.raises(sp.HexInputError) as info:
        sp.parse_hex(text)
    assert str(info.value) == message
    assert info.value.raw == b""


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


def test_a_bad_crc_is_described_with_expected_and_found_and_unverified_fields() -> None:
    bad_poll = bytearray(_crc("01 2F 05 00 00 00 01 0C"))  # CRC FB 3C
    bad_poll[-1] ^= 1
    out = sp.describe_frame(bytes(bad_poll)).to_json()
    assert out["crc_ok"] is False and out["unverified"] is True
    assert out["crc"] == {"expected": "FB3C", "found": "FB3D"}
    assert out["kind"] == "long poll" and out["fields"] == {"game": 0, "codes": [0, 1, 12]}
    reply = bytearray(_crc("01 2F 12 00 00 00 00 12 34 56 0D 00 00 01 50 00 0C 00 00 02 50"))
    reply[-2] ^= 0xFF
    described = sp.describe_frame(bytes(reply))
    assert described.unverified and described.meters == {0x00: 123456, 0x0D: 15000, 0x0C: 250}
    rte = bytearray(sp.encode_rte_frame(1, sp.GameStartedEvent(5, 100, 0, 0)))
    rte[-1] ^= 0x10
    assert sp.describe_frame(bytes(rte)).to_json()["fields"]["credits_wagered"] == 5


@pytest.mark.parametrize(("frame", "message"), [
    # a meter reply that lost its last 3 bytes: truncated, not "bad CRC"
    ("01 2F 12 00 00 00 00 12 34 56 0D 00 00 01 50 00 0C 00 00 02",
     "truncated frame: LP 2F poll or reply needs 23 bytes, got 20"),
    ("01 2F 05 00 00 00", "truncated frame: LP 2F poll or reply needs 10 bytes, got 6"),
    ("01 1F 00 00", "truncated frame: LP 1F reply needs 24 bytes, got 4"),
    ("01 FF 7F 00 00", "truncated frame: RTE 7F frame needs 9 bytes, got 5"),
    ("01 2F 05 00 00 00 01 0C FB 3C 00", "frame too long: LP 2F poll or reply is 10 bytes, "
                                         "got 11 (1 extra)"),
    ("01 54 03 36", "truncated frame: LP 54 reply needs 8 bytes, got 4"),
    ("01 11 00 01", "truncated frame: LP 11 reply needs 8 bytes, got 4"),  # legacy meters
    ("01 2F", "truncated frame: LP 2F poll or reply needs a length byte, got 2"),
])
def test_a_short_or_long_frame_is_named_by_the_layout_it_misses(frame: str,
                                                                 message: str) -> None:
    with pytest.raises(sp.LengthError) as info:
        sp.describe_frame(bytes.fromhex(frame))
    assert info.value.reason == message


def test_frames_that_no_length_explains_keep_the_decoder_error() -> None:
    with pytest.raises(sp.FramingError):
        sp.describe_frame(_crc("01 25 00"))
    # no reply layout and a bad CRC: both said, with the CRCs
    with pytest.raises(sp.CrcError,
                       match=r"bad CRC \(expected .. .., found 02 03\), and even with"):
        sp.describe_frame(bytes.fromhex("01 EE 05 01 02 03"))


def test_meters_carry_their_names_and_units() -> None:
    frame = _crc("01 2F 12 00 00 00 00 12 34 56 0D 00 00 01 50 00 0C 00 00 02 50")
    names = sp.describe_frame(frame).to_json()["meterNames"]
    assert names["00"] == {"name": "coinIn", "unit": "credits"}
    assert names["0D"] == {"name": "ticketInCashable", "unit": "cents"}
    from sas_protocol.frame_check import meter_label

    assert meter_label(0x05) == ("gamesPlayed", "count")
    assert meter_label(0xEE) == ("meterEE", "credits")


def _verdict_vectors() -> list[dict[str, Any]]:
    path = Path(__file__).resolve().parents[1] / "vectors" / "decode_verdicts.json"
    vectors: list[dict[str, Any]] = json.loads(path.read_text())["vectors"]
    return vectors


@pytest.mark.parametrize("vector", _verdict_vectors(), ids=lambda v: v["what"])
def test_golden_verdicts_on_damaged_frames(vector: dict[str, Any]) -> None:
    """tests/vectors/decode_verdicts.json: what a technician is told of each damaged frame."""
    frame = bytes.fromhex(vector["hex"])
    expected = vector["verdict"]
    if "error" in expected:
        with pytest.raises(sp.RemoteProtocolError) as info:
            sp.describe_frame(frame)
        assert {"error": type(info.value).__name__, "reason": info.value.reason} == expected
        return
    out = sp.describe_frame(frame).to_json()
    got = {"crc_ok": out["crc_ok"], "crc": out.get("crc"), "unverified": out.get("unverified",
                                                                                  False),
           "kind": out["kind"], "type": out.get("type")}
    if "fields" in out:
        got["fields"] = out["fields"]
    assert got == expected
