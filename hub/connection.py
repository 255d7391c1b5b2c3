"""The hub's connection class: HTTP methods checked before websockets reads the request, and
no backlog parsed once the hub stops.

websockets parses only what a WebSocket handshake needs: it hands any method to
``process_request`` (so DELETE, TRACE or a made-up method on ``/`` got the page), and a
request with a body is not answered at all. Every path of the hub (the two WebSocket paths,
the dashboard files, ``/healthz``) is GET only, so the request line's method is looked at
first, as the bytes arrive: anything else gets ``405 Method Not Allowed`` with
``Allow: GET`` (docs/protocol.md §1) and the connection is closed, body unread.

Once the hub stops (:class:`StopRequest`, set from the SIGTERM handler itself, between two
callbacks of a long event-loop turn), a connection the hub is behind on, or that receives
more than a close frame, parses nothing more of what arrives: under overload each read is
up to 256 KB (about a thousand events) per connection, and parsing it for 3,000
connections took a starved hub many seconds before it could even start to stop. The
connection gets its 1001 close frame and is aborted (hub/wsio.py ``close_if_behind``).

Once open, a connection's whole text frames are read by the hub's own
:class:`~hub.frame_reader.FrameReader` in front of websockets' parser (the same frames in
websockets' buffer, a fraction of the CPU per frame); anything else is websockets' to parse.
"""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection

from hub.frame_reader import FrameReader, at_frame_boundary
from hub.http_answers import text_response
from hub.wsio import close_if_behind

#: Longest method token looked for (the longest standard one, OPTIONS, has 7 letters).
_MAX_METHOD = 32


class StopRequest:
    """The hub's "stopping" flag as its connections see it: a plain attribute, so that a
    signal handler may set it at any moment."""

    def __init__(self) -> None:
        self.requested = False


class HubConnection(ServerConnection):
    """A :class:`ServerConnection` that answers a non-GET request line with 405, and parses
    nothing more of a backlog once the hub stops."""

    #: The hub's flag (:func:`connection_class` makes the class of one hub's connections).
    stop_request = StopRequest()

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._head = b""
        self._method_checked = False
        #: Reads whole text frames in front of websockets once the connection is open; None
        #: before, False once websockets parses everything.
        self._reader: FrameReader | bool | None = None

    def data_received(self, data: bytes) -> None:
        if self._method_checked:
            if (self.stop_request.requested
                    and close_if_behind(self, 1001, "going away", len(data))):
                return  # not parsed: the hub stops (its close frame is sent, then an abort)
            reader = self._reader
            if reader is None and at_frame_boundary(self.protocol):
                reader = self._reader = FrameReader(
                    self.protocol, self.recv_messages.put, super().data_received)
            if isinstance(reader, FrameReader):
                if reader.active:
                    reader.feed(data)
                    return
                self._reader = False
            super().data_received(data)
            return
        self._head += data
        space = self._head.find(b" ", 0, _MAX_METHOD + 1)
        if space < 0 and len(self._head) <= _MAX_METHOD:
            return  # the method is not complete yet
        self._method_checked = True
        head, self._head = self._head, b""
        if space > 0 and head[:space] == b"GET":
            super().data_received(head)
            return
        response = text_response(405, "method not allowed: this hub answers GET only\n")
        response.headers["Allow"] = "GET"
        self.transport.write(response.serialize())
        self.transport.close()


def connection_class(stop: StopRequest) -> type[HubConnection]:
    """The connection class of one hub, whose connections see its ``stop`` flag."""
    return type("HubConnection", (HubConnection,), {"stop_request": stop})
