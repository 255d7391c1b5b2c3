"""A datagram socket standing in for systemd's ``$NOTIFY_SOCKET`` (servicekit.sdnotify)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.processes import short_dir


@contextmanager
def notify_listener(timeout: float) -> Iterator[tuple[socket.socket, str]]:
    """The bound socket and its path (in a short directory: AF_UNIX paths are limited to
    107 bytes); reads wait at most ``timeout`` seconds."""
    path = str(short_dir() / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(timeout)
    try:
        yield sock, path
    finally:
        sock.close()
