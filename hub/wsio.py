"""WebSocket I/O helpers of the hub: reading a burst, writing many frames at once.

Both look below websockets' one-message ``recv``/``send`` (its frame buffer, its Sans-I/O
``protocol`` object and ``send_context``, all used as the library itself uses them) because
per-message overhead is what bounds a hub with thousands of terminals and tens of clients:
a burst of a few events read without a timeout per burst, an event framed once for all its
clients, a client's queued frames written with one system call.
"""

from __future__ import annotations

import asyncio
import struct

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode
from websockets.protocol import State


def message_ready(ws: ServerConnection) -> bool | None:
    """True if a whole message is already received (``recv`` returns it without waiting);
    None if this version of websockets does not say.

    Looked at in the connection's frame buffer (websockets' ``recv_messages``): a burst of
    a few events is read without arming a zero timeout per burst, whose cancellation costs
    more than the burst's parsing.
    """
    try:
        frames = ws.recv_messages.frames.queue
    except AttributeError:
        return None
    return bool(frames) and bool(frames[0].fin)


#: The largest a client's close frame can be (RFC 6455 §5.5: a control frame's payload is
#: at most 125 bytes; 2 header bytes and a 4-byte mask): more data is not only the answer.
MAX_CLOSE_FRAME = 131


def close_if_behind(ws: ServerConnection, code: int, reason: str, arrived: int = 0) -> bool:
    """If messages are waiting unread (the hub is behind on this connection), or ``arrived``
    bytes are more than a close frame, send the close frame and abort the connection at
    once, without reading anything more: True then.

    For a hub that stops (hub/server.py ``Hub.stop``): the peer's answer to the close frame
    is behind the backlog, so the close handshake could only finish after websockets had
    parsed all of it (a read is up to 256 KB, about a thousand events, per connection),
    and websockets' own close costs a task and several loop turns per connection, which a
    starved hub with thousands of connections does not have.
    """
    try:
        assembler = ws.recv_messages
        behind = (arrived > MAX_CLOSE_FRAME or assembler.paused
                  or bool(assembler.frames.queue))
        protocol = ws.protocol
    except AttributeError:  # another version of websockets: the handshake takes its time
        return False
    transport = ws.transport
    if not behind or transport is None or transport.is_closing():
        return False
    transport.pause_reading()
    if protocol.state is State.OPEN:
        protocol.send_close(code, reason)
        for data in protocol.data_to_send():
            if data:
                transport.write(data)  # sent now if the socket takes it, else dropped
    transport.abort()
    return True


def _take_texts(ws: ServerConnection, texts: list[str | bytes], limit: int) -> int:
    """Move the whole text messages at the head of websockets' frame buffer to ``texts``
    (up to ``limit``), as ``recv`` would return them; how many.

    What ``recv`` does for a message already received (websockets' ``Assembler.get``: pop
    the frame, resume reading below the low-water mark, decode), without a coroutine and a
    lock per message. Anything else (a fragmented or binary message, text that is not
    UTF-8) is left where it is, for ``recv`` and its own handling (1007 for bad UTF-8).
    """
    try:
        assembler = ws.recv_messages
        queue = assembler.frames.queue
        if assembler.get_in_progress:
            return 0
    except AttributeError:  # another version of websockets: recv does it all
        return 0
    taken = 0
    while queue and len(texts) < limit:
        frame = queue[0]
        if not frame.fin or frame.opcode is not Opcode.TEXT:
            break
        try:
            text = bytes(frame.data).decode()
        except UnicodeDecodeError:
            break
        queue.popleft()
        assembler.maybe_resume()
        texts.append(text)
        taken += 1
    return taken


async def read_burst(ws: ServerConnection, first: str | bytes, limit: int
                      ) -> tuple[list[str | bytes], ConnectionClosed | None]:
    """``first`` and the messages already received behind it (at most ``limit``).

    Never waits for the network. A close is returned, not raised, so the messages before
    it are still handled.
    """
    texts = [first]
    ready = message_ready(ws)
    if ready is not None:
        try:
            while ready and len(texts) < limit:
                if not _take_texts(ws, texts, limit):
                    texts.append(await ws.recv())
                ready = message_ready(ws)
        except ConnectionClosed as exc:
            return texts, exc
        return texts, None
    # Without a look at the buffer: a zero timeout cancels ``recv`` at the first moment it
    # would have to wait, and websockets documents that a cancelled ``recv`` loses nothing
    # (the message is returned by the next call).
    try:
        async with asyncio.timeout(0):
            while len(texts) < limit:
                texts.append(await ws.recv())
    except TimeoutError:
        pass
    except ConnectionClosed as exc:
        return texts, exc
    return texts, None


