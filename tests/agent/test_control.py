"""The local control socket: JSON lines over AF_UNIX, errors as objects, stale sockets."""

from __future__ import annotations

import json
import os
import socket
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.ops.control import (
    ControlInUseError,
    ControlRequestError,
    ControlServer,
    ControlUnavailableError,
    control_request,
)


@pytest.fixture
def sock_path() -> Iterator[Path]:
    # a short directory: sun_path holds 108 bytes, pytest's tmp_path can be longer
    with tempfile.TemporaryDirectory(prefix="ctl") as tmp:
        yield Path(tmp) / "control.sock"


def echo(params: dict[str, Any]) -> dict[str, Any]:
    return {"echo": params}


def status(params: dict[str, Any]) -> dict[str, Any]:
    return {"outbox_depth": 3, "link_up": True}


def broken(params: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("meters unavailable")


HANDLERS = {"echo": echo, "status": status, "broken": broken}


def raw_exchange(path: Path, payload: bytes) -> list[dict[str, Any]]:
    """Send raw bytes, then read reply lines until the server closes or stops answering."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_request_and_reply(sock_path: Path) -> None:
    with ControlServer(sock_path, HANDLERS):
        assert control_request(sock_path, "status", timeout=5) == {
            "outbox_depth": 3,
            "link_up": True,
        }
        assert control_request(sock_path, "echo", {"n": [1, 2]}, timeout=5) == {
            "echo": {"n": [1, 2]}
        }
    assert not sock_path.exists()  # removed on close


def test_socket_mode_is_0660(sock_path: Path) -> None:
    old = os.umask(0o077)  # what the unit sets: the server must not depend on the umask
    try:
        with ControlServer(sock_path, HANDLERS):
            mode = stat.S_IMODE(sock_path.stat().st_mode)
    finally:
        os.umask(old)
    assert mode == 0o660


def test_errors_are_objects_with_codes(sock_path: Path) -> None:
    with ControlServer(sock_path, HANDLERS):
        with pytest.raises(ControlRequestError) as unknown:
            control_request(sock_path, "reboot", timeout=5)
        assert unknown.value.code == "unknown_command"
        assert "status" in unknown.value.message  # lists what is known
        with pytest.raises(ControlRequestError) as failed:
            control_request(sock_path, "broken", timeout=5)
        assert failed.value.code == "handler_failed"
        assert "meters unavailable" in failed.value.message
        replies = raw_exchange(
            sock_path,
            b"not json\n"
            + b'["list"]\n'
            + b'{"command": 5}\n'
            + b'{"command": "echo", "params": []}\n'
            + b'{"command": "echo", "params": {"a": 1}}\n',
        )
    codes = [r.get("error", {}).get("code") for r in replies]
    assert codes == ["bad_json", "bad_request", "bad_request", "bad_request", None]
    assert replies[-1] == {"ok": True, "result": {"echo": {"a": 1}}}


def test_oversize_request_is_refused_and_the_server_survives(sock_path: Path) -> None:
    with ControlServer(sock_path, HANDLERS, max_request_bytes=1024):
        big = json.dumps({"command": "echo", "params": {"x": "y" * 5000}}).encode() + b"\n"
        replies = raw_exchange(sock_path, big)
        assert len(replies) == 1
        assert replies[0]["ok"] is False
        assert replies[0]["error"]["code"] == "too_large"
        assert control_request(sock_path, "status", timeout=5)["outbox_depth"] == 3


def test_unserialisable_result_is_a_handler_error(sock_path: Path) -> None:
    with (
        ControlServer(sock_path, {"bad": lambda p: {"when": object()}}),
        pytest.raises(ControlRequestError) as failed,
    ):
        control_request(sock_path, "bad", timeout=5)
    assert failed.value.code == "handler_failed"


def test_unavailable_when_nothing_listens(sock_path: Path) -> None:
    with pytest.raises(ControlUnavailableError, match="no control socket"):
        control_request(sock_path, "status", timeout=5)
    # a socket file nobody listens on (daemon killed): refused, still "unavailable"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock_path))
    dead.close()
    with pytest.raises(ControlUnavailableError, match="stale"):
        control_request(sock_path, "status", timeout=5)


def test_stale_socket_file_is_replaced(sock_path: Path) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock_path))
    dead.close()
    with ControlServer(sock_path, HANDLERS):
        assert control_request(sock_path, "status", timeout=5)["link_up"] is True


def test_a_live_server_is_not_stolen(sock_path: Path) -> None:
    with ControlServer(sock_path, HANDLERS):
        with pytest.raises(ControlInUseError):
            ControlServer(sock_path, HANDLERS).start()
        assert control_request(sock_path, "status", timeout=5)["outbox_depth"] == 3


def test_a_regular_file_is_never_removed(sock_path: Path) -> None:
    sock_path.write_text("precious")
    with pytest.raises(ControlInUseError, match="not a socket"):
        ControlServer(sock_path, HANDLERS).start()
    assert sock_path.read_text() == "precious"


def test_too_long_path_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="limit is 107"):
        ControlServer("/tmp/" + "x" * 200, HANDLERS).start()


def test_concurrent_clients(sock_path: Path) -> None:
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        reply = control_request(sock_path, "echo", {"i": i}, timeout=5)
        with lock:
            results.append(reply)

    with ControlServer(sock_path, HANDLERS):
        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert sorted(r["echo"]["i"] for r in results) == list(range(8))


def test_timeout_when_the_daemon_does_not_answer(sock_path: Path) -> None:
    release = threading.Event()

    def stuck(params: dict[str, Any]) -> dict[str, Any]:
        release.wait(10)
        return {}

    with ControlServer(sock_path, {"stuck": stuck}):
        try:
            with pytest.raises(TimeoutError):
                control_request(sock_path, "stuck", timeout=0.2)
        finally:
            release.set()
