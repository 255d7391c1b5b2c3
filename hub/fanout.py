"""What a stored group of events sends to the clients, serialized once for all of them.

The hub's CPU per event bounds its rate (docs/performance.md, "Hub under floor load"), and
with tens of clients subscribed to everything the fan-out is most of it if done per event
and per client. So, per published group (hub/ingest.py):

- each event's frame text is built once, from the ``data`` text already encoded for the
  store (:func:`event_text`: no second encoding of ``data``), and framed once
  (hub/wsio.py :class:`~hub.wsio.Framed`);
- the frames (events, then after each batch the ``terminal`` state of the terminals it
  touched, as before) are collected in order, in chunks of at most a quarter of a client's
  queue, and each chunk goes to a client as ONE queue item: joined once for every client
  that takes everything, picked out per client for those with narrower filters;
- between chunks, if a client's queue is half full, the loop is let run so its writer can
  send (only clients that do not read are dropped as slow consumers, 4001).

The order each client sees is the order the hub stored the events (protocol.md §5).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from api.wire import MessageType
from hub.history import hold_percent
from hub.json_text import reused_encoder
from hub.peer import let_writers_run
from hub.wsio import Framed, frame_header, framed, run_of

if TYPE_CHECKING:
    from hub.client_sessions import ClientSessions
    from hub.floor import TerminalState

#: Compact JSON exactly as ``api.wire.encode`` writes it, with one encoder for every call
#: (``json.dumps`` with options builds an encoder per call).
ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

#: A JSON string literal for a str, as ENCODER writes it (the C function it uses).
_quote = json.encoder.encode_basestring


#: The same text as ``ENCODER.encode``, its C encoder made once (hub/json_text.py).
encode: Callable[[Any], str] = reused_encoder(allow_nan=False)

#: Most frames in one chunk of the fan-out (and at most a quarter of a client's queue).
MAX_CHUNK = 256

_EVENT_KEYS = ("type", "id", "seq", "channel", "terminalId", "event", "timestamp", "data")
_EVENT_TYPE = MessageType.EVENT.value


def event_text(frame: Mapping[str, Any], data_text: str | None) -> str:
    """The frame's JSON text (``type`` ... ``data``, then ``cursor`` if it has one), with
    ``data_text`` (``encode(frame["data"])``, done once for the store) spliced in as is.

    The same text :data:`ENCODER` writes for the frame with its keys in the order of
    ``api.wire.event``; any frame not of exactly that shape is encoded whole instead.
    """
    seq = frame.get("seq")
    cursor = frame.get("cursor")
    if (data_text is None or type(seq) is not int or len(frame) != 8 + ("cursor" in frame)
            or not (cursor is None or type(cursor) is int)
            or frame.get("type") != _EVENT_TYPE):
        return encode({k: frame[k] for k in (*_EVENT_KEYS, "cursor") if k in frame})
    try:
        head = (f'{{"type":"event","id":{_quote(frame["id"])},"seq":{seq},"channel":'
                f'{_quote(frame["channel"])},"terminalId":{_quote(frame["terminalId"])},'
                f'"event":{_quote(frame["event"])},"timestamp":{_quote(frame["timestamp"])},'
                f'"data":')
    except (KeyError, TypeError):  # not strings: whatever the encoder makes of them
        return encode({k: frame[k] for k in (*_EVENT_KEYS, "cursor") if k in frame})
    if cursor is None:
        return head + data_text + "}"
    return f'{head}{data_text},"cursor":{cursor}}}'


def ack_frame(up_to: int) -> Framed:
    """A terminal's ``ack`` (protocol.md §4), framed."""
    return framed(b'{"type":"ack","upTo":%d}' % up_to)


def terminal_frame(state: TerminalState) -> Framed:
    """A ``terminal`` message (protocol.md §5) for ``state``, framed."""
    return framed(terminal_text(state).encode())


def _text_or_null(value: str | None) -> str:
    return "null" if value is None else _quote(value)


_SUMMARY_KEYS = ("id", "event", "timestamp")


def _summary_text(value: dict[str, Any]) -> str:
    """A ``lastEvent`` (hub/floor.py ``_summary``: three strings) as ENCODER writes it;
    any other dict encoded."""
    if len(value) == 3:
        i, e, t = value.get("id"), value.get("event"), value.get("timestamp")
        if type(i) is str and type(e) is str and type(t) is str \
                and tuple(value) == _SUMMARY_KEYS:
            return f'{{"id":{_quote(i)},"event":{_quote(e)},"timestamp":{_quote(t)}}}'
    return encode(value)


