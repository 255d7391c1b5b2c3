"""``slot-agent capture``, ``decode --file`` and ``replay`` against a running daemon polling
the emulator: the field workflow of docs/operations.md, end to end, as real processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.ops.control import ControlRequestError, control_request
from api.capture import parse_capture
from tests.support.processes import Proc, run_cli, start_emulator, write_agent_config


@pytest.fixture
def emulator() -> Iterator[str]:
    proc, url = start_emulator()
    try:
        yield url
    finally:
        proc.stop()


def _capture_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_capture_from_the_running_daemon_then_decode_and_replay(
        tmp_path: Path, emulator: str) -> None:
    cfg = write_agent_config(tmp_path, port=emulator)
    out = tmp_path / "line.capture"
    proc = Proc(["run", "--config", str(cfg)])
    try:
        proc.wait_for(lambda s: "slot-agent running" in s, timeout=30)
        socket_path = next(line.split(": ", 1)[1] for line in cfg.read_text().splitlines()
                           if line.startswith("control_socket"))
        for bad in ("1", 0, 601, True):
            with pytest.raises(ControlRequestError, match="seconds must be a number above 0"):
                control_request(socket_path, "capture", {"seconds": bad})
        too_long = run_cli("capture", "--config", str(cfg), "--seconds", "601", "--out",
                           str(out))
        assert too_long.returncode == 2 and "at most 600" in too_long.stderr
        result = run_cli("capture", "--config", str(cfg), "--seconds", "1.5", "--out",
                         str(out))
        assert result.returncode == 0, result.stderr
        piped = run_cli("capture", "--config", str(cfg), "--seconds", "0.5", "--out", "-")
        assert piped.returncode == 0, piped.stderr
    finally:
        proc.stop()
    assert "captured" in result.stderr and str(out) in result.stderr
    streamed = parse_capture(piped.stdout.splitlines(), "stdout")
    assert streamed.header["terminalId"] == "EGM-T1" and streamed.frames
    lines = _capture_lines(out)
    header, frames = lines[0], lines[1:]
    assert header["format"] == "slot-agent-capture" and header["version"] == 1
    assert header["terminalId"] == "EGM-T1" and header["port"] == emulator
    assert header["addresses"] == [1] and header["dropped"] == 0
    assert {f["dir"] for f in frames} == {"tx", "rx"}
    general_polls = [f for f in frames if f["dir"] == "tx" and f["hex"] == "81"]
    assert general_polls and all(f["wakeup"] == [0] for f in general_polls)
    assert all(f["wakeup"] == [] for f in frames if f["dir"] == "rx")
    times = [float(str(f["t"])) for f in frames]
    assert times == sorted(times) and times[0] >= 0

    decoded = run_cli("decode", "--file", str(out), "--json")
    assert decoded.returncode == 0, decoded.stdout + decoded.stderr
    items = [json.loads(line) for line in decoded.stdout.splitlines()]
    assert items[0]["header"]["terminalId"] == "EGM-T1"
    kinds = {item["description"]["kind"] for item in items[1:]}
    assert "general poll" in kinds
    text = run_cli("decode", "--file", str(out))
    assert text.returncode == 0 and "every frame decoded" in text.stdout
    assert "tx -> address 1  81 (wakeup)" in text.stdout

    replayed = run_cli("replay", "--file", str(out))
    assert replayed.returncode == 0, replayed.stderr
    events = [json.loads(line) for line in replayed.stdout.splitlines()]
    names = [e["name"] for e in events]
    assert names and names[0] == "machineLinkUp"
    assert "events from" in replayed.stderr


def test_capture_without_a_daemon_says_so_and_writes_nothing(tmp_path: Path) -> None:
    cfg = write_agent_config(tmp_path, port="/dev/ttyNOPE7")
    out = tmp_path / "x.capture"
    result = run_cli("capture", "--config", str(cfg), "--seconds", "1", "--out", str(out))
    assert result.returncode == 1
    assert "is slot-agent running?" in result.stderr
    assert not out.exists()


def test_capture_needs_a_control_socket(tmp_path: Path) -> None:
    cfg = write_agent_config(tmp_path, port="/dev/ttyNOPE7", extra="")
    text = "\n".join(line for line in cfg.read_text().splitlines()
                     if not line.startswith("control_socket"))
    cfg.write_text(text + "\ncontrol_socket: null\n")
    result = run_cli("capture", "--config", str(cfg), "--seconds", "1", "--out", "-")
    assert result.returncode == 2
    assert "control_socket is not set" in result.stderr and result.stdout == ""


def test_an_out_file_that_cannot_be_written_is_refused_before_the_capture(
        tmp_path: Path) -> None:
    """Exit 2 at once, not 1 after asking the daemon (or after N seconds of capture)."""
    cfg = write_agent_config(tmp_path, port="/dev/ttyNOPE7")
    out = tmp_path / "no-such-dir" / "x.capture"
    result = run_cli("capture", "--config", str(cfg), "--seconds", "1", "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"slot-agent capture: cannot write {out}: no directory "
                             f"{out.parent}\n")
    here = run_cli("capture", "--config", str(cfg), "--seconds", "1", "--out", str(tmp_path))
    assert here.returncode == 2 and "it is a directory" in here.stderr
