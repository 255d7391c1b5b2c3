"""The 9-bit encoding for links that cannot carry a 9th bit (TCP, pty).

It is the Linux ``PARMRK`` convention (termios(3)), so the same decoder also reads a real
UART opened with space parity and ``INPCK|PARMRK``, where a byte with the 9th bit set is a
parity error:

====================  ===================
word                  bytes on the link
====================  ===================
``b``, no wakeup      ``b`` (``b != FF``)
``FF``, no wakeup     ``FF FF``
``b`` with wakeup     ``FF 00 b``
====================  ===================

So the host poll ``01 1F`` (address 1 with the wakeup bit, then ``1F``) travels as
``FF 00 01 1F``. ``FF`` followed by anything other than ``FF`` or ``00`` is invalid: the
decoder counts it, logs it, drops the ``FF`` and reads on from the byte after it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from drivers.base import Word
from sas_protocol.hexdump import elided_hex

__all__ = ["MARK", "NineBitDecoder", "encode"]

log = logging.getLogger(__name__)

MARK = 0xFF
_WAKEUP = 0x00


def encode(words: Iterable[Word]) -> bytes:
    """The bytes that carry ``words`` on an 8-bit link."""
    out = bytearray()
    for word in words:
        if word.wakeup:
            out += bytes((MARK, _WAKEUP, word.value))
        elif word.value == MARK:
            out += bytes((MARK, MARK))
        else:
            out.append(word.value)
    return bytes(out)


class NineBitDecoder:
    """Incremental decoder: feed any split of the byte stream, get whole words back.

    ``errors`` counts invalid escape sequences (each also logged with ``device`` named).
    """

    _PLAIN, _ESCAPE, _MARKED = range(3)

    def __init__(self, device: str = "") -> None:
        self.device = device
        self.errors = 0
        self._state = self._PLAIN

    @property
    def at_boundary(self) -> bool:
        """True when no escape sequence is half-received."""
        return self._state == self._PLAIN

    def reset(self) -> None:
        """Forget a half-received escape sequence (after discarding input)."""
        self._state = self._PLAIN

    def feed(self, data: bytes) -> list[Word]:
        words: list[Word] = []
        state = self._state
        for i, b in enumerate(data):
            if state == self._PLAIN:
                if b == MARK:
                    state = self._ESCAPE
                else:
                    words.append(Word(b, False))
            elif state == self._ESCAPE:
                if b == MARK:
                    words.append(Word(MARK, False))
                    state = self._PLAIN
                elif b == _WAKEUP:
                    state = self._MARKED
                else:
                    self.errors += 1
                    log.warning(
                        "%s: invalid 9-bit escape FF %02x, FF dropped (near: %s)",
                        self.device or "9-bit decoder",
                        b,
                        elided_hex(data[max(0, i - 8) : i + 8]),
                    )
                    state = self._PLAIN
                    words.append(Word(b, False))
            else:
                words.append(Word(b, True))
                state = self._PLAIN
        self._state = state
        return words
