"""The local control socket: ``slot-agent diag`` asks the running daemon instead of opening
the serial port a second time (one owner per serial line).

Transport: an AF_UNIX stream socket (``/run/slot-agent/control.sock`` under systemd), mode
0660 so members of the service's group may use it. Protocol: JSON lines. Each request is one
line ``{"command": "<name>", "params": {...}}``; each reply is one line, either
``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": {"code": "...", "message":
"..."}}``. Several requests may share a connection.

The server runs on its own threads (one per connection), not on the asyncio loop, on
purpose: diagnostics must still answer when the event loop is stuck, which is exactly when a
technician runs them. Handlers therefore run on a server thread and must only read
thread-safe snapshots (or hand work to the loop with ``run_coroutine_threadsafe`` and a
timeout).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import selectors
import socket
import socketserver
import stat
import threading
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_before_delay, wait_exponential

__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "ControlError",
    "ControlErrorCode",
    "ControlInUseError",
    "ControlRequestError",
    "ControlServer",
    "ControlUnavailableError",
    "Handler",
    "control_request",
]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]

#: A request is a command name and a few parameters; anything bigger is a mistake or abuse.
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024
#: A connection idle this long is closed, so a stuck client cannot hold a thread forever.
IDLE_TIMEOUT_SECONDS = 30.0
#: Linux ``sun_path`` holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107


class ControlErrorCode(StrEnum):
    BAD_JSON = "bad_json"  # the line is not JSON
    BAD_REQUEST = "bad_request"  # JSON, but not {"command": str, "params": object}
    UNKNOWN_COMMAND = "unknown_command"
    TOO_LARGE = "too_large"  # the request line exceeds the limit; the connection is closed
    HANDLER_FAILED = "handler_failed"  # the handler raised or returned something unusable


class ControlError(Exception):
    """Base of the control socket's errors."""


class ControlUnavailableError(ControlError):
    """Nothing listens on the control socket (the daemon is not running, or not here).

    ``reason`` says which, for ``diag``: ``missing`` (no socket file: stopped or never
    started), ``stale`` (a socket file nobody serves: the daemon died), ``permission``,
    ``closed`` (connected, then hung up without answering) or ``other``."""

    def __init__(self, message: str, reason: str = "other") -> None:
        super().__init__(message)
        self.reason = reason


class ControlInUseError(ControlError):
    """Another live process already serves this control socket path."""


