"""``slot-agent diag`` as a real process: direct against the emulator, a wrong port, a hub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slot_agent_procs import HubHandle, run_cli, start_emulator, write_agent_config

from agent.ops.diagnostics import CHECK_IDS


@pytest.fixture
def emulator() -> Iterator[str]:
    proc, url = start_emulator("--unsupported-polls", "2F")
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubHandle]:
    handle = HubHandle(tmp_path, "EGM-T1")
    try:
        yield handle
    finally:
        handle.stop()


def _checks(stdout: str) -> dict[str, dict[str, Any]]:
    report = json.loads(stdout)
    return {c["id"]: c for c in report["checks"]}


def test_direct_against_the_emulator_passes_every_check(
        tmp_path: Path, emulator: str, hub: HubHandle) -> None:
    cfg = write_agent_config(tmp_path, port=emulator, hub=hub)
    result = run_cli("diag", "--config", str(cfg), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["source"] == "direct" and report["ok"] is True
    checks = _checks(result.stdout)
    assert list(checks) == [cid for cid, _ in CHECK_IDS]
    assert checks["general_poll"]["status"] == "ok"
    assert checks["sas_version"]["data"] == {"sasVersion": "602", "serialNumber": "EMU0000001"}
    assert checks["machine_info"]["data"]["denominationCents"] == 1
    assert set(checks["meters"]["data"]["meters"]) >= {"coinIn", "coinOut", "gamesPlayed"}
    # the emulator was told to ignore LP 2F: diag must say so
    assert checks["ignored_polls"]["status"] == "warn"
    assert checks["ignored_polls"]["data"]["ignored"] == ["LP 2F"]
    assert checks["link_errors"]["data"]["lastFrames"]
    assert checks["outbox"]["status"] == "warn"  # no daemon has created it yet
    assert checks["uplink_auth"]["status"] == "ok"
    assert checks["uplink_tls"]["status"] == "warn"  # plain ws:// on a bench
    assert checks["clock_skew"]["status"] == "ok"
    assert hub.terminal_token not in result.stdout + result.stderr


def test_human_table_names_the_checks(tmp_path: Path, emulator: str) -> None:
    cfg = write_agent_config(tmp_path, port=emulator)
    result = run_cli("diag", "--config", str(cfg))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "polled the machine directly" in result.stdout
    for _, title in CHECK_IDS:
        assert title in result.stdout
    assert "LP 2F" in result.stdout and "hint:" in result.stdout


def test_wrong_serial_port_fails_with_a_hint(tmp_path: Path) -> None:
    cfg = write_agent_config(tmp_path, port="/dev/ttyNOPE7")
    result = run_cli("diag", "--config", str(cfg), "--json")
    assert result.returncode == 1
    checks = _checks(result.stdout)
    assert checks["serial_port"]["status"] == "fail"
    assert "/dev/ttyNOPE7" in checks["serial_port"]["detail"]
    assert "by-id" in checks["serial_port"]["hint"]
    assert checks["general_poll"]["status"] == "skip"

    human = run_cli("diag", "--config", str(cfg))
    assert human.returncode == 1
    assert "FAIL" in human.stdout and "hint:" in human.stdout


def test_silent_machine_fails_the_general_poll_with_the_frames_sent(tmp_path: Path) -> None:
    # A TCP server that accepts and never answers: the port opens, the machine is silent.
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    try:
        cfg = write_agent_config(tmp_path, port=f"tcp://127.0.0.1:{server.getsockname()[1]}")
        result = run_cli("diag", "--config", str(cfg), "--json")
    finally:
        server.close()
    assert result.returncode == 1
    checks = _checks(result.stdout)
    assert checks["serial_port"]["status"] == "ok"
    assert checks["general_poll"]["status"] == "fail"
    assert "machines[].address" in checks["general_poll"]["hint"]
    frames = checks["link_errors"]["data"]["lastFrames"]
    assert frames and all(f["dir"] == "tx" for f in frames)
    assert checks["link_errors"]["data"]["counters"]["timeout"] >= 1


def test_bad_token_fails_authentication(tmp_path: Path, emulator: str, hub: HubHandle) -> None:
    hub.token_file.write_text("not-a-known-token\n")
    cfg = write_agent_config(tmp_path, port=emulator, hub=hub)
    result = run_cli("diag", "--config", str(cfg), "--json")
    assert result.returncode == 1
    checks = _checks(result.stdout)
    assert checks["uplink_tcp"]["status"] == "ok"
    assert checks["uplink_auth"]["status"] == "fail"
    assert "401" in checks["uplink_auth"]["detail"]
    assert "token" in checks["uplink_auth"]["hint"]
    assert "not-a-known-token" not in result.stdout


def test_invalid_config_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("terminal_id: x\nmachines: []\n")
    result = run_cli("diag", "--config", str(cfg))
    assert result.returncode == 2
    assert "machines" in result.stderr




def test_a_daemon_that_does_not_answer_keeps_diag_off_the_port(tmp_path: Path) -> None:
    import threading

    from agent.ops.control import ControlServer

    cfg = write_agent_config(tmp_path, port="/dev/ttyNOPE7")
    socket_path = next(line.split(": ", 1)[1] for line in cfg.read_text().splitlines()
                       if line.startswith("control_socket"))
    release = threading.Event()

    def stuck(params: dict[str, Any]) -> dict[str, Any]:
        release.wait(30)  # a daemon whose handler hangs (released at the end of the test)
        return {}

    server = ControlServer(socket_path, {"diag": stuck})
    server.start()
    try:
        result = run_cli("diag", "--config", str(cfg), "--json", "--timeout", "0.5")
    finally:
        release.set()
        server.close()
    assert result.returncode == 1
    checks = _checks(result.stdout)
    serial = checks["serial_port"]
    assert serial["status"] == "fail"
    assert "did not answer" in serial["detail"]
    assert "owns the serial line" in serial["hint"]
    # it never tried the (missing) device: the error is about the daemon, not the port
    assert "No such file" not in serial["detail"]