def terminal_text(state: TerminalState) -> str:
    """``encode({"type": "terminal", "terminal": state.to_wire()})``, the same text, written
    field by field (a hypothesis test holds the two together; the fields are of the types
    :class:`~hub.floor.TerminalState` declares): a frame goes out per terminal and burst,
    and the encoder took 4 of its 7 µs (docs/performance.md, "Hub CPU per event: fewer
    steps per event")."""
    s = state
    coin_in, coin_out = s.coin_in, s.coin_out
    hold = hold_percent(coin_in, coin_out)
    locked = s.locked
    last, tilt, handpay, balance = s.last_event, s.tilt, s.handpay, s.balance
    reasons = ",".join([_quote(r) for r in s.lock_reasons()]) if locked else ""
    doors = ",".join([_quote(d) for d in sorted(s.doors_open)]) if s.doors_open else ""
    return (
        f'{{"type":"terminal","terminal":{{"terminalId":{_quote(s.terminal_id)},'
        f'"online":{"true" if s.online else "false"},"since":{_text_or_null(s.since)},'
        f'"link":{_quote(s.link.value)},'
        f'"locked":{"null" if locked is None else "true" if locked else "false"},'
        f'"lockReasons":[{reasons}],"ackedSeq":{s.acked_seq},'
        f'"lastEvent":{"null" if last is None else _summary_text(last)},'
        f'"day":{_quote(s.day)},"coinInToday":{coin_in},"coinOutToday":{coin_out},'
        f'"netWinToday":{coin_in - coin_out},'
        f'"holdPercentToday":{"null" if hold is None else float.__repr__(hold)},'
        f'"gamesToday":{s.games},"unackedAlerts":{s.unacked_alerts},'
        f'"balance":{"null" if balance is None else balance},"doorsOpen":[{doors}],'
        f'"tilt":{"null" if tilt is None else encode(tilt)},'
        f'"handpay":{"null" if handpay is None else encode(handpay)},'
        f'"bank":{_text_or_null(s.bank)},"area":{_text_or_null(s.area)}}}}}')


class GroupFanOut:
    """Collects one published group's frames in order and queues them per chunk.

    ``event`` and ``terminal`` add a frame; :meth:`flush` queues what was collected (it is
    called by :meth:`add` itself when a chunk is full, and must be called at the end).
    """

    def __init__(self, clients: ClientSessions, queue_size: int) -> None:
        self._clients = clients
        self._chunk = max(1, min(MAX_CHUNK, queue_size // 4))
        #: Frames in order, each as its bytes on the wire, its payload, and the event frame
        #: it carries (None: to every client); joined per client by :func:`run_of`.
        self._frames: list[tuple[bytes, bytes, Mapping[str, Any] | None]] = []

    def event(self, frame: Mapping[str, Any], data_text: str | None) -> bool:
        """Add an event frame; True if the chunk is full (then :meth:`flush`)."""
        payload = event_text(frame, data_text).encode()
        self._frames.append((frame_header(len(payload)) + payload, payload, frame))
        return len(self._frames) >= self._chunk

    def terminal(self, state: TerminalState) -> bool:
        """Add a ``terminal`` state frame (every client gets it); True if the chunk is full."""
        payload = terminal_text(state).encode()
        self._frames.append((frame_header(len(payload)) + payload, payload, None))
        return len(self._frames) >= self._chunk

    async def flush(self) -> None:
        """Queue the collected frames, one item per client; let the writers run if a queue
        is half full."""
        frames, self._frames = self._frames, []
        if not frames:
            return
        everything: Framed | None = None
        filling = False
        for client in list(self._clients.connected):
            subscription = client.subscription
            if subscription.takes_all():
                if everything is None:
                    everything = run_of([f[0] for f in frames], [f[1] for f in frames])
                item: Framed | None = everything
            else:
                picked = [f for f in frames if f[2] is None or subscription.matches(f[2])]
                item = run_of([f[0] for f in picked], [f[1] for f in picked]) \
                    if picked else None
            if item is not None:
                peer = client.peer
                peer.send_text(item)
                filling = filling or peer.filling()
        if filling:
            # More than a queue may follow: let the writers send before going on, so only
            # clients that do not read are dropped as slow (hub/peer.py let_writers_run).
            await let_writers_run()
