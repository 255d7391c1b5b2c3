"""A minimal WebSocket client for load generators: RFC 6455 over an asyncio Protocol.

The load generator shares the machine's 2 cores with the hub it measures, so what it spends
per message is taken from the hub. A ``websockets`` client costs a task wake-up, a
generator-based frame parser and a ``send`` per message; at 10,000 events/s from 3,000
terminals and 50 viewers each receiving all of them (500,000 frames/s) that is more CPU than
the machine has. This client:

- opens the connection with a plain HTTP/1.1 upgrade (``Authorization: Bearer``, as
  docs/protocol.md §1 says a terminal or a client may);
- sends a burst of text frames (masked, RFC 6455 §5.3) with one write;
- hands received frames to :meth:`RawWs.frame` from the protocol's ``data_received`` (no task
  per read), answers pings (§5.5.2) and records the close code (§5.5.1);
- or, for a viewer that only counts events, :class:`CountingWs` counts them in the raw byte
  stream without walking the frames (the hub's frames are unmasked and uncompressed, so each
  event frame's payload is its JSON text as is), and answers anything that looks like a
  ping (an unsolicited pong is allowed, §5.5.3).

Only what the benchmark needs: no fragmentation (the hub never fragments), no extensions.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random

try:  # websockets' C helper, if built; the same XOR in Python otherwise
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


def masked(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame (RFC 6455 §5.2)."""
    key = random.randbytes(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    return head + key + apply_mask(payload, key)


class RawWs(asyncio.Protocol):
    """One client connection; subclasses take the frames (:meth:`frame`)."""

    def __init__(self, host: str, port: int, path: str, token: str) -> None:
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[int | None] = loop.create_future()
        self.close_code: int | None = None
        self.transport: asyncio.Transport | None = None
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
            f"{base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"Authorization: Bearer {token}\r\n\r\n").encode()
        self._head = b""
        self._open = False
        self._buf = bytearray()

    @classmethod
    async def connect(cls, host: str, port: int, path: str, token: str,
                      *args: object) -> RawWs:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(
            lambda: cls(host, port, path, token, *args), host, port)
        await proto.opened
        return proto

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._open:
            self.stream(data)
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            return
        head, rest = self._head[:end], self._head[end + 4:]
        self._head = b""
        if not head.startswith(b"HTTP/1.1 101"):
            self.opened.set_exception(RuntimeError(head.split(b"\r\n", 1)[0].decode()))
            assert self.transport is not None
            self.transport.close()
            return
        self._open = True
        self.opened.set_result(None)
        if rest:
            self.stream(rest)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)
        self.lost()

    # ------------------------------------------------------------------ frames

    def stream(self, data: bytes) -> None:
        """Bytes after the handshake: split into frames (the server's are unmasked)."""
        buf = self._buf
        buf += data
        i, end = 0, len(buf)
        while end - i >= 2:
            b0, n = buf[i], buf[i + 1] & 0x7F
            h = 2
            if n == 126:
                if end - i < 4:
                    break
                n, h = int.from_bytes(buf[i + 2:i + 4], "big"), 4
            elif n == 127:
                if end - i < 10:
                    break
                n, h = int.from_bytes(buf[i + 2:i + 10], "big"), 10
            if end - i < h + n:
                break
            payload = bytes(buf[i + h:i + h + n])
            i += h + n
            opcode = b0 & 0x0F
            if opcode == OP_PING:
                self.send_frame(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                self.close_code = int.from_bytes(payload[:2], "big") if payload else 1005
                self.close(self.close_code)
            elif opcode != OP_PONG:
                self.frame(payload)
        del buf[:i]

    def frame(self, payload: bytes) -> None:
        """A text frame's payload."""

    def lost(self) -> None:
        """The connection is closed."""

    # ------------------------------------------------------------------ sending

    def send_texts(self, payloads: list[bytes]) -> None:
        """Text frames, masked, in one write."""
        assert self.transport is not None
        self.transport.write(b"".join([masked(OP_TEXT, p) for p in payloads]))

    def send_frame(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(masked(opcode, payload))

    def close(self, code: int = 1000) -> None:
        """Send a close frame and close the socket (the benchmark waits for no reply)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(masked(OP_CLOSE, code.to_bytes(2, "big")))
            self.transport.close()


class CountingWs(RawWs):
    """A viewer that counts event frames in the byte stream (``on_events(n)``)."""

    EVENT = b'{"type":"event",'

    def __init__(self, host: str, port: int, path: str, token: str,
                 on_events: object = None) -> None:
        super().__init__(host, port, path, token)
        self.on_events = on_events
        self._tail = b""
        self.received = 0

    def stream(self, data: bytes) -> None:
        chunk = self._tail + data
        n = chunk.count(self.EVENT)
        if n:
            self.received += n
            if callable(self.on_events):
                self.on_events(n)
        # A ping from the hub is 0x89, a length of 4, 4 bytes: answer each one that ends in
        # the new bytes (the tail's were answered already). Event payloads are ASCII JSON and
        # a length byte is never 0x89, so a false match is at most a harmless pong.
        start = 0
        while True:
            at = chunk.find(b"\x89\x04", start)
            if at < 0 or at + 6 > len(chunk):
                break
            if at + 6 > len(self._tail):
                self.send_frame(OP_PONG, chunk[at + 2:at + 6])
            start = at + 1
        # A close from the hub (0x88, a length under 126, the code): recorded for the
        # report when the socket closes.
        close_at = chunk.rfind(b"\x88")
        if 0 <= close_at <= len(chunk) - 4 and chunk[close_at + 1] < 126:
            code = int.from_bytes(chunk[close_at + 2:close_at + 4], "big")
            if 1000 <= code < 5000:
                self.close_code = code
        # Shorter than EVENT: no event is counted twice; long enough for a ping's 6 bytes.
        self._tail = chunk[-(len(self.EVENT) - 1):]
