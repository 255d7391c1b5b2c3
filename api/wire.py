"""The WebSocket API's messages: names, codes, validation, builders and action signatures.

This is the one module both the agent and the hub import (docs/architecture.md). It does no
I/O. ``parse_message`` checks a received frame by hand against the same rules as
``docs/schemas/*.json`` (no jsonschema at run time) and raises only :class:`WireError`, whose
``code`` is the ``error`` reply to send. docs/protocol.md is the contract.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from api.events import Channel, channels_of, utc_timestamp

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
    return ((channel == Channel.ALERTS.value and event not in INFORMATIONAL_ALERTS)
            or event in ATTENDANT_EVENTS)


DEFAULT_SIGNATURE_WINDOW = 300.0
MAX_ID_LENGTH = 128
MAX_LIST_ITEMS = 1000
MAX_SNAPSHOT_ALERTS = 100
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
     MessageType.ACTION, MessageType.GET_STATE, MessageType.PING, MessageType.PONG}
)
HUB_TO_CLIENT = frozenset(
    {MessageType.AUTH_OK, MessageType.SNAPSHOT, MessageType.SUBSCRIBED, MessageType.REPLAYED,
     MessageType.EVENT,
     MessageType.TERMINAL, MessageType.ALERT_ACK, MessageType.ACTION_ACK,
     MessageType.ACTION_RESULT, MessageType.ERROR, MessageType.PING, MessageType.PONG}
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
    TRY_AGAIN_LATER = 1013
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


# --------------------------------------------------------------------------- validation

_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z\Z")
_TERMINAL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")
_EVENT_NAME_RE = re.compile(r"^[a-z][A-Za-z0-9]{0,63}\Z")
_ACTION_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")
_SIGNATURE_RE = re.compile(r"^[0-9a-f]{64}\Z")
_CHANNELS = frozenset(c.value for c in Channel)


def valid_terminal_id(text: str) -> bool:
    """1-64 characters: letters, digits, ``.``, ``_``, ``:``, ``-``; not starting with a sign."""
    return bool(_TERMINAL_ID_RE.match(text))


def _timestamp_datetime(text: str) -> datetime:
    if not _TIMESTAMP_RE.match(text):
        raise ValueError(f"not a UTC ISO-8601 timestamp with Z: {text[:40]!r}")
    return datetime.fromisoformat(text[:-1])


def parse_timestamp(text: str) -> float:
    """Epoch seconds of a protocol timestamp; ValueError if it is not one."""
    return _timestamp_datetime(text).replace(tzinfo=UTC).timestamp()


def format_timestamp(epoch_seconds: float) -> str:
    """The protocol's timestamp form: UTC, milliseconds, ``Z``."""
    return utc_timestamp(epoch_seconds)


