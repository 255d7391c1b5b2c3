"""The host role's data (sas_protocol.host): its states and their transition tables, what it
writes (:class:`Outgoing`) and what it reports (the :data:`HostEvent` classes).

Kept apart from the state machine so that the tables read as the data they are (docs/sas.md
draws its "States" tables from them, checked by tests/sas_protocol/test_sas_host_states.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sas_protocol.codes import ExceptionCode
from sas_protocol.errors import RemoteProtocolError
from sas_protocol.messages.requests import Poll
from sas_protocol.messages.responses import Reply
from sas_protocol.rte import RealTimeEvent


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Bytes to write; ``wakeup`` applies to the first byte only (SAS §3.1)."""

    data: bytes
    wakeup: bool


class FailureReason(Enum):
    TIMEOUT = "timeout"
    CRC = "crc"
    FRAMING = "framing"
    NACK = "nack"
    BUSY = "busy"


class PollState(Enum):
    """Where the poll in flight is (``HostProtocol.state``)."""

    IDLE = "idle"  # no poll in flight: ``send`` may start one
    AWAITING_REPLY = "awaiting reply"  # a send is out and its reply window open
    CONFIRMING = "confirming"  # an exception byte was read; the implied-NACK re-send is out
    DISCARDING = "discarding"  # bad bytes in this window: the rest is ignored until it closes


class PollTrigger(Enum):
    """What moves a :class:`PollState`."""

    SEND = "send"  # ``send(poll)``
    BAD_BYTES = "bad bytes"  # a bad CRC, a malformed or misaddressed frame
    RESEND = "re-send"  # a send failed with sends left, or a reply was replaced (RTE, ROM)
    CONFIRM = "confirm"  # the same general poll again for another reading of an exception
    CONCLUDE = "conclude"  # the poll ended: its answer, NotSupported or PollFailed


class LinkState(Enum):
    """What the host knows of the machine's link (``HostProtocol.link_state``)."""

    UNKNOWN = "unknown"  # nothing answered since start, and not yet given up
    UP = "up"
    DOWN = "down"


class LinkTrigger(Enum):
    """What moves a :class:`LinkState`."""

    ANSWER = "answer"  # any valid reply, NACK or busy: the machine is there
    FAILURES = "failures"  # failed sends reached the count and the time span (module doc)


_P, _PT = PollState, PollTrigger

#: The poll state machine: ``POLL_TRANSITIONS[state][trigger]`` is the next state; any
#: other (state, trigger) is a bug and raises ``LocalProtocolError``.
POLL_TRANSITIONS: Mapping[PollState, Mapping[PollTrigger, PollState]] = {
    _P.IDLE: {_PT.SEND: _P.AWAITING_REPLY},
    _P.AWAITING_REPLY: {_PT.BAD_BYTES: _P.DISCARDING, _PT.RESEND: _P.AWAITING_REPLY,
                        _PT.CONFIRM: _P.CONFIRMING, _PT.CONCLUDE: _P.IDLE},
    _P.CONFIRMING: {_PT.BAD_BYTES: _P.DISCARDING, _PT.CONFIRM: _P.CONFIRMING,
                    _PT.CONCLUDE: _P.IDLE},
    _P.DISCARDING: {_PT.RESEND: _P.AWAITING_REPLY, _PT.CONFIRM: _P.CONFIRMING,
                    _PT.CONCLUDE: _P.IDLE},
}

#: The link state machine. A change of state is reported (``LinkUp`` / ``LinkDown``); the
#: same state again is not. Once down, further failures change nothing.
LINK_TRANSITIONS: Mapping[LinkState, Mapping[LinkTrigger, LinkState]] = {
    LinkState.UNKNOWN: {LinkTrigger.ANSWER: LinkState.UP,
                        LinkTrigger.FAILURES: LinkState.DOWN},
    LinkState.UP: {LinkTrigger.ANSWER: LinkState.UP, LinkTrigger.FAILURES: LinkState.DOWN},
    LinkState.DOWN: {LinkTrigger.ANSWER: LinkState.UP},
}

#: Exception codes in the reference's table (SAS §3.11); any other byte is "undefined".
DEFINED_EXCEPTIONS = frozenset(int(code) for code in ExceptionCode)


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    """The typed reply to ``poll`` (ACK, data reply, or a ROM signature)."""

    poll: Poll
    reply: Reply


@dataclass(frozen=True, slots=True)
class ExceptionReported:
    """A general-poll exception code (non-RTE mode), other than 00 / 1F."""

    code: int

    @property
    def defined(self) -> bool:
        """False for a code the reference's exception table does not have (SAS §3.11)."""
        return self.code in DEFINED_EXCEPTIONS


@dataclass(frozen=True, slots=True)
class NoActivity:
    """A general poll found nothing to report: 00, 1F or (RTE mode) ``addr FF 00``."""

    code: int


@dataclass(frozen=True, slots=True)
class RealTimeEventReceived:
    """An RTE event. ``substituted`` is True when it came instead of the reply to the long
    poll ``poll`` (which has been re-queued); False when it answered a general poll."""

    event: RealTimeEvent
    poll: Poll
    substituted: bool

    @property
    def code(self) -> int:
        return self.event.event_code

    @property
    def fields(self) -> dict[str, Any]:
        """The event's decoded data (e.g. 7E: credits_wagered, coin_in_meter, ...)."""
        return self.event.fields()


@dataclass(frozen=True, slots=True)
class NotSupported:
    """Every send of this long poll met silence while the link was up (SAS §3.5)."""

    poll: Poll


@dataclass(frozen=True, slots=True)
class PollFailed:
    """The poll was sent ``max_sends`` times without a usable reply; ``reason`` is the last."""

    poll: Poll
    reason: FailureReason


@dataclass(frozen=True, slots=True)
class LinkUp:
    pass


@dataclass(frozen=True, slots=True)
class LinkDown:
    pass


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """Bad bytes from the line (for counters and logs); ``error.raw`` holds them."""

    error: RemoteProtocolError


HostEvent = (
    ReplyReceived
    | ExceptionReported
    | NoActivity
    | RealTimeEventReceived
    | NotSupported
    | PollFailed
    | LinkUp
    | LinkDown
    | FrameRejected
)
