"""``Emulator.close()`` while its thread is stuck writing replies a host does not read (the
state ``slot-agent emulate --pty`` is in when its host stops reading): the close ends the
write at once instead of waiting out the write timeout, and reports no lost connection."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from drivers.base import Transport, TransportError
from drivers.pseudo_tty import open_pty, open_pty_path
from emulator.model import Machine
from emulator.server import Emulator
from tests.support.waits import wait_until

#: far beyond any wait below: only the close can end the machine's write in time
WRITE_TIMEOUT_S = 3600.0


def _serving_thread_writes() -> bool:
    """The emulator's thread is inside a transport write (waiting for the host to read)."""
    for thread in threading.enumerate():
        if thread.name == "emulator":
            frame = sys._current_frames().get(thread.ident or 0)
            while frame is not None:
                if frame.f_code.co_name == "_write_all":
                    return True
                frame = frame.f_back
    return False


def test_close_ends_a_write_the_host_does_not_read() -> None:
    machine_end, path = open_pty(write_timeout=WRITE_TIMEOUT_S)
    host = open_pty_path(path, write_timeout=0.2)
    lost: list[tuple[Transport, Exception]] = []
    emu = Emulator(Machine(now=time.monotonic()), machine_end, address=1,
                   on_disconnect=lambda transport, exc: lost.append((transport, exc)))
    emu.start()
    closer = threading.Thread(target=emu.close, kwargs={"timeout": WRITE_TIMEOUT_S},
                              daemon=True)
    try:
        host.write(b"\x80", wakeup=True)  # a poll to another address: sync (SAS §3.5)
        deadline = time.monotonic() + 60
        # LP 1C again and again, its 36-byte replies never read: the pty fills, the machine's
        # write waits, it reads no more, and the host's own write times out
        with pytest.raises(TransportError):
            while time.monotonic() < deadline:
                host.write(b"\x01", wakeup=True)
                host.write(b"\x1c", wakeup=False)
        wait_until(_serving_thread_writes, what="the machine's thread waiting in a write")
        closer.start()
        wait_until(lambda: not closer.is_alive(), what="close() returned")
        assert not emu.running and emu.transport is None
        assert lost == []  # the stop closed it: not a lost connection
    finally:
        host.close()
        if not closer.is_alive():
            machine_end.close()