class _Checker:
    """Field checks on one received object; each failure is a ``bad_message`` WireError."""

    def __init__(self, msg: dict[str, Any], ref_id: str | None, label: str | None = None
                 ) -> None:
        self.msg = msg
        self.ref_id = ref_id
        self.type = msg["type"] if label is None else label

    def nested(self, obj: dict[str, Any], label: str) -> _Checker:
        return _Checker(obj, self.ref_id, f"{self.type}.{label}")

    def boolean(self, name: str, *, nullable: bool = False) -> None:
        if name not in self.msg:
            raise self.fail(f"missing field {name!r}")
        value = self.msg[name]
        if not (isinstance(value, bool) or (nullable and value is None)):
            raise self.fail(f"{name!r} must be true or false" + (" or null" if nullable else ""))

    def nullable(self, name: str) -> bool:
        """True if the (required) field is present and null."""
        if name not in self.msg:
            raise self.fail(f"missing field {name!r}")
        return self.msg[name] is None

    def fail(self, text: str) -> WireError:
        return WireError(ErrorCode.BAD_MESSAGE, f"{self.type}: {text}", self.ref_id)

    def _get(self, name: str, required: bool) -> Any:
        # An optional field is absent, never null: the schemas say the same.
        if name not in self.msg:
            if required:
                raise self.fail(f"missing field {name!r}")
            return None
        if self.msg[name] is None:
            raise self.fail(f"{name!r} must not be null")
        return self.msg[name]

    def string(self, name: str, *, required: bool = True, max_len: int = 1024,
               pattern: re.Pattern[str] | None = None) -> None:
        value = self._get(name, required)
        if value is None:
            return
        if not isinstance(value, str) or not value or len(value) > max_len:
            raise self.fail(f"{name!r} must be a non-empty string of at most {max_len} chars")
        if pattern is not None and not pattern.match(value):
            raise self.fail(f"{name!r} is malformed: {value[:40]!r}")

    def integer(self, name: str, *, minimum: int, required: bool = True) -> None:
        value = self._get(name, required)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(f"{name!r} must be an integer >= {minimum}")
        if value > 2**63 - 1:
            raise self.fail(f"{name!r} is too large")

    def timestamp(self, name: str, *, required: bool = True) -> None:
        value = self._get(name, required)
        if value is None:
            return
        if not isinstance(value, str):
            raise self.fail(f"{name!r} must be a timestamp string")
        try:
            _timestamp_datetime(value)  # a real date and time (no epoch seconds needed)
        except ValueError:
            raise self.fail(f"{name!r} must be UTC ISO-8601 with Z, got {value[:40]!r}") from None

    def obj(self, name: str, *, required: bool = True) -> None:
        value = self._get(name, required)
        if value is not None and not isinstance(value, dict):
            raise self.fail(f"{name!r} must be an object")

    def one_of(self, name: str, allowed: Collection[str], *, required: bool = True) -> None:
        value = self._get(name, required)
        if value is None:
            return
        if not isinstance(value, str) or value not in allowed:
            raise self.fail(f"{name!r} must be one of {sorted(allowed)}")

    def str_list(self, name: str, *, allowed: Collection[str] | None = None,
                 container: Mapping[str, Any] | None = None) -> None:
        source = self.msg if container is None else container
        if name not in source:
            return
        value = source[name]
        if not isinstance(value, list) or len(value) > MAX_LIST_ITEMS:
            raise self.fail(f"{name!r} must be a list of at most {MAX_LIST_ITEMS} strings")
        for item in value:
            if not isinstance(item, str) or not item or len(item) > MAX_ID_LENGTH:
                raise self.fail(f"{name!r} must hold non-empty strings")
            if allowed is not None and item not in allowed:
                raise self.fail(f"{name!r}: unknown value {item[:40]!r}")

    def obj_list(self, name: str) -> None:
        value = self._get(name, True)
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(f"{name!r} must be a list of objects")


def _optional_id(c: _Checker) -> None:
    c.string("id", required=False, max_len=MAX_ID_LENGTH)


def _check_hello(c: _Checker) -> None:
    c.integer("protocol", minimum=0)
    c.string("terminalId", pattern=_TERMINAL_ID_RE)
    c.string("version", max_len=64)
    c.integer("lastSeq", minimum=0)
    if "machine" in c.msg:
        c.obj("machine")
        c.nested(c.msg["machine"], "machine").boolean("hostLocked")


def _check_welcome(c: _Checker) -> None:
    c.integer("protocol", minimum=0)
    c.string("terminalId", pattern=_TERMINAL_ID_RE)
    c.integer("ackedSeq", minimum=0)
    c.timestamp("serverTime")


def _event_fields_ok(m: dict[str, Any]) -> bool:
    """The checks of :func:`_check_event_fields` in one pass, for the frame that passes them.

    Events are most of the traffic (a backlog drain is nothing else), and one expression
    costs a fraction of the field-by-field checks; it accepts nothing they refuse (a test
    holds the two together). When it says no, the field-by-field checks run and name the
    field.
    """
    i, seq, channel = m.get("id"), m.get("seq"), m.get("channel")
    tid, name, ts = m.get("terminalId"), m.get("event"), m.get("timestamp")
    if not (type(i) is str and 0 < len(i) <= MAX_ID_LENGTH
            and type(seq) is int and 1 <= seq <= 2**63 - 1
            and type(channel) is str and channel in _CHANNELS
            and type(tid) is str and 0 < len(tid) <= 1024 and _TERMINAL_ID_RE.match(tid)
            and type(name) is str and 0 < len(name) <= 1024 and _EVENT_NAME_RE.match(name)
            and type(ts) is str and type(m.get("data")) is dict):
        return False
    try:
        _timestamp_datetime(ts)
    except ValueError:
        return False
    return True


