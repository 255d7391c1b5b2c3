"""Byte transports that carry 9-bit SAS words, and the card reader.

``open_transport(url)`` picks the driver from the URL (see docs/sas-serial.md):

- ``serial:/dev/ttyUSB0``, a bare device path, or any pyserial URL (``rfc2217://``,
  ``socket://``, ``loop://``): a real UART, wakeup bit by mark/space parity.
- ``tcp://host:port``: a TCP client carrying the 9-bit encoding (``drivers.ninebit``).
- ``pty:/dev/pts/N``: a pseudo-terminal carrying the 9-bit encoding.

In-process pairs for tests come from ``drivers.memory.pair()``.
"""

from __future__ import annotations

from drivers.base import (
    Transport,
    TransportClosedError,
    TransportEOFError,
    TransportError,
    TransportIOError,
    TransportOpenError,
    Word,
)

__all__ = [
    "Transport",
    "TransportClosedError",
    "TransportEOFError",
    "TransportError",
    "TransportIOError",
    "TransportOpenError",
    "Word",
]
