"""Serve an ``Emulator`` on a TCP listener to one host at a time, as a terminal server does.

``slot-agent emulate --tcp``, ``slot-agent demo`` and the test rigs serve the machine this
way: a thread accepts each connection and attaches it to the emulator (a connection still
attached is closed: the newest host wins); when the host goes away (a read or write fails)
its connection is closed and the next one is awaited, while the machine keeps running on
the emulator's own thread. ``stop()`` closes the listener first, which ends a pending accept
at once, then stops the emulator and closes its connection.

Threads, not asyncio, as ``Emulator.start()`` is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from drivers.base import Transport, TransportError
from drivers.tcp import tcp_listen
from emulator.server import Emulator

#: how long one accept waits before it looks at the stop flag again (``stop()`` closing the
#: listener ends the wait at once; this only bounds a stop that races the close)
_ACCEPT_SLICE_S = 1.0


class TcpServing:
    """``emulator`` served on ``host:port`` (port 0: any free port; see ``address``).

    The listener is opened here (``drivers.TransportOpenError`` when it cannot be, e.g. the
    address is in use), so the address is known before ``start()``. It takes over the
    emulator's ``on_disconnect``. ``log`` gets the lines ``HOST:PORT`` of a connection
    ``connected`` and ``disconnected (reason)``, and ``accept failed: reason`` when the
    listener fails (it then stops accepting: see ``accepting``). ``wrap``, when given, is
    served each connection through (``wrap(connection)``: a tap that logs or times what the
    machine reads and writes, as the benchmarks' are)."""

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0, *,
                 log: Callable[[str], None] | None = None,
                 wrap: Callable[[Transport], Transport] | None = None) -> None:
        self.emulator = emulator
        self._log = log or (lambda _message: None)
        self._wrap = wrap
        self._listener = tcp_listen(host, port)
        #: the bound (host, port)
        self.address: tuple[str, int] = self._listener.address
        #: ``tcp://host:port``, what the agent's ``serial.port`` takes
        self.url: str = self._listener.url
        #: connections accepted so far
        self.accepted = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        emulator.on_disconnect = self._disconnected

    def start(self) -> None:
        """Start the emulator's thread and the accepting thread."""
        if self._thread is not None or self._stop.is_set():
            raise RuntimeError("TcpServing starts once")
        self.emulator.start()
        self._thread = threading.Thread(target=self._accept, name="emulator-accept",
                                        daemon=True)
        self._thread.start()

    @property
    def accepting(self) -> bool:
        """Started, not stopped, and the listener has not failed."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener, stop both threads, close the connection. Again: a no-op."""
        self._stop.set()
        self._listener.close()  # ends a pending accept now
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        self.emulator.close(timeout)

    def __enter__(self) -> TcpServing:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn = self._listener.accept(time.monotonic() + _ACCEPT_SLICE_S)
            except (TransportError, OSError) as exc:
                if not self._stop.is_set():
                    self._log(f"accept failed: {exc}")
                return
            if conn is not None:
                self.accepted += 1
                self._log(f"{conn.name}: connected")
                self.emulator.attach(conn if self._wrap is None else self._wrap(conn))

    def _disconnected(self, transport: Transport, exc: Exception) -> None:
        self._log(f"{transport.name}: disconnected ({exc})")
        transport.close()  # the host went away: the next connection is served
