"""``slot-agent diag`` as a real process: direct against the emulator, a wrong port, a hub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.ops.diagnostics import CHECK_IDS
from tests.support.hub import HubHarness, hub_in_thread
from tests.support.processes import run_cli, start_emulator, write_agent_config
from tests.support.tokens import OPERATOR, for_terminal


@pytest.fixture
def emulator() -> Iterator[str]:
    proc, url = start_emulator("--unsupported-polls", "6F,2F")
    try:
        yield url
    finally:
        proc.stop()


def _checks(stdout: str) -> dict[str, dict[str, Any]]:
    report = json.loads(stdout)
    return {c["id"]: c for c in report["checks"]}


def test_direct_against_the_emulator_passes_every_check(
        tmp_path: Path, emulator: str, hub: HubHarness) -> None:
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
    # the emulator was told to ignore LP 6F and 2F: diag must say so (it steps down as the
    # agent does, 6F first)
    assert checks["ignored_polls"]["status"] == "warn"
    assert checks["ignored_polls"]["data"]["ignored"] == ["LP 6F", "LP 2F"]
    assert checks["link_errors"]["data"]["lastFrames"]
    assert checks["line_priority"]["status"] == "skip"  # no line process: diag polled itself
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


def test_bad_token_fails_authentication(tmp_path: Path, emulator: str, hub: HubHarness) -> None:
    cfg = write_agent_config(tmp_path, port=emulator, hub=hub, token="not-a-known-token")
    result = run_cli("diag", "--config", str(cfg), "--json")
    assert result.returncode == 1
    checks = _checks(result.stdout)
    assert checks["uplink_tcp"]["status"] == "ok"
    assert checks["uplink_auth"]["status"] == "fail"
    assert "401" in checks["uplink_auth"]["detail"]
    assert "token" in checks["uplink_auth"]["hint"]
    assert "not-a-known-token" not in result.stdout


def _closed_url() -> str:
    """A ws:// URL on a local port nothing listens on."""
    import socket

    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    return f"ws://127.0.0.1:{port}/ws/terminal"


def test_every_hub_url_is_checked_and_one_usable_is_enough(
        tmp_path: Path, emulator: str, hub: HubHarness) -> None:
    unreachable = _closed_url()
    cfg = write_agent_config(tmp_path, port=emulator, hub=hub)
    cfg.write_text(cfg.read_text().replace(f"url: {hub.terminal_url}",
                                           f"url: [{unreachable}, {hub.terminal_url}]"))
    result = run_cli("diag", "--config", str(cfg), "--json")
    human = run_cli("diag", "--config", str(cfg))
    assert result.returncode == 0, result.stdout + result.stderr
    assert human.returncode == 0
    checks = _checks(result.stdout)
    assert list(checks) == [cid for cid, _ in CHECK_IDS]
    # the rows report the instance the agent gets its session on, named
    auth = checks["uplink_auth"]
    assert auth["status"] == "ok" and auth["data"]["url"] == hub.terminal_url
    assert auth["detail"].startswith(f"{hub.terminal_url}: the hub welcomed terminal EGM-T1")
    assert checks["uplink_tcp"]["detail"].startswith(f"{hub.terminal_url}: connected to")
    urls = checks["uplink_urls"]
    assert urls["status"] == "warn"
    assert urls["data"]["using"] == hub.terminal_url
    assert urls["data"]["urls"][0]["url"] == unreachable
    assert urls["data"]["urls"][0]["ok"] is False
    assert urls["data"]["urls"][0]["failedStep"] == "tcp"
    assert urls["data"]["urls"][1] == {"url": hub.terminal_url, "ok": True,
                                       "failedStep": None, "detail": None}
    assert f"{unreachable}: TCP failed: cannot connect" in urls["detail"]
    assert "WARN  uplink: every hub URL (failover)" in human.stdout
    assert unreachable in human.stdout

    # no instance reachable: the uplink rows fail on the first URL, exit 1
    other = _closed_url()
    cfg.write_text(cfg.read_text().replace(hub.terminal_url, other))
    result = run_cli("diag", "--config", str(cfg), "--json")
    assert result.returncode == 1
    checks = _checks(result.stdout)
    assert checks["uplink_tcp"]["status"] == "fail"
    assert checks["uplink_tcp"]["data"] == {"url": unreachable}
    assert checks["uplink_urls"]["status"] == "fail"
    assert [u["failedStep"] for u in checks["uplink_urls"]["data"]["urls"]] == ["tcp", "tcp"]


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
    daemon = checks["daemon"]
    assert daemon["status"] == "fail" and daemon["data"]["state"] == "hung"
    assert "within 0.5 s" in daemon["detail"] and "stuck" in daemon["hint"]


