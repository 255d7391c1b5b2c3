"""``slot-agent decode``: the real console script, run as a subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support import ROOT
from tests.support.processes import run_cli


def decode(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("decode", *args)


def test_meter_reply_as_json() -> None:
    # LP 2F reply mixing a 4-byte credit meter (00) and a 5-byte cents meter (0D).
    result = decode("--json", "01 2F 12 00 00 00 00 12 34 56 0D 00 00 01 50 00 0C 00 00 02 50"
                    " 72 55")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["crc_ok"] is True
    assert out["command"] == "2F"
    assert out["meters"] == {"00": 123456, "0D": 15000, "0C": 250}


def test_poll_without_spaces_and_frames_without_crc() -> None:
    out = json.loads(decode("--json", "012F05000000010CFB3C").stdout)
    assert out["kind"] == "long poll" and out["crc_ok"] is True
    assert out["fields"] == {"game": 0, "codes": [0, 1, 12]}
    legacy = json.loads(decode("--json", "01", "1A").stdout)
    assert legacy["crc_ok"] is None and legacy["command"] == "1A"


def test_legacy_meter_reply_uses_meter_codes() -> None:
    out = json.loads(decode("--json", "01 11 00 01 23 45 01 FD").stdout)
    assert out["meters"] == {"00": 12345}


def test_text_output() -> None:
    result = decode("01 FF 7F 00 00 01 00 28 04")
    assert result.returncode == 0, result.stderr
    assert "Game has ended" in result.stdout
    assert "game_win: 100" in result.stdout


def test_a_bad_crc_shows_expected_found_and_the_fields_unverified() -> None:
    bad_crc = decode("--json", "01 2F 05 00 00 00 01 0C FB 3D")
    assert bad_crc.returncode == 1
    out = json.loads(bad_crc.stdout)
    assert out["crc_ok"] is False and out["unverified"] is True
    assert out["crc"] == {"expected": "FB3C", "found": "FB3D"}
    assert out["fields"] == {"game": 0, "codes": [0, 1, 12]}
    text = decode("01 2F 05 00 00 00 01 0C FB 3D")
    assert text.returncode == 1
    assert text.stdout.splitlines() == [
        "long poll: LP 2F Send selected meters for game N",
        "  address 1, command 2F, CRC BAD (expected FB 3C, found FB 3D)",
        "  SelectedMetersRequest (UNVERIFIED: the CRC does not match)",
        "    game: 0",
        "    codes: [00, 01, 0C]",
    ]


def test_a_truncated_frame_is_not_called_a_bad_crc() -> None:
    cut = decode("--json", "01 2F 12 00 00 00 00 12 34 56 0D 00 00 01 50 00 0C 00 00 02")
    assert cut.returncode == 1
    assert json.loads(cut.stdout) == {
        "error": "truncated frame: LP 2F poll or reply needs 23 bytes, got 20",
        "errorType": "LengthError",
        "hex": "012F1200000000123456" "0D0000015000" "0C000002"}
    assert "CRC" not in cut.stderr


def test_non_hex_input_is_a_usage_error_that_names_the_character() -> None:
    not_hex = decode("zz")
    assert not_hex.returncode == 2
    assert "not hex: 'z' is not a hex digit (character 1 of the input)" in not_hex.stderr
    assert not_hex.stdout == ""
    as_json = decode("--json", "01", "2X")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout) == {
        "error": "not hex: 'X' is not a hex digit (character 5 of the input)", "input": "01 2X"}


def test_codes_print_in_hex_and_meters_with_names_and_units() -> None:
    result = decode("01 2F 12 00 00 00 00 12 34 56 0D 00 00 01 50 00 0C 00 00 02 50 72 55")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "    command: 2F" in lines
    assert "    values: code 00, value 123456, size 4; code 0D, value 15000, size 5; code 0C, " \
           "value 250, size 4" in lines
    assert lines[-4:] == ["  meters:", "    00 coinIn: 123456 credits",
                          "    0D ticketInCashable: 15000 cents",
                          "    0C currentCredits: 250 credits"]


def test_the_golden_capture_decodes_frame_by_frame() -> None:
    golden = ROOT / "tests" / "vectors" / "capture_emulator.jsonl"
    result = decode("--file", str(golden), "--json")
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in result.stdout.splitlines()]
    assert items[0]["header"]["format"] == "slot-agent-capture"
    frames = items[1:]
    assert all("description" in f for f in frames)
    kinds = {f["description"]["kind"] for f in frames}
    assert {"sync poll", "general poll", "exception", "long poll", "reply"} <= kinds
    games = [f for f in frames if f["description"]["kind"] == "exception"
             and f["hex"] in ("7E", "7F")]
    assert games and all("Game has" in f["description"]["meaning"] for f in games)
    text = decode("--file", str(golden))
    assert text.returncode == 0
    assert text.stdout.splitlines()[0].startswith("capture of EGM-T1 on tcp://127.0.0.1:")
    assert "sync poll: general poll to address 0" in text.stdout
    assert text.stdout.rstrip().endswith("every frame decoded")


def test_decode_needs_hex_or_a_file_and_reports_a_missing_file(tmp_path: Path) -> None:
    assert decode().returncode == 2
    missing = decode("--file", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 2 and "No such file" in missing.stderr
    not_capture = tmp_path / "x.jsonl"
    not_capture.write_text('{"a": 1}\n')
    refused = decode("--file", str(not_capture))
    assert refused.returncode == 2 and "not a slot-agent capture" in refused.stderr


def test_a_file_that_is_not_utf8_text_is_not_a_readable_capture(tmp_path: Path) -> None:
    """decode --file and replay: 2 "the file is not a readable capture", not a traceback."""
    binary = tmp_path / "x.capture"
    binary.write_bytes(b"\x00\xcd\xff" * 100)
    for result in (decode("--file", str(binary)), run_cli("replay", "--file", str(binary))):
        assert result.returncode == 2, result.stderr
        assert result.stderr.endswith(f"{binary}: not UTF-8 text, not a capture\n")
        assert "Traceback" not in result.stderr
