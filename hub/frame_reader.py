"""The hub's own reading of a client's whole masked text frames, in front of websockets'.

Under floor load (docs/performance.md, "Hub CPU per event") every terminal burst went
through websockets' Sans-I/O parser: a generator per frame reading its header, its length,
its mask and its payload in four suspended steps, an ``Opcode`` made from the header, an
events list, and a dispatch per frame, all in Python, 3 µs an event. What a terminal sends
is nearly always whole, final, masked text frames; this reader takes those straight from
the bytes received (RFC 6455 §5.2: header, length in 7, 16 or 64 bits, the 4-byte mask,
the payload unmasked with websockets' own C function) and puts each in websockets' frame
buffer exactly as the library would (``Assembler.put`` of a ``Frame``), so ``recv``, its
UTF-8 check (1007), its flow control, and the hub's burst reading (hub/wsio.py) see no
difference.

Anything else goes to websockets: a ping or a pong (a whole frame of at most 125 bytes: it
answers or acknowledges it, and its parser stays at a frame boundary), and from the first
frame it must judge (close, binary, fragmented, unmasked, reserved bits, an unknown opcode,
larger than ``max_size``, a control frame of more than 125 bytes) everything that follows,
for good: its errors and close codes are the library's, unchanged. The reader only starts
on a connection whose websockets parser waits at a frame boundary with nothing buffered
(checked, not assumed), and never hands it part of a frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from websockets.frames import Frame, Opcode

try:  # websockets' C function, as its own parser uses it
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - a build without its C extension
    from websockets.utils import apply_mask
from websockets.protocol import Protocol, State
from websockets.streams import StreamReader

#: The first header byte of a final text frame with no reserved bit (FIN + opcode 1).
_TEXT = 0x81
#: Of a ping and of a pong (FIN + opcode 9 / 10): whole control frames, for websockets.
_PING, _PONG = 0x89, 0x8A
#: The largest payload of a control frame (RFC 6455 §5.5).
_MAX_CONTROL = 125

_AT_EOF = StreamReader.at_eof.__code__


def at_frame_boundary(protocol: Protocol) -> bool:
    """True if websockets' parser of an open connection waits for the first byte of a
    frame with nothing buffered (so whole frames may be read in front of it)."""
    try:
        if (protocol.state is not State.OPEN or protocol.reader.buffer
                or protocol.reader.eof or protocol.current_size is not None
                or protocol.extensions or protocol.max_message_size is None):
            return False
        gen: Any = protocol.parser  # a generator: its suspended chain is looked at
        while gen.gi_yieldfrom is not None:
            gen = gen.gi_yieldfrom
        return gen.gi_code is _AT_EOF
    except AttributeError:  # another version of websockets: it reads everything itself
        return False


class FrameReader:
    """Whole masked text frames of one open connection, read in front of websockets.

    ``feed`` takes the bytes received; ``put`` receives each text frame (websockets'
    ``Assembler.put``); ``pass_on`` gets the bytes websockets must parse itself. ``active``
    turns False for good at the first frame websockets must judge.
    """

    __slots__ = ("_max", "_pass_on", "_protocol", "_put", "_rx", "active")

    def __init__(self, protocol: Protocol, put: Callable[[Frame], None],
                 pass_on: Callable[[bytes], None]) -> None:
        self._rx = bytearray()  # the start of a frame not yet whole
        max_size = protocol.max_message_size
        assert max_size is not None
        self._max: int = max_size
        self._put = put
        self._pass_on = pass_on
        self._protocol = protocol
        self.active = True

    def feed(self, data: bytes) -> None:
        rx = self._rx
        if rx:
            rx += data
            buf: bytes | bytearray = rx
        else:
            buf = data
        n = len(buf)
        pos = 0
        put = self._put
        while n - pos >= 6:  # the smallest masked frame: 2 header bytes and the mask
            first = buf[pos]
            second = buf[pos + 1]
            length = second & 0x7F
            head = pos + 2
            if length == 126:
                if n - pos < 8:
                    break
                length = (buf[head] << 8) | buf[head + 1]
                head += 2
            elif length == 127:
                if n - pos < 14:
                    break
                length = int.from_bytes(buf[head:head + 8], "big")
                head += 8
            if not second & 0x80 or (
                    length > self._max if first == _TEXT
                    else first not in (_PING, _PONG) or length > _MAX_CONTROL):
                self._give_up(bytes(buf[pos:]))
                return
            end = head + 4 + length
            if end > n:
                break  # the rest of this frame is still to come
            if first == _TEXT:
                put(Frame(Opcode.TEXT, apply_mask(buf[head + 4:end], buf[head:head + 4])))
            else:
                self._pass_on(bytes(buf[pos:end]))
                if self._protocol.state is not State.OPEN:
                    self._give_up(bytes(buf[end:]))
                    return
            pos = end
        if buf is rx:
            del rx[:pos]
        elif pos < n:
            rx += buf[pos:]

    def _give_up(self, rest: bytes) -> None:
        """From here on websockets parses everything (``rest`` first)."""
        self.active = False
        self._rx = bytearray()
        if rest:
            self._pass_on(rest)
