"""The WebSocket API's names and codes: message types, error and close codes, roles, action
statuses, the alert rules and the limits every message is held to (docs/protocol.md)."""

from __future__ import annotations

import enum

from api.events import Channel

#: Major version carried by ``hello.protocol`` and ``auth.protocol`` (protocol.md §10).
PROTOCOL_VERSION = 1

#: Reserved terminal id of events the hub generates (``id = "hub-<n>"``).
HUB_SOURCE = "hub"

#: ``alerts``-channel events that report a problem: an operator must acknowledge each one
#: (protocol.md §5, "Which alerts need an acknowledgement").
ACKABLE_ALERTS = frozenset({
    "doorOpened", "bypassAttempt", "tilt", "billAcceptorFault", "printerFault", "powerLost",
    "memoryError", "meterRollback", "dataGap", "machineLinkDown", "deviceOffline",
    "cashboxRemoved", "outboxFault", "unexplainedMeterChange", "machineException",
})

#: ``alerts``-channel events that say a problem is over ("all clear"): shown, never counted
#: as unacknowledged, and an ``ack`` of one is refused with ``not_found``.
INFORMATIONAL_ALERTS = frozenset({
    "doorClosed", "cashboxInstalled", "powerRestored", "machineLinkUp", "deviceOnline",
})


#: Events outside the ``alerts`` channel that need an attendant at the machine, so an
#: operator acknowledges them like alerts: a handpay (jackpot, cancelled credits, progressive)
#: locks the machine up until an attendant pays it (protocol.md §5).
ATTENDANT_EVENTS = frozenset({"handpayPending"})


def needs_ack(channel: str, event: str) -> bool:
    """True for an event an operator must acknowledge.

    An ``alerts`` event whose name is not in :data:`INFORMATIONAL_ALERTS` needs one, also
    a name this version does not know (a newer agent's problem report is not hidden); so do
    the :data:`ATTENDANT_EVENTS` of other channels.
    """
    return ((channel == _ALERTS and event not in INFORMATIONAL_ALERTS)
            or event in ATTENDANT_EVENTS)


#: ``Channel.ALERTS.value`` once: an enum's ``value`` is a Python-level property, and this is
#: asked for every stored event (hub/floor.py).
_ALERTS = Channel.ALERTS.value


DEFAULT_SIGNATURE_WINDOW = 300.0
MAX_ID_LENGTH = 128
MAX_LIST_ITEMS = 1000
MAX_SNAPSHOT_ALERTS = 100
#: Most events one ``historyPage`` holds (protocol.md §5, ``history``): a page stays well
#: within §1's sizes; the HTTP history API pages up to 1,000.
MAX_HISTORY_PAGE = 200
DEFAULT_HISTORY_PAGE = 100
#: Deepest nesting of objects and arrays in a message, the message itself counting as 1
#: (protocol.md §1). Deeper values are ``bad_message`` before they are decoded: a stored
#: value nested ~1,000 deep used to break every later snapshot (Python's recursion limit).
MAX_JSON_DEPTH = 32
#: Most JSON values (objects, arrays, strings, numbers, literals, keys not counted) in one
#: message (protocol.md §1).
MAX_JSON_VALUES = 10_000
#: The longest ``reason`` an operator may give for an action.
MAX_REASON_LENGTH = 500
#: The largest money amount an event may carry, in cents ($10 trillion): far beyond any real
#: slot, and small enough that the hub's sums of thousands of them stay within 64 bits.
MAX_AMOUNT_CENTS = 10**15


class MessageType(enum.StrEnum):
    HELLO = "hello"
    WELCOME = "welcome"
    EVENT = "event"
    ACK = "ack"
    ACTION = "action"
    ACTION_ACK = "actionAck"
    ACTION_RESULT = "actionResult"
    AUTH = "auth"
    AUTH_OK = "authOk"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    SUBSCRIBED = "subscribed"
    REPLAYED = "replayed"
    ALERT_ACK = "alertAck"
    GET_STATE = "getState"
    SNAPSHOT = "snapshot"
    HISTORY = "history"
    HISTORY_PAGE = "historyPage"
    TERMINAL = "terminal"
    ERROR = "error"
    PING = "ping"
    PONG = "pong"


#: What each side may send on each path (anything else is ``unknown_type``).
TERMINAL_TO_HUB = frozenset(
    {MessageType.HELLO, MessageType.EVENT, MessageType.ACTION_ACK, MessageType.ACTION_RESULT,
     MessageType.PING, MessageType.PONG}
)
HUB_TO_TERMINAL = frozenset(
    {MessageType.WELCOME, MessageType.ACK, MessageType.ACTION, MessageType.ERROR,
     MessageType.PING, MessageType.PONG}
)
CLIENT_TO_HUB = frozenset(
    {MessageType.AUTH, MessageType.SUBSCRIBE, MessageType.UNSUBSCRIBE, MessageType.ACK,
     MessageType.ACTION, MessageType.GET_STATE, MessageType.HISTORY, MessageType.PING,
     MessageType.PONG}
)
HUB_TO_CLIENT = frozenset(
    {MessageType.AUTH_OK, MessageType.SNAPSHOT, MessageType.SUBSCRIBED, MessageType.REPLAYED,
     MessageType.EVENT,
     MessageType.TERMINAL, MessageType.ALERT_ACK, MessageType.ACTION_ACK,
     MessageType.ACTION_RESULT, MessageType.HISTORY_PAGE, MessageType.ERROR, MessageType.PING,
     MessageType.PONG}
)


class ErrorCode(enum.StrEnum):
    """The closed list of ``error.code`` values (protocol.md §6)."""

    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    TOO_LARGE = "too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    UNKNOWN_TERMINAL = "unknown_terminal"
    NOT_FOUND = "not_found"
    EXPIRED = "expired"
    DUPLICATE = "duplicate"
    BAD_SIGNATURE = "bad_signature"
    RATE_LIMITED = "rate_limited"
    INTERNAL = "internal"


class CloseCode(enum.IntEnum):
    """WebSocket close codes used by the API (protocol.md §9)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SLOW_CONSUMER = 4001
    REPLACED = 4002
    UNSUPPORTED_VERSION = 4003


class Role(enum.StrEnum):
    TERMINAL = "terminal"
    VIEWER = "viewer"
    OPERATOR = "operator"


class ActionAckStatus(enum.StrEnum):
    SENT = "sent"  # hub: forwarded to the connected terminal
    QUEUED = "queued"  # hub: terminal offline, held until it returns or the action expires
    ACCEPTED = "accepted"  # terminal: will execute
    REJECTED = "rejected"  # terminal: will not execute


class ActionStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"


class LinkState(enum.StrEnum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


class WireError(Exception):
    """A message that breaks the protocol; ``code`` and ``message`` make the ``error`` reply."""

    def __init__(self, code: ErrorCode, message: str, ref_id: str | None = None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.ref_id = ref_id


