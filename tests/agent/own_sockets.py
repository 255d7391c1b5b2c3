"""Accept only this process's own connections on a test listener.

The machine running the tests is shared: another test elsewhere may connect to a port it
believes free (to see a refusal) just when a listener of ours got that port. A test that
expects its own agent to connect accepts through :func:`accept_own`, which closes anything
whose client end is not a socket of this process (``/proc/net/tcp`` + ``/proc/self/fd``).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path


def _own_inodes() -> set[str]:
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def _is_own_client(peer: tuple[str, int], local_port: int) -> bool:
    """Whether the client end (``peer``) of a connection to ``local_port`` is ours."""
    wanted = f":{peer[1]:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(wanted) and fields[2].endswith(f":{local_port:04X}"):
            return fields[9] in _own_inodes()
    return False


def accept_own(server: socket.socket, timeout: float) -> socket.socket:
    """The next connection to ``server`` made by this process; others are closed.
    ``TimeoutError`` when none comes within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    port = server.getsockname()[1]
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no connection of this process on port {port}")
        server.settimeout(remaining)
        conn, peer = server.accept()
        if not Path("/proc/net/tcp").exists() or _is_own_client(peer, port):
            return conn
        conn.close()  # a stray connection from another program on this machine
