"""``slot-agent run`` as a real process against the emulator (TCP) and a reference hub."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hub import HubHarness
from tests.support.processes import (
    Proc,
    json_logs,
    run_cli,
    short_dir,
    start_emulator,
    write_agent_config,
)
from tests.support.waits import wait_until


@pytest.fixture
def emulator() -> Iterator[str]:
    proc, url = start_emulator("--games-per-minute", "600", "--seed", "3")
    try:
        yield url
    finally:
        proc.stop()


def _running(proc: Proc) -> dict[str, object]:
    line = proc.wait_for(lambda s: "slot-agent running" in s, timeout=30)
    return json_logs([line])[0]


def test_events_reach_the_hub_and_sigterm_stops_with_agent_stopping(
        tmp_path: Path, emulator: str, hub: HubHarness) -> None:
    cfg = write_agent_config(tmp_path, port=emulator, hub=hub)
    proc = Proc(["run", "--config", str(cfg)])
    try:
        started = _running(proc)
        assert started["terminal"] == "EGM-T1" and started["metrics_port"]
        wait_until(lambda: "betPlaced" in hub.event_names("EGM-T1"), what="a betPlaced at the hub")
        names = hub.event_names("EGM-T1")
        assert names.count("agentStarted") == 1
        assert {"machineLinkUp", "machineIdentified"} <= set(names)
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.stop()
    names = hub.event_names("EGM-T1")
    assert "agentStopping" in names
    # agentStopping is the last thing the agent sent (the hub adds deviceOffline after it)
    assert [n for n in names if n != "deviceOffline"][-1] == "agentStopping"
    logs = json_logs(proc.out_lines)
    assert any(r.get("msg") == "slot-agent stopped" for r in logs)
    assert hub.terminal_token not in "\n".join(proc.out_lines + proc.err_lines)


def test_sighup_applies_the_log_level_and_names_what_needs_a_restart(
        tmp_path: Path, emulator: str) -> None:
    cfg = write_agent_config(tmp_path, port=emulator, level="info")
    proc = Proc(["run", "--config", str(cfg)])
    try:
        _running(proc)
        text = cfg.read_text().replace("level: info", "level: debug")
        cfg.write_text(text + "outbox_unused: 1\n")  # an invalid file is refused as a whole
        proc.signal(signal.SIGHUP)
        refused = proc.wait_for(lambda s: "reload refused" in s, timeout=20)
        assert "outbox_unused" in refused
        cfg.write_text(text.replace("  path:", "  max_events: 5000\n  path:"))
        proc.signal(signal.SIGHUP)
        line = proc.wait_for(lambda s: "configuration reloaded" in s, timeout=20)
        record = json_logs([line])[0]
        assert record["applied"] == ["logging.level"]
        assert record["restart_required"] == ["outbox.max_events"]
        # the new level is in effect: the daemon says so at debug level
        assert any(r.get("level") == "DEBUG" for r in json_logs(proc.out_lines))
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.stop()


def test_sd_notify_ready_status_and_watchdog(tmp_path: Path, emulator: str) -> None:
    sock_path = short_dir() / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    cfg = write_agent_config(tmp_path, port=emulator)
    proc = Proc(["run", "--config", str(cfg)],
                env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"})
    seen: list[str] = []
    try:
        def receive_until(key: str) -> str:
            while True:
                message = sock.recv(4096).decode()
                seen.append(message)
                if key in message.splitlines() or any(
                        line.startswith(key) for line in message.splitlines()):
                    return message
        ready = receive_until("READY=1")
        assert any(line.startswith("STATUS=link ") for line in ready.splitlines())
        status = receive_until("STATUS=")
        assert "outbox" in status and "uplink off" in status
        receive_until("WATCHDOG=1")
        proc.signal(signal.SIGTERM)
        receive_until("STOPPING=1")
        assert proc.wait(timeout=20) == 0
    finally:
        proc.stop()
        sock.close()
    # READY comes first: nothing claimed readiness before the outbox and the line were up
    assert seen[0].startswith("READY=1")


def test_diag_asks_the_running_daemon_over_the_control_socket(
        tmp_path: Path, emulator: str, hub: HubHarness) -> None:
    cfg = write_agent_config(tmp_path, port=emulator, hub=hub)
    proc = Proc(["run", "--config", str(cfg)])
    try:
        _running(proc)
        # the discovery's meter read (after identification and the ticket read) ends in a
        # meterSnapshot: only then has the daemon asked every money poll diag reports on
        wait_until(lambda: "meterSnapshot" in hub.event_names("EGM-T1"), what="discovery")
        result = run_cli("diag", "--config", str(cfg), "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        assert report["source"] == "daemon"
        checks = {c["id"]: c for c in report["checks"]}
        assert checks["general_poll"]["status"] == "ok"
        assert checks["sas_version"]["data"]["serialNumber"] == "EMU0000001"
        assert checks["meters"]["status"] == "ok", json.dumps(checks["meters"])
        assert checks["meters"]["data"]["meters"]["gamesPlayed"] >= 0
        assert checks["outbox"]["data"]["exists"] is True
        assert "connected" in checks["uplink_auth"]["detail"]
        # the line process's scheduling, as it reported it (poll.line_priority: nice)
        priority = checks["line_priority"]
        assert priority["data"]["asked"] == "nice"
        assert priority["data"]["got"] in ("nice", "normal")
        assert priority["status"] == ("ok" if priority["data"]["got"] == "nice" else "warn")
        human = run_cli("diag", "--config", str(cfg))
        assert "asked the running daemon over its control socket" in human.stdout
        assert proc.popen.poll() is None  # the daemon kept its line
    finally:
        proc.stop()


def test_a_serial_port_that_does_not_open_exits_1(tmp_path: Path) -> None:
    cfg = write_agent_config(tmp_path, port="/dev/ttyNOPE7")
    result = run_cli("run", "--config", str(cfg), timeout=60)
    assert result.returncode == 1
    assert "/dev/ttyNOPE7" in result.stdout + result.stderr


@pytest.mark.parametrize(("extra", "named"), [
    ("uplink: {url: 'ws://127.0.0.1:9/ws/terminal', allow_insecure: true, "
     "token_env: SA_TEST_NO_SUCH_TOKEN}\n", "uplink.token_env"),
    ("uplink: {url: 'ws://127.0.0.1:9/ws/terminal', allow_insecure: true, "
     "token_file: empty-token}\n", "uplink.token_file"),
    ("actions: {hmac_key_file: short.key}\n", "actions.hmac_key_file"),
    ("uplink: {url: 'wss://127.0.0.1:9/ws/terminal', token_file: token, ca_file: ca.pem}\n",
     "uplink.ca_file"),
    ("", "belongs to terminal 'EGM-OTHER'"),
], ids=["token_env_unset", "empty_token_file", "short_action_key", "bad_ca_file",
        "foreign_outbox"])
def test_what_operations_md_lists_as_cannot_start_exits_1(
        tmp_path: Path, emulator: str, extra: str, named: str) -> None:
    """docs/operations.md, "Running the agent": 1 when the token, the action key or the TLS
    files cannot be read, or the outbox belongs to another terminal; the log says which (by
    its key)."""
    from agent.store.outbox import Outbox

    (tmp_path / "empty-token").write_text("")
    (tmp_path / "short.key").write_text("short\n")
    (tmp_path / "token").write_text("t0k3n\n")
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    cfg = write_agent_config(tmp_path, port=emulator, extra=extra)
    if not extra:
        Outbox.open(tmp_path / "outbox.db", terminal_id="EGM-OTHER").close()
    result = run_cli("run", "--config", str(cfg), timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    cannot = [r for r in json_logs(result.stdout.splitlines()) if r.get("level") == "ERROR"]
    assert cannot and str(cannot[-1]["msg"]).startswith("cannot start: "), cannot
    assert named in str(cannot[-1]["msg"])


def test_a_metrics_port_in_use_is_logged_and_the_agent_runs(
        tmp_path: Path, emulator: str) -> None:
    """docs/operations.md, "Running the agent": a metrics port that cannot be served is an
    error in the log, not a reason to stop polling."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    cfg = write_agent_config(tmp_path, port=emulator)
    cfg.write_text(cfg.read_text().replace("metrics:\n  port: 0\n",
                                           f"metrics:\n  port: {port}\n"))
    proc = Proc(["run", "--config", str(cfg)])
    try:
        started = _running(proc)
        assert started["metrics_port"] is None
        errors = [r for r in json_logs(proc.out_lines) if r.get("level") == "ERROR"]
        assert [r["msg"] for r in errors] == [
            f"metrics not served on 127.0.0.1:{port}: [Errno 98] Address already in use"]
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.stop()
        taken.close()


def test_an_invalid_configuration_exits_2_with_every_problem_and_its_key(
        tmp_path: Path) -> None:
    """docs/operations.md: 2 for an invalid configuration (every problem listed with its
    key), before anything is opened: no outbox file is created."""
    cfg = write_agent_config(tmp_path, port="/dev/ttyNOPE7",
                             extra="uplink: {window: 0}\nmetrcs: {}\n")
    result = run_cli("run", "--config", str(cfg), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines()[:3] == [
        f"{cfg}: invalid configuration",
        "  error: uplink.window: must be an integer from 1 to 100000, got 0",
        "  error: metrcs: unknown key at the top level; did you mean 'metrics'?",
    ]
    assert not (tmp_path / "outbox.db").exists()
