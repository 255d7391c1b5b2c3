"""The driver options for the configured serial line (``config.serial``).

Its own small module: the line process opens its port with it, and so does ``slot-agent diag``
when no daemon runs, without loading either side's other modules.
"""

from __future__ import annotations

from typing import Any

__all__ = ["transport_options"]


def transport_options(port: str, serial: Any) -> dict[str, Any]:
    """Driver options for ``drivers.open_transport(port, **options)`` from ``config.serial``.

    Only a real UART takes the line settings; tcp:// and pty: links carry the 9-bit encoding
    and have no baud rate or parity to set (docs/sas-serial.md).
    """
    if port.startswith(("tcp://", "pty:")):
        return {}
    return {"baudrate": serial.baudrate,
            "even_parity_after_address": serial.even_parity_after_address,
            "parity_switch_delay_ms": serial.parity_switch_delay_ms}
