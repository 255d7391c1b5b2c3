"""``slot-agent decode``: the real console script, run as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".venv" / "bin" / "slot-agent"


def decode(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "cli.main"]
    return subprocess.run(
        [*cmd, "decode", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


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


def test_bad_frames_exit_non_zero_with_a_clear_error() -> None:
    bad_crc = decode("--json", "01 2F 05 00 00 00 01 0C FB 3D")
    assert bad_crc.returncode != 0
    assert json.loads(bad_crc.stdout)["crc_ok"] is False
    assert "bad CRC" in bad_crc.stderr
    not_hex = decode("zz")
    assert not_hex.returncode != 0
    assert "not a hex byte string" in not_hex.stderr
    assert not_hex.stdout == ""