class Framed(bytes):
    """Whole WebSocket text frames (one or a run of several), serialized once for every
    peer they go to.

    The hub's frames are unmasked (RFC 6455 §5.1: only clients mask) and no extension is
    ever negotiated (``compression=None``), so the bytes of a frame are the same for every
    client: a fan-out to 50 viewers frames an event once, not 50 times, and a run of a
    group's frames is joined once for all the viewers that take every one of them.
    ``payloads`` are the UTF-8 texts, for a connection that would need them framed by the
    library; ``frame_count`` is how many frames (a peer's queue is bounded in frames).
    """

    payloads: tuple[bytes, ...]

    @property
    def frame_count(self) -> int:
        return len(self.payloads)


_HEADER_16 = struct.Struct(">BBH")


def frame_header(size: int) -> bytes:
    """The header of an unmasked, final text frame of ``size`` payload bytes (RFC 6455
    §5.2: FIN + opcode 1, then the length in 7 bits, or 126 + 16 bits, or 127 + 64 bits)."""
    if size < 126:
        return bytes((0x81, size))
    if size < 65536:
        return _HEADER_16.pack(0x81, 126, size)
    return b"\x81\x7f" + size.to_bytes(8, "big")


def framed(payload: bytes) -> Framed:
    """``payload`` (UTF-8 JSON text) as a whole unmasked text frame."""
    out = Framed(frame_header(len(payload)) + payload)
    out.payloads = (payload,)
    return out


def joined(frames: list[Framed]) -> Framed:
    """Several frames as one run (one bytes object, written with one call)."""
    if len(frames) == 1:
        return frames[0]
    out = Framed(b"".join(frames))
    out.payloads = tuple(p for f in frames for p in f.payloads)
    return out


def run_of(wires: list[bytes], payloads: list[bytes]) -> Framed:
    """Frames as one run, each given as its bytes on the wire (:func:`frame_header` + its
    payload) and its payload: what :func:`joined` makes of their :func:`framed` frames,
    without a :class:`Framed` (and its attributes) made per frame (hub/fanout.py)."""
    out = Framed(b"".join(wires))
    out.payloads = tuple(payloads)
    return out


async def send_frames(ws: ServerConnection, frames: list[str | bytes]) -> None:
    """Send text frames, in order, with one write to the socket for all of them.

    A viewer subscribed to everything gets every event: one ``send`` (and one system call)
    per frame and per viewer is what would bound the fan-out. This is what
    ``ServerConnection.send`` does (its ``send_context``, then the Sans-I/O
    ``protocol.send_text``), with the frames' bytes joined into one write, and
    :class:`Framed` frames taken as they are.
    """
    async with ws.send_context():
        write_now(ws, frames)


def can_write_now(ws: ServerConnection) -> bool:
    """True if frames may be written at once, without a writer task: the connection is open
    and everything written before went out to the socket (nothing buffered, so no flow
    control is due; a peer that does not read fills its socket first, then its queue)."""
    transport = ws.transport
    return (ws.protocol.state is State.OPEN and transport is not None
            and not transport.is_closing() and transport.get_write_buffer_size() == 0)


def write_now(ws: ServerConnection, frames: list[str | bytes]) -> None:
    """Frames to the socket with one write, what websockets queued before them first (a
    pong, a ping). Inside ``send_context``, or when :func:`can_write_now` says so."""
    protocol = ws.protocol
    as_is = not protocol.extensions
    parts: list[bytes] = []
    for frame in frames:
        if isinstance(frame, Framed):
            if as_is:
                parts.extend(protocol.data_to_send())  # what is queued before it
                parts.append(frame)
            else:
                for payload in frame.payloads:
                    protocol.send_text(payload)
        else:
            protocol.send_text(frame if isinstance(frame, bytes) else frame.encode())
    parts.extend(protocol.data_to_send())
    if all(parts):  # no end-of-stream marker (b""): one write for all the frames
        ws.transport.write(b"".join(parts))
    else:
        for chunk in parts:  # closing meanwhile: each piece as the library would
            if chunk:
                ws.transport.write(chunk)
            elif ws.transport.can_write_eof():
                ws.transport.write_eof()
