"""``slot-agent hub`` under systemd (systemd/slot-hub.service, ``Type=notify``): ``READY=1``
once it listens, ``STOPPING=1`` on SIGTERM, and no readiness from a hub that cannot start."""

from __future__ import annotations

import signal
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import Proc, short_dir
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