def test_a_token_bound_to_another_terminal_fails_with_the_binding_hint(
        tmp_path: Path, emulator: str) -> None:
    # the token is EGM-OTHER's; we are EGM-T1
    with hub_in_thread(tmp_path, for_terminal("EGM-OTHER")) as other:
        cfg = write_agent_config(tmp_path, port=emulator, hub=other)
        result = run_cli("diag", "--config", str(cfg), "--json")
        human = run_cli("diag", "--config", str(cfg))
    assert result.returncode == 1
    auth = _checks(result.stdout)["uplink_auth"]
    assert auth["status"] == "fail"
    assert auth["data"] == {"verdict": "forbidden", "url": other.terminal_url}
    assert "refused hello for terminal EGM-T1: forbidden" in auth["detail"]
    assert "bound to another terminal" in auth["hint"]
    assert "FAIL  uplink: authentication" in human.stdout
    assert other.terminal_token not in result.stdout + human.stdout


def test_the_right_binding_is_welcomed(tmp_path: Path, emulator: str, hub: HubHarness) -> None:
    cfg = write_agent_config(tmp_path, port=emulator, hub=hub)
    result = run_cli("diag", "--config", str(cfg), "--json")
    auth = _checks(result.stdout)["uplink_auth"]
    assert auth["status"] == "ok"
    assert auth["detail"].startswith("the hub welcomed terminal EGM-T1 with this token")


def test_an_outbox_of_another_terminal_fails_diag_and_check_config(
        tmp_path: Path, emulator: str) -> None:
    from agent.store.outbox import Outbox

    cfg = write_agent_config(tmp_path, port=emulator)
    Outbox.open(str(tmp_path / "outbox.db"), terminal_id="EGM-OLD").close()
    result = run_cli("diag", "--config", str(cfg), "--json")
    assert result.returncode == 1
    outbox = _checks(result.stdout)["outbox"]
    assert outbox["status"] == "fail"
    assert "belongs to terminal 'EGM-OLD', not 'EGM-T1'" in outbox["detail"]
    assert "new outbox.path" in outbox["hint"]
    checked = run_cli("check-config", "--config", str(cfg))
    assert checked.returncode == 2
    assert "error: outbox.path:" in checked.stderr and "'EGM-OLD'" in checked.stderr
    run = run_cli("run", "--config", str(cfg), timeout=30)  # what check-config predicted
    assert run.returncode != 0 and "EGM-OLD" in run.stdout + run.stderr


def test_daemon_running_with_its_tcp_link_refused_blames_the_link_not_the_cable(
        tmp_path: Path) -> None:
    from tests.support.processes import Proc
    from tests.support.waits import wait_until

    emu, url = start_emulator()
    cfg = write_agent_config(tmp_path, port=url)
    daemon = Proc(["run", "--config", str(cfg)])
    try:
        daemon.wait_for(lambda s: "slot-agent running" in s, timeout=30)
        emu.stop()  # the machine's serial server goes away: TCP refused from now on

        def refused() -> bool:
            result = run_cli("diag", "--config", str(cfg), "--json")
            return "refused" in _checks(result.stdout)["serial_port"]["detail"]

        wait_until(refused, timeout=30, what="the daemon reports the refused link")
        result = run_cli("diag", "--config", str(cfg), "--json")
    finally:
        daemon.stop()
        emu.stop()
    report = json.loads(result.stdout)
    assert report["source"] == "daemon" and result.returncode == 1
    checks = _checks(result.stdout)
    assert checks["daemon"]["status"] == "ok" and checks["daemon"]["data"]["state"] == "running"
    serial = checks["serial_port"]
    assert serial["status"] == "fail"
    assert "in the running agent:" in serial["detail"]
    assert "was refused: nothing listens there" in serial["hint"]
    assert "cable" not in serial["hint"]
    assert checks["general_poll"]["status"] == "skip"


