"""The transport contract: 9-bit SAS words over a byte link, and the driver's errors.

A SAS character is 8 data bits plus a 9th "wakeup" bit (SAS §1.2.1: the host sets it on the
first byte of every message; the machine sets it only when it chirps). A transport moves
such words between two ends and knows nothing of SAS meaning.

A transport is used from one thread at a time (the line owner's, or the emulator's), blocking
with deadlines on ``time.monotonic()``. ``close()`` may be called from any other thread and
makes a pending ``read`` return promptly by raising ``TransportClosedError``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Word:
    """One 9-bit SAS character."""

    value: int  # 0..255
    wakeup: bool  # the 9th bit

    def __post_init__(self) -> None:
        if not 0 <= self.value <= 0xFF:
            raise ValueError(f"a word carries a byte 0..255, not {self.value}")


def frame_words(frame: bytes, *, wakeup: bool) -> list[Word]:
    """The words of ``frame`` as a transport sends them: the 9th bit on the first byte only."""
    return [Word(b, wakeup and i == 0) for i, b in enumerate(frame)]


class TransportError(Exception):
    """A transport failed; ``device`` names the device (path, URL or peer) involved."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"{device}: {message}")
        self.device = device
        self.message = message


class TransportOpenError(TransportError):
    """The device could not be opened (the message carries a hint how to fix it)."""


class TransportClosedError(TransportError):
    """The transport was closed on this side (``close()``, possibly from another thread)."""


class TransportIOError(TransportError):
    """Reading or writing failed on an open transport."""


class TransportEOFError(TransportIOError):
    """The far end went away (TCP connection closed, pty master closed)."""


class Transport(abc.ABC):
    """A byte link carrying 9-bit words. See the module docstring for the threading rules."""

    name: str

    @abc.abstractmethod
    def write(self, frame: bytes, *, wakeup: bool) -> None:
        """Send ``frame``; with ``wakeup`` the first byte carries the 9th bit, the rest not.

        Returns once the bytes are handed to the link (a UART transport may wait for the
        address byte to leave the wire, never for the whole frame).
        """

    @abc.abstractmethod
    def read(self, deadline: float, max_words: int = 512) -> list[Word]:
        """Block until at least one word is available, or until ``time.monotonic() >= deadline``.

        Returns 1..max_words words, or ``[]`` at the deadline.
        """

    @abc.abstractmethod
    def discard_input(self) -> None:
        """Drop every word received and not yet read (and any partly decoded word)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device. Idempotent; safe to call from another thread."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def check_frame(name: str, frame: bytes, wakeup: bool) -> None:
    """Reject a wakeup request with nothing to carry it (a silent loss of the 9th bit)."""
    if wakeup and not frame:
        raise ValueError(f"{name}: wakeup=True needs at least one byte to carry the 9th bit")
