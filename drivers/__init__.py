"""Byte transports that carry 9-bit SAS words, and the card reader.

``open_transport(url)`` picks the driver from the URL (see docs/sas-serial.md):

- ``serial:/dev/ttyUSB0``, a bare device path, or any pyserial URL (``rfc2217://``,
  ``socket://``, ``loop://``): a real UART, wakeup bit by mark/space parity.
- ``tcp://host:port``: a TCP client carrying the 9-bit encoding (``drivers.ninebit``).
- ``pty:/dev/pts/N``: a pseudo-terminal carrying the 9-bit encoding.

In-process pairs for tests come from ``drivers.memory.pair()``.
"""

from __future__ import annotations

from typing import Any

from drivers.base import (
    Transport,
    TransportClosedError,
    TransportEOFError,
    TransportError,
    TransportIOError,
    TransportOpenError,
    Word,
)
from drivers.pseudo_tty import open_pty
from drivers.tcp import TcpListener, tcp_listen

__all__ = [
    "TcpListener",
    "Transport",
    "TransportClosedError",
    "TransportEOFError",
    "TransportError",
    "TransportIOError",
    "TransportOpenError",
    "Word",
    "open_pty",
    "open_transport",
    "tcp_listen",
]


def open_transport(url: str, **options: Any) -> Transport:
    """Open the transport a URL names (the forms are listed in the module docstring).

    ``options`` go to the driver: for a UART (a device or a pyserial URL) ``baudrate``,
    ``even_parity_after_address``, ``parity_switch_delay_ms``, ``detect_wakeup``,
    ``exclusive``, ``write_timeout``; for ``tcp://`` ``connect_timeout`` and ``write_timeout``;
    for ``pty:`` ``write_timeout``. An option the driver does not know is a ``TypeError``
    naming it.
    """
    if url.startswith("tcp://"):
        from drivers.tcp import connect

        return connect(url, **options)
    if url.startswith("pty:"):
        from drivers.pseudo_tty import open_pty_path

        path = url[len("pty:") :]
        if not path:
            raise TransportOpenError(url, "expected pty:/dev/pts/N")
        return open_pty_path(path, **options)
    from drivers.uart import open_uart

    if url.startswith("serial:"):
        url = url[len("serial:") :]
        if url.startswith("//"):
            url = url[2:]
    if not url:
        raise TransportOpenError("serial:", "expected serial:/dev/ttyUSB0 or a device path")
    return open_uart(url, **options)