def test_a_stopped_daemon_is_reported_as_stopped_or_stale(tmp_path: Path) -> None:
    import socket

    cfg = write_agent_config(tmp_path, port="/dev/ttyNOPE7")
    socket_path = next(line.split(": ", 1)[1] for line in cfg.read_text().splitlines()
                       if line.startswith("control_socket"))
    stopped = _checks(run_cli("diag", "--config", str(cfg), "--json").stdout)["daemon"]
    assert stopped["status"] == "warn" and stopped["data"]["state"] == "stopped"
    assert "systemctl" in stopped["hint"]
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(socket_path)
    left.close()  # the socket file a killed daemon leaves behind
    stale = _checks(run_cli("diag", "--config", str(cfg), "--json").stdout)["daemon"]
    assert stale["status"] == "warn" and stale["data"]["state"] == "stale"
    assert "stale socket" in stale["detail"]
    direct = _checks(run_cli("diag", "--config", str(cfg), "--json", "--direct").stdout)
    assert direct["daemon"]["status"] == "skip"


def test_with_the_daemons_session_up_diag_does_not_replace_it(
        tmp_path: Path, emulator: str, hub: HubHarness) -> None:
    from agent.ops.control import control_request
    from tests.support.processes import Proc
    from tests.support.waits import wait_until

    cfg = write_agent_config(tmp_path, port=emulator, hub=hub)
    # a second hub instance the agent would fail over to, firewalled (nothing listens)
    unreachable = _closed_url()
    cfg.write_text(cfg.read_text().replace(f"url: {hub.terminal_url}",
                                           f"url: [{hub.terminal_url}, {unreachable}]"))
    socket_path = next(line.split(": ", 1)[1] for line in cfg.read_text().splitlines()
                       if line.startswith("control_socket"))
    daemon = Proc(["run", "--config", str(cfg)])
    try:
        daemon.wait_for(lambda s: "slot-agent running" in s, timeout=30)

        def uplink() -> dict[str, Any]:
            return dict(control_request(socket_path, "status", timeout=10)["uplink"] or {})

        wait_until(lambda: bool(uplink().get("connected")), what="the daemon's session")
        before = uplink()
        result = run_cli("diag", "--config", str(cfg), "--json")
        after = uplink()
    finally:
        daemon.stop()
    # no hello from diag: the daemon's session is the same one (no 4002, no reconnect)
    assert after["connected"] and after["sessions"] == before["sessions"]
    assert after["reconnects"] == before["reconnects"]
    checks = _checks(result.stdout)
    auth = checks["uplink_auth"]
    assert auth["status"] == "ok"
    assert "the daemon's session is welcomed as EGM-T1" in auth["detail"]
    assert auth["data"] == {"url": hub.terminal_url}
    assert checks["daemon"]["data"]["state"] == "running"
    # the failover instance is checked too: a warning naming it, and diag still exits 0
    assert result.returncode == 0, result.stdout + result.stderr
    urls = checks["uplink_urls"]
    assert urls["status"] == "warn" and urls["data"]["using"] == hub.terminal_url
    assert [(u["url"], u["failedStep"]) for u in urls["data"]["urls"]] == [
        (hub.terminal_url, None), (unreachable, "tcp")]


def test_actions_the_hub_delivers_to_diag_are_rejected_not_lost(
        tmp_path: Path, emulator: str, hub: HubHarness) -> None:
    import sqlite3

    from websockets.sync.client import connect

    # an operator queues a lock for EGM-T1 while its agent is not running
    with connect(hub.client_url,
                 additional_headers={"Authorization": f"Bearer {OPERATOR}"},
                 proxy=None) as client:
        client.send(json.dumps({"type": "action", "id": "act-diag-1", "terminalId": "EGM-T1",
                                "action": "lock", "params": {}}))
        while True:
            message = json.loads(client.recv(timeout=10))
            if message.get("type") == "actionAck" and message.get("id") == "act-diag-1":
                assert message["status"] == "queued"
                break
    cfg = write_agent_config(tmp_path, port=emulator, hub=hub)
    result = run_cli("diag", "--config", str(cfg), "--json")
    auth = _checks(result.stdout)["uplink_auth"]
    assert auth["status"] == "warn"
    assert auth["data"] == {"actionsRejected": ["act-diag-1"], "url": hub.terminal_url}
    assert "send them again" in auth["hint"]
    conn = sqlite3.connect(f"{hub.config.database.resolve().as_uri()}?mode=ro", uri=True)
    try:
        status, stored = conn.execute("SELECT status, result FROM actions WHERE id = ?",
                                      ("act-diag-1",)).fetchone()
    finally:
        conn.close()
    assert status == "rejected"
    assert "slot-agent diag" in json.loads(stored)["error"]
