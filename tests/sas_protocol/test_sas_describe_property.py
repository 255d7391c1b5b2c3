"""Properties of the decoder's verdicts on damaged frames (sas_protocol.frame_check), over
every decodable frame of the golden vectors (tests/vectors/sas_frames.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sas_protocol as sp
from sas_protocol.frame_check import expected_lengths


def _decodable() -> list[bytes]:
    path = Path(__file__).resolve().parents[1] / "vectors" / "sas_frames.json"
    out = []
    for vector in json.loads(path.read_text())["vectors"]:
        frame = bytes.fromhex(vector["hex"])
        if vector["kind"] in ("reply", "request", "rte") and len(frame) >= 4:
            try:
                described = sp.describe_frame(frame)
            except sp.RemoteProtocolError:
                continue
            if described.crc_ok:
                out.append(frame)
    return out


FRAMES = _decodable()


def test_the_vectors_give_frames_to_damage() -> None:
    assert len(FRAMES) >= 20


@given(frame=st.sampled_from(FRAMES), damage=st.integers(1, 0xFFFF))
def test_a_damaged_crc_is_reported_with_both_crcs_and_the_same_fields(
        frame: bytes, damage: int) -> None:
    found = (int.from_bytes(frame[-2:], "little") ^ damage).to_bytes(2, "little")
    bad = frame[:-2] + found
    described = sp.describe_frame(bad)
    assert described.crc_ok is False and described.unverified
    assert described.crc_mismatch is not None
    assert (described.crc_mismatch.expected, described.crc_mismatch.found) == (frame[-2:], found)
    assert described.message == sp.describe_frame(frame).message


@given(frame=st.sampled_from(FRAMES), data=st.data())
def test_a_frame_cut_short_is_truncated_never_a_bad_crc(frame: bytes,
                                                       data: st.DataObject) -> None:
    cut = data.draw(st.integers(1, len(frame) - 2))
    short = frame[:-cut]
    # a prefix that is exactly as long as another reading (a poll of the same command) is
    # that reading: only lengths no layout accepts are judged here
    if len(short) in expected_lengths(short).values():
        return
    try:
        sp.describe_frame(short)
    except sp.LengthError as exc:
        assert exc.reason.startswith("truncated frame: "), exc.reason
    except sp.CrcError as exc:  # the failure this test exists for
        pytest.fail(f"{short.hex(' ')} called a bad CRC: {exc.reason}")
