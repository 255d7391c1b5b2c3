"""The systemd notification protocol (``sd_notify``), without a library.

Under ``Type=notify`` systemd passes the address of an AF_UNIX datagram socket in
``$NOTIFY_SOCKET``; the service sends newline-separated ``KEY=value`` assignments to it:
``READY=1`` when it serves, ``STATUS=...`` for ``systemctl status``, ``WATCHDOG=1`` at least
every half ``$WATCHDOG_USEC``, ``STOPPING=1`` and ``RELOADING=1``. An address that starts
with ``@`` is in the abstract namespace (the ``@`` stands for a leading NUL byte).

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op, so the daemon runs the same
from a terminal. A failed send is logged once and never raised: losing a status line must
not stop the poll loop (a missed watchdog makes systemd restart the service anyway).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to systemd; inert when ``address`` is None."""

    def __init__(
        self,
        address: str | None,
        *,
        watchdog_usec: int | None = None,
    ) -> None:
        self.address = address or None
        self._watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failed = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Read ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID``.

        The watchdog applies only when ``$WATCHDOG_PID`` is unset or names this process
        (systemd sets it so a child does not ping on its parent's behalf).
        """
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        watchdog_usec: int | None = None
        raw_usec = env.get("WATCHDOG_USEC", "").strip()
        raw_pid = env.get("WATCHDOG_PID", "").strip()
        if raw_usec:
            try:
                usec = int(raw_usec)
            except ValueError:
                log.warning("ignoring WATCHDOG_USEC=%r: not an integer", raw_usec)
            else:
                pid_ok = True
                if raw_pid:
                    try:
                        pid_ok = int(raw_pid) == os.getpid()
                    except ValueError:
                        pid_ok = False
                if usec > 0 and pid_ok:
                    watchdog_usec = usec
        return cls(address, watchdog_usec=watchdog_usec)

    @property
    def enabled(self) -> bool:
        """True when there is a systemd socket to notify."""
        return self.address is not None

    def _socket_address(self) -> str | bytes:
        assert self.address is not None
        if self.address.startswith("@"):
            return b"\0" + self.address[1:].encode()  # abstract namespace
        return self.address

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` assignments in one datagram; True if sent (False when inert)."""
        if self.address is None:
            return False
        payload = "\n".join(assignments).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    )
                self._sock.sendto(payload, self._socket_address())
            except OSError as exc:
                if not self._failed:
                    log.warning("cannot notify systemd at %s: %s", self.address, exc)
                    self._failed = True
                return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """The service is up (and, with ``status``, say what it does)."""
        return self.notify("READY=1", *self._status(status))

    def status(self, text: str) -> bool:
        """One line for ``systemctl status`` (newlines would end the assignment)."""
        return self.notify(*self._status(text))

    def watchdog(self) -> bool:
        """Prove liveness; call it from the loop whose stall should restart the service."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *self._status(status))

    def reloading(self, status: str | None = None) -> bool:
        """Configuration reload started; send :meth:`ready` when it is done."""
        return self.notify("RELOADING=1", *self._status(status))

    def watchdog_interval(self) -> float | None:
        """The watchdog timeout systemd enforces, in seconds (``$WATCHDOG_USEC``), or None.

        Ping at least twice per timeout: :meth:`watchdog_ping_interval`.
        """
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 1_000_000

    def watchdog_ping_interval(self) -> float | None:
        """How often to call :meth:`watchdog`: half the timeout, as sd_watchdog_enabled(3)
        recommends, or None when no watchdog is armed."""
        timeout = self.watchdog_interval()
        return None if timeout is None else timeout / 2

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    @staticmethod
    def _status(text: str | None) -> tuple[str, ...]:
        if text is None:
            return ()
        return ("STATUS=" + " ".join(text.splitlines()),)