def _check_event_fields(c: _Checker) -> None:
    c.string("id", max_len=MAX_ID_LENGTH)
    c.integer("seq", minimum=1)
    c.one_of("channel", _CHANNELS)
    c.string("terminalId", pattern=_TERMINAL_ID_RE)
    c.string("event", pattern=_EVENT_NAME_RE)
    c.timestamp("timestamp")
    c.obj("data")


def _check_event(c: _Checker) -> None:
    m = c.msg
    if not _event_fields_ok(m):
        _check_event_fields(c)  # raises, naming the field
    if m["id"] != f"{m['terminalId']}-{m['seq']}" and m["id"] != f"{HUB_SOURCE}-{m['seq']}":
        raise c.fail(f"id {m['id'][:40]!r} is not terminalId-seq")
    known = channels_of(m["event"])
    if known is not None and m["channel"] not in known:  # Channel is a StrEnum
        allowed = " or ".join(sorted(repr(channel.value) for channel in known))
        raise c.fail(f"{m['event']} belongs to channel {allowed}, not {m['channel']!r}")
    amount = m["data"].get("amount")
    if amount is not None and not (type(amount) is int and 0 <= amount <= MAX_AMOUNT_CENTS):
        raise c.fail(f"'data.amount' must be whole cents from 0 to {MAX_AMOUNT_CENTS}, "
                     f"got {str(amount)[:40]}")


def _check_ack(c: _Checker) -> None:
    present = [k for k in ("upTo", "eventId", "terminalId", "all") if k in c.msg]
    if len(present) != 1:
        raise c.fail("needs exactly one of 'upTo' (terminal), 'eventId' (one alert), "
                     "'terminalId' (a terminal's alerts) or 'all' (every alert)")
    if present == ["upTo"]:
        c.integer("upTo", minimum=0)
        return
    if present == ["eventId"]:
        c.string("eventId", max_len=MAX_ID_LENGTH)
    elif present == ["terminalId"]:
        c.string("terminalId", pattern=_TERMINAL_ID_RE)
    elif c.msg["all"] is not True:
        raise c.fail("'all' must be true")
    _optional_id(c)


def _check_action(c: _Checker) -> None:
    c.string("id", max_len=MAX_ID_LENGTH)
    c.string("terminalId", pattern=_TERMINAL_ID_RE)
    c.string("action", pattern=_ACTION_NAME_RE)
    c.obj("params", required=False)
    c.timestamp("expiresAt", required=False)
    c.timestamp("issuedAt", required=False)
    c.string("from", required=False, max_len=MAX_ID_LENGTH)
    c.string("reason", required=False, max_len=MAX_REASON_LENGTH)
    if "signature" in c.msg:
        # A signature that cannot verify is a signature problem (protocol.md §7), whatever
        # its shape: bad_signature, as from the verifier, not bad_message.
        sig = c.msg["signature"]
        if not isinstance(sig, str) or not _SIGNATURE_RE.match(sig):
            raise WireError(ErrorCode.BAD_SIGNATURE, "action: 'signature' must be 64 "
                            "lowercase hex digits (HMAC-SHA256)", c.ref_id)
        if "issuedAt" not in c.msg:
            raise WireError(ErrorCode.BAD_SIGNATURE, "action: a signed action needs "
                            "'issuedAt'", c.ref_id)


def _check_action_ack(c: _Checker) -> None:
    c.string("id", max_len=MAX_ID_LENGTH)
    c.string("terminalId", pattern=_TERMINAL_ID_RE)
    c.string("action", required=False, pattern=_ACTION_NAME_RE)
    c.one_of("status", {s.value for s in ActionAckStatus})
    c.string("error", required=False, max_len=4096)


