"""``slot-agent demo`` as a real process: the page, the printed token, events, clean stops."""

from __future__ import annotations

import json
import re
import signal
import urllib.request

import pytest
from websockets.sync.client import connect

from tests.support.processes import Proc, run_cli


def _dashboard(proc: Proc) -> tuple[str, str]:
    url = proc.wait_for_re(r"^Dashboard: (http://127\.0\.0\.1:\d+/)$").group(1)
    token = proc.wait_for_re(r"log in with the operator token: (\S+)$").group(1)
    return url, token


def _summary(proc: Proc) -> tuple[int, int]:
    final = proc.wait_for_re(r"slot-agent demo stopped: .*games (\d+) .*the hub stored "
                             r"(\d+) events", timeout=60)
    return int(final.group(1)), int(final.group(2))


def test_demo_serves_the_dashboard_streams_events_and_stops_after_duration() -> None:
    # The agent polls at the SAS pace (one send per machine per 200 ms, SAS §3.6): discovery
    # takes some 6 s, and a machine playing 20 games a second overflows its exception queue,
    # so bets are reported at a human pace within the run.
    proc = Proc(["demo", "--port", "0", "--duration", "12", "--games-per-minute", "120",
                 "--seed", "7"])
    try:
        url, token = _dashboard(proc)
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            page = response.read().decode()
        assert "<html" in page.lower()
        # the printed token logs in as an operator and the terminal is on the floor
        ws_url = url.replace("http://", "ws://") + "ws/client"
        with connect(ws_url, open_timeout=10, proxy=None) as ws:
            ws.send(json.dumps({"type": "auth", "token": token, "protocol": 1}))
            auth_ok = json.loads(ws.recv(timeout=10))
            assert auth_ok["type"] == "authOk" and auth_ok["role"] == "operator"
            snapshot = json.loads(ws.recv(timeout=10))
            assert snapshot["type"] == "snapshot"
            assert "DEMO-0001" in json.dumps(snapshot)
        proc.wait_for(lambda s: s.startswith("Running (stops after 12 s)"))
        games, stored = _summary(proc)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.stop()
    assert games > 0
    assert stored >= 4  # at least agentStarted, machineLinkUp, machineIdentified, a bet
    assert not proc.err_lines or all("Traceback" not in line for line in proc.err_lines)


#: The worker that runs the shared Ctrl-C demo for this test runs it for the README test
#: too (test_docs_recipes.py), under ``-n`` (pytest-xdist, ``--dist loadgroup``).
@pytest.mark.xdist_group("demo_stopped_by_ctrl_c")
def test_demo_stops_cleanly_on_sigint_and_sigterm(request: pytest.FixtureRequest) -> None:
    # SIGTERM on a demo of its own; Ctrl-C (SIGINT) on the shared one (tests/cli/conftest.py),
    # run meanwhile: its output shows the same steps, each line in order.
    proc = Proc(["demo", "--port", "0", "--games-per-minute", "1200", "--seed", "1"])
    try:
        stopped: Proc = request.getfixturevalue("demo_stopped_by_ctrl_c")
        assert stopped.popen.returncode == 0, stopped.err_lines[-20:]
        lines = iter(stopped.out_lines)
        for start in ("Dashboard: ", "Running (press Ctrl-C to stop)", "link up |",
                      "slot-agent demo stopped: "):
            assert any(line.startswith(start) for line in lines), (start, stopped.out_lines)
        assert re.search(r"games (\d+) .*the hub stored (\d+) events", stopped.out_lines[-1])

        _dashboard(proc)
        proc.wait_for(lambda s: s.startswith("Running (press Ctrl-C to stop)"))
        # a summary line (non-TTY: one every few seconds) with the link up
        proc.wait_for(lambda s: s.startswith("link up |"), timeout=30)
        proc.signal(signal.SIGTERM)
        _summary(proc)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.stop()


def test_a_busy_port_is_reported() -> None:
    import socket

    busy = socket.create_server(("127.0.0.1", 0))
    try:
        port = busy.getsockname()[1]
        proc = Proc(["demo", "--port", str(port), "--duration", "1"])
        try:
            assert proc.wait(timeout=30) == 1
        finally:
            proc.stop()
    finally:
        busy.close()
    assert any(re.search(rf"port {port} in use", line) for line in proc.err_lines)


@pytest.mark.parametrize("duration", ["0", "-1", "nan", "inf"])
def test_a_duration_that_is_not_a_number_of_seconds_above_0_is_refused(duration: str) -> None:
    """``--duration S``, "stop after S seconds": nan used to stop at once with exit 0."""
    result = run_cli("demo", "--duration", duration, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "--duration must be a number of seconds above 0" in result.stderr
    assert result.stdout == ""
