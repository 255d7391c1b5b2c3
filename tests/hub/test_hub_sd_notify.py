"""``slot-agent hub`` under systemd (systemd/slot-hub.service, ``Type=notify``): ``READY=1``
once it listens, ``STOPPING=1`` on SIGTERM, no readiness from a hub that cannot start, and a
start on PostgreSQL under the unit's MemoryDenyWriteExecute=yes."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.processes import Proc, clean_env, short_dir
from tests.support.tokens import Token, write_token_file


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd's ``$NOTIFY_SOCKET``."""
    path = str(short_dir() / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    try:
        yield sock, path
    finally:
        sock.close()


def write_hub_config(tmp_path: Path, port: int = 0) -> Path:
    tokens = write_token_file(tmp_path, [Token("sd-notify-operator-token", "operator", "ops")])
    config = tmp_path / "hub.yaml"
    config.write_text(f"listen: {{host: 127.0.0.1, port: {port}}}\nplain: true\n"
                      f"tokens: {tokens.name}\ndatabase: hub.db\n")
    return config


def assignments(message: bytes) -> dict[str, str]:
    pairs = (line.partition("=") for line in message.decode().splitlines())
    return {key: value for key, _, value in pairs}


def test_ready_once_listening_then_stopping_on_sigterm(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    proc = Proc(["hub", "--config", str(write_hub_config(tmp_path))],
                env={"NOTIFY_SOCKET": path})
    try:
        ready = assignments(sock.recv(4096))
        # The first notification is the readiness, and by then the hub answers.
        assert ready["READY"] == "1"
        url = proc.first_line()
        assert ready["STATUS"].startswith(f"listening on {url} (instance ")
        with urllib.request.urlopen(url + "healthz", timeout=10) as resp:
            assert resp.read() == b"ok\n"
        proc.signal(signal.SIGTERM)
        stopping = assignments(sock.recv(4096))
        assert stopping["STOPPING"] == "1"
        assert stopping["STATUS"].startswith("stopping")
        assert proc.wait(timeout=20) == 0
    finally:
        proc.stop()


def test_a_hub_that_cannot_listen_never_says_ready(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        proc = Proc(["hub", "--config", str(write_hub_config(tmp_path, taken.getsockname()[1]))],
                    env={"NOTIFY_SOCKET": path})
        try:
            code = proc.wait(timeout=30)
        finally:
            proc.stop()
    finally:
        taken.close()
    assert code == 1, proc.err_lines
    assert any("cannot start" in line for line in proc.err_lines)
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(4096)  # systemd would fail the start: no READY=1 came


#: Makes this process and what it executes refuse writable+executable memory, as
#: MemoryDenyWriteExecute=yes does (the kernel's PR_SET_MDWE, Linux >= 6.3), then runs the hub.
MDWE_HUB = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit(77)
from cli.main import main
sys.exit(main(["hub", "--config", sys.argv[1]]))
"""


def test_a_hub_on_postgresql_starts_without_writable_executable_memory(
        tmp_path: Path, notify_socket: tuple[socket.socket, str], pg_url: str) -> None:
    """systemd/slot-hub.service sets MemoryDenyWriteExecute=yes; psycopg without its binary
    package calls libpq through ctypes and sets a ctypes callback (the notice receiver),
    which must not need a writable and executable page."""
    sock, path = notify_socket
    tokens = write_token_file(tmp_path, [Token("mdwe-operator-token", "operator", "ops")])
    config = tmp_path / "hub.yaml"
    config.write_text(f"listen: {{host: 127.0.0.1, port: 0}}\nplain: true\n"
                      f"tokens: {tokens.name}\nstore: '{pg_url}'\n")
    proc = subprocess.Popen([sys.executable, "-c", MDWE_HUB, str(config)], cwd=ROOT,
                            env=clean_env({"NOTIFY_SOCKET": path}), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        try:
            ready = assignments(sock.recv(4096))
        except TimeoutError:
            proc.kill()
            _, err = proc.communicate(timeout=30)
            if proc.returncode == 77:
                pytest.skip("the kernel has no PR_SET_MDWE (Linux < 6.3)")
            raise AssertionError(f"no READY=1; rc={proc.returncode} {err[-2000:]}") from None
        assert ready["READY"] == "1"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