def _check_action_result(c: _Checker) -> None:
    c.string("id", max_len=MAX_ID_LENGTH)
    c.string("terminalId", pattern=_TERMINAL_ID_RE)
    c.string("action", required=False, pattern=_ACTION_NAME_RE)
    c.one_of("status", {s.value for s in ActionStatus})
    c.string("error", required=False, max_len=4096)
    c.obj("result", required=False)


def _check_auth(c: _Checker) -> None:
    c.string("token", max_len=4096)
    c.integer("protocol", minimum=0, required=False)


def _check_auth_ok(c: _Checker) -> None:
    c.integer("protocol", minimum=0)
    c.one_of("role", {r.value for r in Role})
    c.string("name", max_len=MAX_ID_LENGTH)


def _check_filter_fields(c: _Checker, container: Mapping[str, Any] | None = None) -> None:
    c.str_list("channels", allowed=_CHANNELS, container=container)
    c.str_list("events", container=container)
    c.str_list("terminals", container=container)


def _check_subscribe(c: _Checker) -> None:
    _optional_id(c)
    _check_filter_fields(c)
    if "from" in c.msg:
        if c.msg["type"] != MessageType.SUBSCRIBE:
            raise c.fail("'from' is for subscribe only")
        if isinstance(c.msg["from"], str):
            c.timestamp("from")
        else:
            c.integer("from", minimum=0)


def _check_replayed(c: _Checker) -> None:
    _optional_id(c)
    c.integer("count", minimum=0)
    c.integer("cursor", minimum=0)


def _check_subscribed(c: _Checker) -> None:
    _optional_id(c)
    c.obj_list("filters")
    for item in c.msg["filters"]:
        if not {"channels", "events", "terminals"} <= item.keys():
            raise c.fail("each filter needs channels, events and terminals")
        _check_filter_fields(c, item)


def _check_alert_ack(c: _Checker) -> None:
    c.string("eventId", max_len=MAX_ID_LENGTH)
    c.string("terminalId", pattern=_TERMINAL_ID_RE)
    c.string("by", max_len=MAX_ID_LENGTH)
    c.timestamp("at")


def _check_terminal_state(c: _Checker) -> None:
    c.string("terminalId", pattern=_TERMINAL_ID_RE)
    c.boolean("online")
    if not c.nullable("since"):
        c.timestamp("since")
    c.one_of("link", {s.value for s in LinkState})
    c.boolean("locked", nullable=True)
    c.integer("ackedSeq", minimum=0)
    if not c.nullable("lastEvent"):
        c.obj("lastEvent")
        last = c.nested(c.msg["lastEvent"], "lastEvent")
        last.string("id", max_len=MAX_ID_LENGTH)
        last.string("event", pattern=_EVENT_NAME_RE)
        last.timestamp("timestamp")
    c.integer("coinInToday", minimum=-(2**63))
    c.integer("coinOutToday", minimum=-(2**63))
    c.integer("unackedAlerts", minimum=0)


def _check_snapshot(c: _Checker) -> None:
    _optional_id(c)
    c.timestamp("at")
    for name in ("terminals", "alerts", "recent", "coinInPerMinute"):
        c.obj_list(name)
    for i, state in enumerate(c.msg["terminals"]):
        _check_terminal_state(c.nested(state, f"terminals[{i}]"))
    for name in ("alerts", "recent"):
        for i, frame in enumerate(c.msg[name]):
            if frame.get("type") != MessageType.EVENT:
                raise c.fail(f"{name}[{i}] must be an event frame")
            _check_event(c.nested(frame, f"{name}[{i}]"))
    if len(c.msg["alerts"]) > MAX_SNAPSHOT_ALERTS:
        raise c.fail(f"'alerts' holds at most {MAX_SNAPSHOT_ALERTS} events")
    series = c.msg["coinInPerMinute"]
    if len(series) != 60:
        raise c.fail("'coinInPerMinute' must hold 60 minutes")
    for i, point in enumerate(series):
        p = c.nested(point, f"coinInPerMinute[{i}]")
        p.timestamp("minute")
        p.integer("amount", minimum=-(2**63))


