"""TCP transports carrying the 9-bit encoding: a client for the agent (``tcp://host:port``)
and a listener for the emulator.
"""

from __future__ import annotations

import select
import socket
import time
from urllib.parse import urlsplit

from drivers.base import TransportClosedError, TransportOpenError
from drivers.selectable import WakePipe
from drivers.stream import StreamTransport

__all__ = ["TcpListener", "TcpTransport", "connect", "parse_tcp_url", "tcp_listen"]


class TcpTransport(StreamTransport):
    """One TCP connection (either side)."""

    def __init__(self, name: str, sock: socket.socket, *, write_timeout: float = 2.0) -> None:
        super().__init__(name, write_timeout=write_timeout)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock

    def _fileno(self) -> int:
        return self._sock.fileno()

    def _recv(self) -> bytes:
        return self._sock.recv(4096)

    def _send(self, data: memoryview) -> int:
        return self._sock.send(data)

    def _close_stream(self) -> None:
        self._sock.close()


def parse_tcp_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "tcp" or not parts.hostname or parts.path not in ("", "/"):
        raise TransportOpenError(url, "expected tcp://host:port")
    try:
        port = parts.port
    except ValueError as exc:
        raise TransportOpenError(url, f"bad port: {exc}") from exc
    if port is None:
        raise TransportOpenError(url, "expected tcp://host:port (the port is missing)")
    return parts.hostname, port


def connect(url: str, *, connect_timeout: float = 5.0, write_timeout: float = 2.0) -> TcpTransport:
    host, port = parse_tcp_url(url)
    try:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
    except OSError as exc:
        raise TransportOpenError(
            url, f"cannot connect: {exc}; is the emulator listening on {host}:{port}?"
        ) from exc
    return TcpTransport(url, sock, write_timeout=write_timeout)


class TcpListener:
    """A listening socket; ``accept(deadline)`` hands out one transport per connection."""

    def __init__(self, host: str, port: int) -> None:
        self._name = f"tcp-listen://{host}:{port}"
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family, _, _, _, addr = infos[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(4)
        except OSError as exc:
            raise TransportOpenError(self._name, f"cannot listen: {exc}") from exc
        sock.setblocking(False)
        self._sock = sock
        bound = sock.getsockname()
        self.address: tuple[str, int] = (str(bound[0]), int(bound[1]))
        self._name = f"tcp-listen://{self.address[0]}:{self.address[1]}"
        self._wake = WakePipe()
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def url(self) -> str:
        """The ``tcp://`` URL a client uses to reach this listener."""
        host, port = self.address
        return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"

    def accept(self, deadline: float, *, write_timeout: float = 2.0) -> TcpTransport | None:
        """The next connection, or ``None`` at ``deadline``. ``close()`` ends a pending wait."""
        while True:
            if self._closed:
                raise TransportClosedError(self._name, "listener is closed")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                ready, _, _ = select.select([self._sock.fileno(), self._wake.fileno], [], [],
                                            remaining)
            except (OSError, ValueError):
                ready = []
            if self._closed:
                raise TransportClosedError(self._name, "listener is closed")
            if self._sock.fileno() not in ready:
                continue
            try:
                conn, peer = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                continue
            return TcpTransport(f"tcp://{peer[0]}:{peer[1]}", conn, write_timeout=write_timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.wake()
        self._sock.close()
        self._wake.close()

    def __enter__(self) -> TcpListener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def tcp_listen(host: str = "127.0.0.1", port: int = 0) -> TcpListener:
    """Listen on ``host:port`` (port 0: any free port; read it from ``.address``)."""
    return TcpListener(host, port)
