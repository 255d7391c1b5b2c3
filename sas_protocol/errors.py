"""The errors of the SAS protocol core.

``RemoteProtocolError`` means the peer sent bad bytes (kept in ``raw`` for counters and logs);
``LocalProtocolError`` means the caller misused the API. Decoders raise nothing else."""

from __future__ import annotations

from sas_protocol.hexdump import elided_hex


class SasProtocolError(Exception):
    """Base of every error raised by ``sas_protocol``."""


class LocalProtocolError(SasProtocolError):
    """The caller asked for something the protocol cannot do (bad value, wrong state)."""


class RemoteProtocolError(SasProtocolError):
    """The peer sent bytes that are not a valid SAS frame; ``raw`` holds them."""

    def __init__(self, message: str, raw: bytes) -> None:
        super().__init__(f"{message} [{elided_hex(raw)}]")
        self.reason = message
        self.raw = bytes(raw)


class CrcError(RemoteProtocolError):
    """The CRC of a frame does not match its content."""


class FramingError(RemoteProtocolError):
    """The bytes do not form a frame of the expected kind (wrong command, bad field)."""


class UnexpectedAddressError(RemoteProtocolError):
    """A frame starts with an address other than the one expected."""


class LengthError(RemoteProtocolError):
    """A frame is shorter or longer than its layout requires."""