def _check_terminal(c: _Checker) -> None:
    c.obj("terminal")
    _check_terminal_state(c.nested(c.msg["terminal"], "terminal"))


def _check_error(c: _Checker) -> None:
    c.one_of("code", {e.value for e in ErrorCode})
    c.string("message", max_len=4096)
    _optional_id(c)


_CHECKS: dict[MessageType, Callable[[_Checker], None]] = {
    MessageType.HELLO: _check_hello,
    MessageType.WELCOME: _check_welcome,
    MessageType.EVENT: _check_event,
    MessageType.ACK: _check_ack,
    MessageType.ACTION: _check_action,
    MessageType.ACTION_ACK: _check_action_ack,
    MessageType.ACTION_RESULT: _check_action_result,
    MessageType.AUTH: _check_auth,
    MessageType.AUTH_OK: _check_auth_ok,
    MessageType.SUBSCRIBE: _check_subscribe,
    MessageType.UNSUBSCRIBE: _check_subscribe,
    MessageType.SUBSCRIBED: _check_subscribed,
    MessageType.REPLAYED: _check_replayed,
    MessageType.ALERT_ACK: _check_alert_ack,
    MessageType.GET_STATE: _optional_id,
    MessageType.SNAPSHOT: _check_snapshot,
    MessageType.TERMINAL: _check_terminal,
    MessageType.ERROR: _check_error,
    MessageType.PING: _optional_id,
    MessageType.PONG: _optional_id,
}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    """JSON numbers such as ``1e400`` are valid JSON but read as infinity, which can be
    neither signed, stored as JSON nor sent on: refused like ``Infinity``."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


#: One decoder for every frame (``json.loads`` with an option would build one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_TYPES: dict[str, MessageType] = {t.value: t for t in MessageType}
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_JSON_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS_RE = re.compile(r"[\[\]{}]")


def too_deep(text: str) -> bool:
    """True if ``text`` nests objects and arrays deeper than :data:`MAX_JSON_DEPTH`.

    Looked at in the text, before decoding (the decoder itself recurses, and fails at about
    1,000 levels with a RecursionError). Nearly every frame holds fewer brackets than the
    limit, which settles it without a scan; otherwise strings are cut out and the brackets
    counted. Malformed text is left to the decoder.
    """
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    for bracket in _BRACKETS_RE.findall(_JSON_STRING_RE.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        else:
            depth -= 1
    return False


def _too_many_values(msg: Any) -> bool:
    """True if the decoded message holds more than :data:`MAX_JSON_VALUES` values.
    Iterative; the depth is already bounded."""
    stack = [msg]
    count = 0
    while stack:
        value = stack.pop()
        count += 1
        if count > MAX_JSON_VALUES:
            return True
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _lone_surrogate_at(msg: dict[str, Any]) -> str | None:
    """Which string (a value, or a key) is the first to hold a lone UTF-16 surrogate.

    Such a string decodes from JSON (the escape ``"\\ud800"`` without its pair) but is not
    Unicode text: it cannot be encoded as UTF-8, so it can be neither signed (protocol.md §7),
    stored nor sent on. Returns e.g. ``'params.note'``, ``'data.list[2]'`` or
    ``a key of 'params'``; None when every string is clean. Iterative, so deep nesting
    cannot exhaust the stack.
    """
    stack: list[tuple[str, Any]] = [("", msg)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _SURROGATE_RE.search(value):
                return repr(path[:80])
        elif isinstance(value, dict):
            items = []
            for key, item in value.items():
                if _SURROGATE_RE.search(key):
                    return f"a key of {path[:80]!r}" if path else "a key of the message"
                items.append((f"{path}.{key}" if path else key, item))
            stack.extend(reversed(items))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path}[{i}]", item) for i, item in enumerate(value)]))
    return None


def parse_message(
    text: str | bytes, *, max_bytes: int, accept: Collection[MessageType] | None = None
) -> dict[str, Any]:
    """Decode and validate one frame; raise :class:`WireError` and nothing else.

    ``accept`` limits the types this side of this path may receive (e.g. ``TERMINAL_TO_HUB``);
    another known type is ``unknown_type`` too. Unknown fields are kept (and ignored).
    A string holding a lone UTF-16 surrogate anywhere in the message is ``bad_message``
    (protocol.md §1: frames are UTF-8 text), whatever the type.
    """
    if isinstance(text, bytes | bytearray | memoryview):
        raise WireError(ErrorCode.BAD_MESSAGE, "binary frames are not accepted; send JSON text")
    # Only the escape \udXXX, or a surrogate already in the text (never from a WebSocket
    # text frame, which is strict UTF-8), can put a lone surrogate in the decoded message:
    # the walk looks for one only then.
    suspect = "\\ud" in text or "\\uD" in text
    if text.isascii():
        size = len(text)
    else:
        size = len(text.encode("utf-8", "surrogatepass"))
        suspect = suspect or _SURROGATE_RE.search(text) is not None
    if size > max_bytes:
        raise WireError(ErrorCode.TOO_LARGE, f"message of {size} bytes exceeds {max_bytes}")
    if too_deep(text):
        raise WireError(ErrorCode.BAD_MESSAGE,
                        f"objects and arrays nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        msg = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise WireError(ErrorCode.BAD_JSON, f"not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(msg, dict):
        raise WireError(ErrorCode.BAD_MESSAGE, "a message must be a JSON object")
    # Each value takes at least one character: only a long text can hold too many.
    if size > MAX_JSON_VALUES and _too_many_values(msg):
        raise WireError(ErrorCode.BAD_MESSAGE,
                        f"more than {MAX_JSON_VALUES} JSON values in one message")
    raw_id = msg.get("id")
    ref_id = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= MAX_ID_LENGTH else None
    if suspect:
        where = _lone_surrogate_at(msg)
        if where is not None:
            if ref_id is not None and _SURROGATE_RE.search(ref_id):
                ref_id = None  # not text: it could not be echoed in the error reply
            raise WireError(ErrorCode.BAD_MESSAGE,
                            f"{where} holds a lone UTF-16 surrogate (an escape such as "
                            r"\ud800 without its pair): not Unicode text", ref_id)
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise WireError(ErrorCode.BAD_MESSAGE, "missing string field 'type'", ref_id)
    mtype = _TYPES.get(kind)
    if mtype is None:
        raise WireError(ErrorCode.UNKNOWN_TYPE, f"unknown type {kind[:40]!r}", ref_id)
    if accept is not None and mtype not in accept:
        raise WireError(ErrorCode.UNKNOWN_TYPE, f"{kind!r} is not accepted here", ref_id)
    _CHECKS[mtype](_Checker(msg, ref_id))
    return msg


def encode(msg: Mapping[str, Any]) -> str:
    """Compact JSON text for one frame."""
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# --------------------------------------------------------------------------- builders


def _with_optional(msg: dict[str, Any], **optional: Any) -> dict[str, Any]:
    for key, value in optional.items():
        if value is not None:
            msg[key] = value
    return msg


def hello(terminal_id: str, version: str, last_seq: int,
          machine: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``machine``: the machine's state as the agent holds it now (``hostLocked``)."""
    msg = {"type": MessageType.HELLO.value, "protocol": PROTOCOL_VERSION,
           "terminalId": terminal_id, "version": version, "lastSeq": last_seq}
    return _with_optional(msg, machine=dict(machine) if machine is not None else None)


