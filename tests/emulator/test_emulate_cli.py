"""``slot-agent emulate`` as a real process: first line, serving, SIGTERM, the JSON report."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from drivers.base import TransportError
from drivers.pseudo_tty import open_pty_path
from drivers.tcp import connect
from sas_protocol.crc import crc_ok
from sas_protocol.host import NoActivity
from sas_protocol.messages.meters import MeterReply
from sas_protocol.messages.requests import (
    ExtendedMetersRequest,
    GeneralPoll,
    LockRequest,
    MetersRequest,
    SelectedMetersRequest,
)
from tests.emulator.test_host_integration import HostLoop
from tests.emulator.test_parity_pty import TermiosHost
from tests.support.processes import Proc, run_cli


@contextmanager
def emulate(*args: str) -> Iterator[tuple[Proc, str]]:
    """``slot-agent emulate ARGS`` and its first output line (the address it serves)."""
    proc = Proc(["emulate", *args])
    try:
        yield proc, proc.first_line()
    finally:
        proc.kill()


def stop(proc: Proc, sig: int = signal.SIGTERM) -> int:
    proc.signal(sig)
    return proc.wait(20)


def test_tcp_serves_and_writes_the_report_on_sigterm(tmp_path: Path) -> None:
    report = tmp_path / "meters.json"
    with emulate("--tcp", "127.0.0.1:0", "--scenario", "smoke", "--seed", "3",
                 "--games-per-minute", "1200", "--report", str(report)) as (proc, first):
        host, _, port = first.rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0
        line = connect(f"tcp://{first}")
        loop = HostLoop(line)
        deadline = time.monotonic() + 20
        read: dict[int, int] = {}
        while time.monotonic() < deadline:
            loop.drain_exceptions()
            reply = loop.reply(ExtendedMetersRequest(0, (0x00, 0x05, 0x0B)))
            assert isinstance(reply, MeterReply)
            read = reply.meters
            if read[0x05] == 13:  # smoke plays 13 games
                break
        assert read[0x05] == 13
        loop.reply(LockRequest())
        line.close()
        assert stop(proc) == 0
    data = json.loads(report.read_text())
    assert data["denomination"] == 1 and data["scenario"] == "smoke"
    assert data["meters"]["00"] == read[0x00] and data["meters"]["0B"] == read[0x0B] == 2000
    assert data["wrapped_meters"]["05"] == 13
    assert set(data["meters"]) == set(data["wrapped_meters"])
    assert all(len(k) == 2 and k == k.upper() for k in data["meters"])
    assert data["totals_cents"]["coin_in"] == read[0x00]
    assert data["totals_cents"]["bills"] == 2000


def test_pty_prints_the_slave_path_and_stops_on_sigint(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    with emulate("--pty", "--scenario", "idle", "--address", "3", "--denomination", "25",
                 "--report", str(report)) as (proc, path):
        assert path.startswith("/dev/")
        line = open_pty_path(path)
        events = HostLoop(line, address=3).poll(GeneralPoll())
        assert any(isinstance(e, NoActivity) for e in events)
        line.close()
        assert stop(proc, signal.SIGINT) == 0
    data = json.loads(report.read_text())
    assert data["denomination"] == 25 and data["meters"]["05"] == 0


def test_pty_stops_on_signals_while_its_host_is_not_reading(tmp_path: Path) -> None:
    """A host that floods polls and never reads: the machine throws away the replies nobody
    reads (drivers.pseudo_tty, drop_unread) and falls behind reading the flood until the
    host's own writes time out. SIGTERM still stops it, a second signal on top changes
    nothing, and the report is written."""
    report = tmp_path / "r.json"
    with emulate("--pty", "--scenario", "idle", "--report", str(report)) as (proc, path):
        line = open_pty_path(path, write_timeout=0.5)
        try:
            line.write(b"\x80", wakeup=True)  # a poll to another address: sync (SAS §3.5)
            deadline = time.monotonic() + 60
            with pytest.raises(TransportError):  # the machine reads slower than the flood
                while time.monotonic() < deadline:  # comes, and replies to no reader
                    line.write(b"\x01", wakeup=True)
                    line.write(b"\x1c", wakeup=False)  # LP 1C, 36 bytes of reply
            proc.signal(signal.SIGTERM)
            assert stop(proc, signal.SIGINT) == 0
        finally:
            line.close()
    data = json.loads(report.read_text())
    assert data["scenario"] == "idle" and data["meters"]["05"] == 0


def test_scenario_with_end_stop_exits_by_itself(tmp_path: Path) -> None:
    scenario = tmp_path / "short.yaml"
    scenario.write_text("end: stop\noptions: {games_per_minute: 6000}\n"
                        "steps:\n  - insert_bill: 5\n  - play: {games: 4, bet: 2, win: 1}\n")
    report = tmp_path / "r.json"
    with emulate("--tcp", "127.0.0.1:0", "--scenario", str(scenario),
                 "--report", str(report)) as (proc, _):
        assert proc.wait(20) == 0
    data = json.loads(report.read_text())
    assert data["finished"] is True
    assert data["meters"]["00"] == 8 and data["meters"]["01"] == 4 and data["meters"]["0C"] == 496


def test_bad_scenario_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- fly: 3\n")
    proc = run_cli("emulate", "--tcp", "127.0.0.1:0", "--scenario", str(bad), timeout=30)
    assert proc.returncode == 2
    assert "bad.steps[0]: unknown action 'fly'" in proc.stderr
    assert proc.stdout == ""


def test_a_parity_pty_serves_a_legacy_profile_to_a_termios_host() -> None:
    with emulate("--pty", "--pty-mode", "parity", "--profile", "legacy", "--scenario",
                 "idle") as (proc, path):
        host = TermiosHost(path)
        try:
            host.send(b"\x80")
            host.send(b"\x81")
            assert host.receive(1) == b"\x00"
            host.send(SelectedMetersRequest(0, (0x00,)).encode(1))
            assert host.quiet() == b""  # legacy: no LP 2F, no answer at all
            host.send(MetersRequest(0x1C).encode(1))
            reply = host.receive(36)
            assert reply[:2] == b"\x01\x1c" and crc_ok(reply)
        finally:
            host.close()
        assert stop(proc) == 0


def test_an_unknown_profile_is_a_clear_error() -> None:
    proc = run_cli("emulate", "--tcp", "127.0.0.1:0", "--profile", "legacy,vintage",
                   timeout=30)
    assert proc.returncode == 2
    assert ("unknown profile 'vintage' (one of: modern, legacy, legacy-std, rte, busy, noisy)"
            in proc.stderr)


def test_a_negative_game_length_is_a_clear_error() -> None:
    proc = run_cli("emulate", "--tcp", "127.0.0.1:0", "--game-seconds", "-1", timeout=30)
    assert proc.returncode == 2
    assert "--game-seconds must be in [0, 3600], got -1.0" in proc.stderr


@pytest.mark.parametrize("where", ["127.0.0.1:99999", "127.0.0.1:x", "no-port"])
def test_a_tcp_address_without_a_valid_port_is_a_clear_error(where: str) -> None:
    """Not a listener on another port (99999 used to bind 99999 - 65536)."""
    proc = run_cli("emulate", "--tcp", where, timeout=30)
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout == ""
    assert (f"--tcp: expected HOST:PORT with a port from 0 to 65535, got {where!r}"
            in proc.stderr)


def test_a_scenario_file_that_is_not_text_is_a_clear_error(tmp_path: Path) -> None:
    binary = tmp_path / "scenario.yaml"
    binary.write_bytes(b"\x00\xcd\xff" * 100)
    proc = run_cli("emulate", "--tcp", "127.0.0.1:0", "--scenario", str(binary), timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.endswith(f"{binary}: cannot read scenario: not UTF-8 text\n")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("option", "message"), [
    ("--denomination", "--denomination must be positive, got 0"),
    ("--games-per-minute", "--games-per-minute must be in (0, 60000], got 0.0"),
])
def test_a_0_is_refused_not_taken_as_the_default(option: str, message: str) -> None:
    """0 used to fall back to the scenario's value (or the default) without a word."""
    proc = run_cli("emulate", "--tcp", "127.0.0.1:0", option, "0", timeout=30)
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stderr