class ControlRequestError(ControlError):
    """The daemon answered with an error object."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _error(code: ControlErrorCode, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code.value, "message": message}}


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    # A full listen backlog makes an AF_UNIX connect fail at once with EAGAIN (it does not
    # wait like TCP); leave room for a burst of diag calls and the client retries as well.
    request_queue_size = 64
    control: ControlServer


class _ConnectionHandler(socketserver.StreamRequestHandler):
    server: _Server
    timeout = IDLE_TIMEOUT_SECONDS

    def handle(self) -> None:
        control = self.server.control
        limit = control.max_request_bytes
        while True:
            try:
                line = self.rfile.readline(limit + 1)
            except (TimeoutError, OSError):
                return
            if not line:
                return
            if len(line) > limit:
                # We cannot tell where this oversize request ends: answer and hang up.
                self._reply(
                    _error(
                        ControlErrorCode.TOO_LARGE,
                        f"request exceeds {limit} bytes",
                    )
                )
                return
            if not line.strip():
                continue
            if not self._reply(control.dispatch(line)):
                return

    def _reply(self, response: Mapping[str, Any]) -> bool:
        try:
            self.wfile.write(json.dumps(response).encode() + b"\n")
            self.wfile.flush()
        except OSError:
            return False
        return True


class ControlServer:
    """Serves ``handlers`` (command name -> ``handler(params) -> result``) on ``path``.

    ``start()`` binds (after removing a stale socket file left by a crashed daemon), sets mode
    0660 before accepting anyone, and serves on a daemon thread; ``close()`` stops and removes
    the socket file. Also a context manager.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        handlers: Mapping[str, Handler],
        *,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        mode: int = 0o660,
    ) -> None:
        self.path = Path(path)
        self.handlers = dict(handlers)
        self.max_request_bytes = max_request_bytes
        self.mode = mode
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._wake_w: int | None = None

    def dispatch(self, line: bytes) -> dict[str, Any]:
        """Answer one request line (also usable without a socket)."""
        try:
            request = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error(ControlErrorCode.BAD_JSON, f"request is not JSON: {exc}")
        if not isinstance(request, dict):
            return _error(ControlErrorCode.BAD_REQUEST, "request must be a JSON object")
        command = request.get("command")
        params = request.get("params", {})
        if not isinstance(command, str):
            return _error(ControlErrorCode.BAD_REQUEST, "'command' must be a string")
        if not isinstance(params, dict):
            return _error(ControlErrorCode.BAD_REQUEST, "'params' must be an object")
        handler = self.handlers.get(command)
        if handler is None:
            known = ", ".join(sorted(self.handlers)) or "none"
            return _error(
                ControlErrorCode.UNKNOWN_COMMAND,
                f"unknown command {command!r} (known: {known})",
            )
        try:
            result = handler(params)
            if not isinstance(result, dict):
                raise TypeError(f"handler returned {type(result).__name__}, not a dict")
            json.dumps(result)  # fail here, with a reply, rather than while writing
        except Exception as exc:
            log.exception("control command %r failed", command)
            return _error(ControlErrorCode.HANDLER_FAILED, f"{type(exc).__name__}: {exc}")
        return {"ok": True, "result": result}

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("control server already started")
        path = str(self.path)
        if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
            raise ValueError(
                f"control socket path is {len(os.fsencode(path))} bytes, "
                f"the limit is {MAX_SOCKET_PATH_BYTES}: {path}"
            )
        self._remove_stale()
        server = _Server(path, _ConnectionHandler, bind_and_activate=False)
        server.control = self
        try:
            server.server_bind()
            # Nobody can connect before listen(): set the mode first.
            os.chmod(path, self.mode)
            server.server_activate()
        except BaseException:
            server.server_close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            raise
        wake_r, self._wake_w = os.pipe()
        self._server = server
        self._thread = threading.Thread(
            target=self._serve, args=(server, wake_r), name="control-socket", daemon=True,
        )
        self._thread.start()
        log.info("control socket listening", extra={"path": path})

    def _remove_stale(self) -> None:
        try:
            st = self.path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlInUseError(f"{self.path} exists and is not a socket; not removing it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(self.path))
        except OSError:
            # Nobody listens: a socket file left behind by a process that died.
            log.info("removing stale control socket", extra={"path": str(self.path)})
            self.path.unlink()
        else:
            raise ControlInUseError(f"another process is serving {self.path}")
        finally:
            probe.close()

    @staticmethod
    def _serve(server: _Server, wake_r: int) -> None:
        """Accept connections until :meth:`close` writes to the wake-up pipe.

        Not ``serve_forever``: that one wakes every ``poll_interval`` to check for a
        shutdown (ten times a second at the 0.1 s that kept ``close`` quick), a thread's
        wake-up and the interpreter lock each time, for a socket used a few times a day. This
        one sleeps until a connection comes or ``close`` wakes it.
        """
        server.timeout = 0.0  # handle_request() after the selector said ready: never blocks
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(server, selectors.EVENT_READ)
                selector.register(wake_r, selectors.EVENT_READ)
                while True:
                    ready = {key.fd for key, _ in selector.select()}
                    if wake_r in ready:
                        return
                    server.handle_request()
        finally:
            os.close(wake_r)

    def close(self) -> None:
        server, thread, wake_w = self._server, self._thread, self._wake_w
        self._server = self._thread = self._wake_w = None
        if server is None:
            return
        if wake_w is not None:
            with contextlib.suppress(OSError):
                os.write(wake_w, b"x")
        if thread is not None:
            thread.join(5.0)
        if wake_w is not None:
            os.close(wake_w)
        server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _connect(sock: socket.socket, path: str | os.PathLike[str], timeout: float) -> None:
    """Connect, retrying while the server's backlog is full (EAGAIN) until ``timeout``."""
    retrying = Retrying(retry=retry_if_exception_type(BlockingIOError),
                        wait=wait_exponential(multiplier=0.005, max=0.1),
                        stop=stop_before_delay(timeout), reraise=True)
    try:
        retrying(sock.connect, os.fspath(path))
    except BlockingIOError:
        raise TimeoutError(f"{os.fspath(path)}: the daemon's backlog stayed full") from None


def control_request(
    path: str | os.PathLike[str],
    command: str,
    params: Mapping[str, Any] | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Send one command to the daemon and return its ``result`` object.

    Raises :class:`ControlUnavailableError` when nothing listens on ``path`` (no file, a
    stale file, or no permission: the message says which), :class:`ControlRequestError`
    when the daemon answers with an error, and ``TimeoutError`` when it does not answer
    within ``timeout`` seconds.
    """
    request = json.dumps({"command": command, "params": dict(params or {})}).encode() + b"\n"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            _connect(sock, path, timeout)
        except FileNotFoundError as exc:
            raise ControlUnavailableError(
                f"no control socket at {os.fspath(path)}: is slot-agent running?", "missing"
            ) from exc
        except ConnectionRefusedError as exc:
            raise ControlUnavailableError(
                f"nothing listens on {os.fspath(path)} (stale socket): is slot-agent running?",
                "stale",
            ) from exc
        except PermissionError as exc:
            raise ControlUnavailableError(
                f"no permission for {os.fspath(path)}: run as root or as a member of the "
                "slot-agent group", "permission",
            ) from exc
        except OSError as exc:
            if exc.errno in (errno.ENOTSOCK, errno.ECONNREFUSED):
                raise ControlUnavailableError(f"cannot use {os.fspath(path)}: {exc}") from exc
            raise
        sock.sendall(request)
        with sock.makefile("rb") as reader:
            line = reader.readline()
    finally:
        sock.close()
    if not line:
        raise ControlUnavailableError(
            f"the daemon closed {os.fspath(path)} without answering", "closed")
    response = json.loads(line)
    if not isinstance(response, dict):
        raise ControlRequestError("bad_response", "reply is not a JSON object")
    if response.get("ok") is True and isinstance(response.get("result"), dict):
        result: dict[str, Any] = response["result"]
        return result
    error = response.get("error")
    if isinstance(error, dict):
        raise ControlRequestError(str(error.get("code")), str(error.get("message")))
    raise ControlRequestError("bad_response", f"unexpected reply: {line[:200]!r}")