def welcome(terminal_id: str, acked_seq: int, server_time: str) -> dict[str, Any]:
    return {"type": MessageType.WELCOME.value, "protocol": PROTOCOL_VERSION,
            "terminalId": terminal_id, "ackedSeq": acked_seq, "serverTime": server_time}


def event(
    *, event_id: str, seq: int, channel: str, terminal_id: str, name: str, timestamp: str,
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """An ``event`` frame (the agent uses ``StoredEvent.to_wire``; the hub uses this)."""
    return {"type": MessageType.EVENT.value, "id": event_id, "seq": seq, "channel": channel,
            "terminalId": terminal_id, "event": name, "timestamp": timestamp, "data": dict(data)}


def ack(up_to: int) -> dict[str, Any]:
    return {"type": MessageType.ACK.value, "upTo": up_to}


def ack_alert(event_id: str, request_id: str | None = None) -> dict[str, Any]:
    return _with_optional({"type": MessageType.ACK.value, "eventId": event_id}, id=request_id)


def action(
    action_id: str, terminal_id: str, name: str, params: Mapping[str, Any] | None = None, *,
    expires_at: str | None = None, issued_at: str | None = None, sender: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    msg = {"type": MessageType.ACTION.value, "id": action_id, "terminalId": terminal_id,
           "action": name, "params": dict(params or {})}
    return _with_optional(msg, expiresAt=expires_at, issuedAt=issued_at, reason=reason,
                          **{"from": sender})


def action_ack(action_id: str, terminal_id: str, status: ActionAckStatus,
               error: str | None = None, *, action: str | None = None) -> dict[str, Any]:
    """``action`` (the action's name) is optional; the hub adds it for its clients."""
    msg = {"type": MessageType.ACTION_ACK.value, "id": action_id, "terminalId": terminal_id,
           "status": status.value}
    return _with_optional(msg, action=action, error=error)


def action_result(
    action_id: str, terminal_id: str, status: ActionStatus, *, error: str | None = None,
    result: Mapping[str, Any] | None = None, action: str | None = None,
) -> dict[str, Any]:
    """``action`` (the action's name) is optional; the hub adds it for its clients."""
    msg = {"type": MessageType.ACTION_RESULT.value, "id": action_id, "terminalId": terminal_id,
           "status": status.value}
    return _with_optional(msg, action=action, error=error,
                          result=None if result is None else dict(result))


def auth(token: str) -> dict[str, Any]:
    return {"type": MessageType.AUTH.value, "token": token, "protocol": PROTOCOL_VERSION}


def auth_ok(role: Role, name: str) -> dict[str, Any]:
    return {"type": MessageType.AUTH_OK.value, "protocol": PROTOCOL_VERSION, "role": role.value,
            "name": name}


def subscribe(
    *, channels: Collection[str] = (), events: Collection[str] = (),
    terminals: Collection[str] = (), request_id: str | None = None, unsubscribe: bool = False,
    start: int | str | None = None,
) -> dict[str, Any]:
    """``start`` (the ``from`` field): replay stored events after this cursor, or received
    at or after this timestamp, before the live stream (protocol.md §5, resuming)."""
    kind = MessageType.UNSUBSCRIBE if unsubscribe else MessageType.SUBSCRIBE
    msg = {"type": kind.value, "channels": list(channels), "events": list(events),
           "terminals": list(terminals)}
    return _with_optional(msg, id=request_id, **{"from": start})


def replayed(count: int, cursor: int, request_id: str | None = None) -> dict[str, Any]:
    """The end of a ``subscribe`` replay: ``count`` stored events sent, the last replayed
    cursor (or the ``from`` cursor when none matched); live events follow."""
    return _with_optional({"type": MessageType.REPLAYED.value, "count": count,
                           "cursor": cursor}, id=request_id)


def subscribed(filters: list[dict[str, list[str]]], request_id: str | None = None
               ) -> dict[str, Any]:
    return _with_optional({"type": MessageType.SUBSCRIBED.value, "filters": filters},
                          id=request_id)


def alert_ack(event_id: str, terminal_id: str, by: str, at: str) -> dict[str, Any]:
    return {"type": MessageType.ALERT_ACK.value, "eventId": event_id, "terminalId": terminal_id,
            "by": by, "at": at}


def get_state(request_id: str | None = None) -> dict[str, Any]:
    return _with_optional({"type": MessageType.GET_STATE.value}, id=request_id)


def snapshot(
    *, at: str, terminals: list[dict[str, Any]], alerts: list[dict[str, Any]],
    recent: list[dict[str, Any]], coin_in_per_minute: list[dict[str, Any]],
    request_id: str | None = None,
) -> dict[str, Any]:
    msg = {"type": MessageType.SNAPSHOT.value, "at": at, "terminals": terminals,
           "alerts": alerts, "recent": recent, "coinInPerMinute": coin_in_per_minute}
    return _with_optional(msg, id=request_id)


def terminal_state(state: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": MessageType.TERMINAL.value, "terminal": dict(state)}


def error(code: ErrorCode, message: str, ref_id: str | None = None) -> dict[str, Any]:
    msg = {"type": MessageType.ERROR.value, "code": code.value, "message": message}
    return _with_optional(msg, id=ref_id)


def error_from(exc: WireError) -> dict[str, Any]:
    return error(exc.code, exc.message, exc.ref_id)


def ping(request_id: str | None = None) -> dict[str, Any]:
    return _with_optional({"type": MessageType.PING.value}, id=request_id)


def pong(request_id: str | None = None) -> dict[str, Any]:
    return _with_optional({"type": MessageType.PONG.value}, id=request_id)


# --------------------------------------------------------------------------- signatures


def _reject_floats(value: Any) -> None:
    if isinstance(value, float):
        raise WireError(ErrorCode.BAD_MESSAGE, "signed params may not hold floats")
    if isinstance(value, dict):
        for item in value.values():
            _reject_floats(item)
    elif isinstance(value, list):
        for item in value:
            _reject_floats(item)


def _text_id(msg: Mapping[str, Any]) -> str | None:
    """``msg["id"]`` if it can be echoed in an error reply."""
    value = msg.get("id")
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH \
            and not _SURROGATE_RE.search(value):
        return value
    return None


def canonical_action(msg: Mapping[str, Any]) -> bytes:
    """The bytes an action signature covers (protocol.md §7)."""
    params = msg.get("params") or {}
    _reject_floats(params)
    body = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    parts = [str(msg["id"]), str(msg["terminalId"]), str(msg["action"]),
             str(msg.get("issuedAt") or ""), str(msg.get("expiresAt") or ""), body]
    try:
        return "|".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        # parse_message refuses such frames; this guards actions built in code.
        raise WireError(ErrorCode.BAD_MESSAGE, "the action holds a lone UTF-16 surrogate: "
                        "not Unicode text, it cannot be signed", _text_id(msg)) from None


def action_signature(key: bytes, msg: Mapping[str, Any]) -> str:
    return hmac.new(key, canonical_action(msg), hashlib.sha256).hexdigest()


def sign_action(key: bytes, msg: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``msg`` with ``signature``; ``msg`` must already carry ``issuedAt``."""
    if not msg.get("issuedAt"):
        raise ValueError("sign_action needs 'issuedAt' in the message")
    signed = dict(msg)
    signed["signature"] = action_signature(key, msg)
    return signed


def verify_action(
    key: bytes, msg: Mapping[str, Any], now: float, window: float = DEFAULT_SIGNATURE_WINDOW
) -> None:
    """Raise ``WireError(bad_signature)`` unless ``msg`` is signed with ``key`` and fresh.

    ``now`` is epoch seconds (time is an input); ``issuedAt`` must be within ``window``
    seconds of it either way, which bounds replays of a captured action.
    """
    ref = msg.get("id") if isinstance(msg.get("id"), str) else None
    signature = msg.get("signature")
    issued = msg.get("issuedAt")
    if not isinstance(signature, str) or not isinstance(issued, str):
        raise WireError(ErrorCode.BAD_SIGNATURE, "action is not signed", ref)
    try:
        issued_at = parse_timestamp(issued)
    except ValueError:
        raise WireError(ErrorCode.BAD_SIGNATURE, "issuedAt is not a timestamp", ref) from None
    expected = action_signature(key, msg)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise WireError(ErrorCode.BAD_SIGNATURE, "signature does not verify", ref)
    if abs(now - issued_at) > window:
        raise WireError(ErrorCode.BAD_SIGNATURE,
                        f"issuedAt {issued} is outside the {window:.0f} s window", ref)
