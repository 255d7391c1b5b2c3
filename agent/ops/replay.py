"""``slot-agent replay``: what the agent would have made of a captured conversation.

The capture (api/capture.py) is fed, in order, through ``sas_protocol.HostProtocol`` (one per
machine address, as the line owner drives it) and its host events are turned into the
observations the line owner makes of them, which the :class:`agent.derive.interpreter.Interpreter`
turns into events. No clock, no line, no outbox: the result depends on the file alone.

How the captured bytes drive the host role:

- a ``tx`` frame to an address of the header is a poll: a repeat of what the host still
  wants to send (a retry, the poll after its sync poll) is taken as that send; otherwise the
  poll in flight is closed by its reply window (``receive_timeout``) and the new poll sent;
- a ``tx`` general poll to ``syncAddress`` is the host's own sync poll (SAS §3.5) and skipped;
- ``rx`` bytes go to the host of the poll in flight;
- times come from the capture (``startedAt`` + ``t``).

Observations made: link up/down, exceptions, real-time events, meter reads (reason
``timer``; per game meters ignored as the interpreter does), the machine's identity once
LP 54 and LP 1F have both been answered, handpays (LP 1B, converted as the line owner does:
agent/line/replies.py), tickets (LP 4D) and the machine's clock (LP 7E). Other replies are
counted under ``repliesNotInterpreted``.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from agent.derive.exceptions_map import CONFIRMED_CODES
from agent.derive.interpreter import Interpreter
from agent.derive.state import AgentState
from agent.line.discovery import clock_read
from agent.line.replies import (
    cashout_ticket_read,
    game_lock_read,
    handpay_read,
    last_bill_read,
    ticket_read,
)
from agent.observations import (
    ExceptionObserved,
    LinkDown,
    LinkUp,
    MachineIdentified,
    MetersRead,
    Observation,
    RealTimeEventObserved,
)
from api.capture import Capture
from api.events import Event
from sas_protocol.denominations import denomination_cents
from sas_protocol.errors import LocalProtocolError, RemoteProtocolError
from sas_protocol.host import (
    ExceptionReported,
    FrameRejected,
    HostEvent,
    HostProtocol,
    NotSupported,
    PollFailed,
    RealTimeEventReceived,
    ReplyReceived,
)
from sas_protocol.host import LinkDown as HostLinkDown
from sas_protocol.host import LinkUp as HostLinkUp
from sas_protocol.messages.meters import MeterReply
from sas_protocol.messages.requests import GeneralPoll, Poll, decode_request
from sas_protocol.messages.responses import (
    AftLockStatusReply,
    DateTimeReply,
    EnhancedValidationReply,
    GameCountReply,
    HandpayInfoReply,
    LastBillReply,
    MachineInfoReply,
    SasVersionReply,
)
from sas_protocol.messages.ticket_info import CashoutTicketReply

__all__ = ["Replay", "ReplayResult", "replay"]


@dataclass(slots=True)
class ReplayResult:
    events: list[Event] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class _Machine:
    host: HostProtocol
    queued: deque[bytes] = field(default_factory=deque)  # what the host wants to send
    identity: dict[str, Any] = field(default_factory=dict)
    identified: bool = False
    up_at_start: bool = False  # the link was up when the capture began (header)


class Replay:
    """Feeds one capture; :meth:`run` yields the events in order."""

    def __init__(self, capture: Capture, *, terminal_id: str | None = None) -> None:
        header = capture.header
        self.capture = capture
        self.sync_address = int(header.get("syncAddress", 0))
        self.started_at = capture.started_at
        self.interpreter = Interpreter(terminal_id or str(header.get("terminalId", "")),
                                       rte=bool(header.get("rte", False)))
        self.state: AgentState = self.interpreter.initial_state()
        link_down_after = int(header.get("linkDownAfter", 5))
        self.machines = {
            int(a): _Machine(HostProtocol(int(a), sync_address=self.sync_address,
                                          link_down_after=link_down_after,
                                          confirm_exceptions=CONFIRMED_CODES))
            for a in header.get("addresses", [])}
        self.current: int | None = None
        self.result = ReplayResult()

    def run(self) -> Iterator[Event]:
        yield from self._known_at_start()
        for frame in self.capture.frames:
            at = self.started_at + frame.t
            if frame.direction == "tx":
                yield from self._tx(frame.data, at)
            elif self.current is not None:
                m = self.machines[self.current]
                m.host.receive_data(frame.data)
                yield from self._events(self.current, m, at)
            else:
                self.result.counters["rxWithoutPoll"] += 1

    def _known_at_start(self) -> Iterator[Event]:
        """What the agent knew when the capture began (header ``machines``): the link that
        was up and the identity it had read, as the observations it made of them then."""
        for key, known in dict(self.capture.header.get("machines") or {}).items():
            address = int(key)
            if address not in self.machines or not isinstance(known, dict):
                continue
            observations: list[Observation] = []
            if known.get("linkUp"):
                self.machines[address].up_at_start = True
                observations.append(LinkUp(at=self.started_at, address=address))
            identity = known.get("identity") or {}
            if identity.get("sasVersion") and identity.get("gameId") is not None:
                self.machines[address].identified = True
                observations.append(MachineIdentified(
                    at=self.started_at, address=address,
                    sas_version=str(identity["sasVersion"]),
                    serial_number=str(identity.get("serialNumber") or ""),
                    game_id=str(identity["gameId"]),
                    denomination_cents=int(identity.get("denomination") or 0),
                    games=int(identity.get("games") or 1)))
            yield from self._interpret(observations)

    def _interpret(self, observations: list[Observation]) -> Iterator[Event]:
        for obs in observations:
            outcome = self.interpreter.observe(self.state, obs)
            self.state = outcome.state
            self.result.events.extend(outcome.events)
            yield from outcome.events

    def _tx(self, data: bytes, at: float) -> Iterator[Event]:
        parsed = self._poll(data)
        if parsed is None:
            return
        address, poll = parsed
        m = self.machines[address]
        self.current = address
        while True:
            while m.queued:
                if m.queued.popleft() == data:
                    return  # a retry, or the poll its sync poll preceded: already sent
            if not m.host.awaiting_reply:
                break
            m.host.receive_timeout()  # the capture moved on: the reply window closed
            self._take_output(m)
            yield from self._events(address, m, at)
        m.host.send(poll)
        self._take_output(m)
        if m.queued and m.queued[0] == data:
            m.queued.popleft()

    def _poll(self, data: bytes) -> tuple[int, Poll] | None:
        counters = self.result.counters
        if len(data) == 1 and data[0] & 0x80:
            address = data[0] & 0x7F
            if address == self.sync_address or address not in self.machines:
                counters["syncPolls"] += 1
                return None
            return address, GeneralPoll()
        try:
            address, request = decode_request(data)
        except RemoteProtocolError:
            counters["unreadablePolls"] += 1
            return None
        if address not in self.machines:
            counters["pollsToOtherAddresses"] += 1
            return None
        return address, request

    def _take_output(self, m: _Machine) -> None:
        sync = bytes((0x80 | self.sync_address,))
        m.queued.extend(out.data for out in m.host.data_to_send() if out.data != sync)

    def _events(self, address: int, m: _Machine, at: float) -> Iterator[Event]:
        self._take_output(m)
        for event in m.host.events_received():
            yield from self._interpret(self._observations(address, m, event, at))

    def _observations(self, address: int, m: _Machine, event: HostEvent,
                      at: float) -> list[Observation]:
        counters = self.result.counters
        match event:
            case HostLinkUp() if m.up_at_start:
                m.up_at_start = False  # the replay's host role meets the link already up
            case HostLinkUp():
                return [LinkUp(at=at, address=address)]
            case HostLinkDown():
                return [LinkDown(at=at, address=address, reason="no valid reply")]
            case ExceptionReported(code=code):
                return [ExceptionObserved(at=at, address=address, code=code)]
            case RealTimeEventReceived(event=rte):
                return [RealTimeEventObserved(at=at, address=address, code=rte.event_code,
                                              fields=rte.fields())]
            case ReplyReceived(reply=MeterReply() as reply):
                return [MetersRead(at=at, address=address, meters=dict(reply.meters),
                                   widths=dict(reply.widths), reason="timer",
                                   game=reply.game)]
            case ReplyReceived(reply=SasVersionReply() | MachineInfoReply() |
                               GameCountReply() as reply):
                return self._identity(address, m, reply, at)
            case ReplyReceived(reply=HandpayInfoReply() as reply):
                handpay = handpay_read(reply, address=address, at=at,
                                       denomination_cents=m.identity.get("denomination_cents"))
                if handpay is not None:
                    return [handpay]
                counters["handpaysBeforeDenomination"] += 1
            case ReplyReceived(reply=EnhancedValidationReply() as reply):
                return [ticket_read(reply, address=address, at=at)]
            case ReplyReceived(reply=CashoutTicketReply() as reply):
                return [cashout_ticket_read(reply, address=address, at=at)]
            case ReplyReceived(reply=LastBillReply() as reply):
                return [last_bill_read(reply, address=address, at=at)]
            case ReplyReceived(reply=AftLockStatusReply() as reply):
                return [game_lock_read(reply, address=address, at=at)]
            case ReplyReceived(reply=DateTimeReply() as reply):
                clock = clock_read(reply, address=address, at=at)
                if clock is not None:
                    return [clock]
                counters["impossibleClocks"] += 1
            case ReplyReceived():
                counters["repliesNotInterpreted"] += 1
            case NotSupported():
                counters["ignoredPolls"] += 1
            case PollFailed(reason=reason):
                counters[f"failed:{reason.value}"] += 1
            case FrameRejected():
                counters["badFrames"] += 1
        return []

    def _identity(self, address: int, m: _Machine,
                  reply: SasVersionReply | MachineInfoReply | GameCountReply,
                  at: float) -> list[Observation]:
        if isinstance(reply, SasVersionReply):
            m.identity.update(sas_version=reply.version, serial_number=reply.serial)
        elif isinstance(reply, MachineInfoReply):
            try:
                cents = denomination_cents(reply.denomination)
            except LocalProtocolError:
                cents = 0
            m.identity.update(game_id=reply.game_id, denomination_cents=cents)
        else:
            m.identity["games"] = reply.count
        if m.identified or not {"sas_version", "game_id"} <= m.identity.keys():
            return []
        m.identified = True
        return [MachineIdentified(
            at=at, address=address, sas_version=m.identity["sas_version"],
            serial_number=m.identity["serial_number"], game_id=m.identity["game_id"],
            denomination_cents=m.identity["denomination_cents"],
            games=int(m.identity.get("games", 1)))]


def replay(capture: Capture, *, terminal_id: str | None = None) -> ReplayResult:
    """Every event the capture produces, and the replay's counters."""
    runner = Replay(capture, terminal_id=terminal_id)
    for _ in runner.run():
        pass
    return runner.result
