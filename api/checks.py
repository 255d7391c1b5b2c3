"""The checks of each message type, by hand, against the same rules as docs/schemas/*.json
(no jsonschema at run time): each raises :class:`api.codes.WireError` with the code of the
``error`` reply to send. A checked object becomes its class of :mod:`api.messages` in
:mod:`api.decode`; tests/test_messages.py holds the classes, these checks and the schemas
together."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from api.codes import (
    HUB_SOURCE,
    MAX_AMOUNT_CENTS,
    MAX_HISTORY_PAGE,
    MAX_ID_LENGTH,
    MAX_LIST_ITEMS,
    MAX_REASON_LENGTH,
    MAX_SNAPSHOT_ALERTS,
    ActionAckStatus,
    ActionStatus,
    ErrorCode,
    LinkState,
    MessageType,
    Role,
    WireError,
)
from api.events import CATALOG, Channel, channels_of, utc_timestamp

# --------------------------------------------------------------------------- validation

_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z\Z")
_TERMINAL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")
_EVENT_NAME_RE = re.compile(r"^[a-z][A-Za-z0-9]{0,63}\Z")
_ACTION_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")
_SIGNATURE_RE = re.compile(r"^[0-9a-f]{64}\Z")
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")
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
        machine = c.nested(c.msg["machine"], "machine")
        machine.boolean("hostLocked")
        if "gameLocked" in c.msg["machine"]:  # optional: agents before it do not send it
            machine.boolean("gameLocked")


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
    field. A name of the catalog needs no pattern match (every one matches it: checked at
    import), nor does a terminal id already found valid (:data:`_valid_terminal_ids`).
    """
    i, seq, channel = m.get("id"), m.get("seq"), m.get("channel")
    tid, name, ts = m.get("terminalId"), m.get("event"), m.get("timestamp")
    global _last_timestamp
    if not (type(i) is str and 0 < len(i) <= MAX_ID_LENGTH
            and type(seq) is int and 1 <= seq <= 2**63 - 1
            and type(channel) is str and channel in _CHANNELS
            and type(tid) is str and (tid in _valid_terminal_ids or _new_terminal_id_ok(tid))
            and type(name) is str and (name in _CATALOG_NAMES or (
                0 < len(name) <= 1024 and _EVENT_NAME_RE.match(name) is not None))
            and type(ts) is str and type(m.get("data")) is dict):
        return False
    if ts == _last_timestamp:  # the events of a burst mostly share their millisecond
        return True
    try:
        _timestamp_datetime(ts)
    except ValueError:
        return False
    _last_timestamp = ts
    return True


#: The last event timestamp :func:`_event_fields_ok` found valid (a str: immutable).
_last_timestamp = ""

#: Terminal ids :func:`_event_fields_ok` found valid: a floor's few thousand, each checked by
#: its pattern once instead of in every event. Bounded: emptied when it reaches
#: :data:`_MAX_VALID_TERMINAL_IDS` (a hub's terminal may only send its own id anyway).
_valid_terminal_ids: set[str] = set()
_MAX_VALID_TERMINAL_IDS = 65_536


def _new_terminal_id_ok(tid: str) -> bool:
    if not (0 < len(tid) <= 1024 and _TERMINAL_ID_RE.match(tid)):
        return False
    if len(_valid_terminal_ids) >= _MAX_VALID_TERMINAL_IDS:
        _valid_terminal_ids.clear()
    _valid_terminal_ids.add(tid)
    return True


#: The catalog's event names (api/events.py): each matches ``_EVENT_NAME_RE``.
_CATALOG_NAMES = frozenset(CATALOG)
assert all(_EVENT_NAME_RE.match(n) for n in _CATALOG_NAMES), "a catalog name is malformed"


def event_ok(m: dict[str, Any]) -> bool:
    """Every check of :func:`_check_event` in one pass, without a :class:`_Checker`: True
    for an event frame that passes them all (the hot path of ``parse_message``), False for
    one the field checks must name the fault of. Accepts nothing :func:`_check_event`
    refuses (tests/test_wire.py holds the two together)."""
    if not _event_fields_ok(m):
        return False
    seq, name = m["seq"], m["event"]
    i = m["id"]
    if i != f"{m['terminalId']}-{seq}" and i != f"{HUB_SOURCE}-{seq}":
        return False
    known = channels_of(name)
    if known is not None and m["channel"] not in known:
        return False
    amount = m["data"].get("amount")
    return amount is None or (type(amount) is int and 0 <= amount <= MAX_AMOUNT_CENTS)


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
    # ``rejected``: "error says why" (protocol.md §4); a client is promised the reason.
    c.string("error", required=c.msg["status"] == ActionAckStatus.REJECTED, max_len=4096)


def _check_action_result(c: _Checker) -> None:
    c.string("id", max_len=MAX_ID_LENGTH)
    c.string("terminalId", pattern=_TERMINAL_ID_RE)
    c.string("action", required=False, pattern=_ACTION_NAME_RE)
    c.one_of("status", {s.value for s in ActionStatus})
    # Every status but ``succeeded`` says why (protocol.md §4).
    c.string("error", required=c.msg["status"] != ActionStatus.SUCCEEDED, max_len=4096)
    c.obj("result", required=False)


def _check_auth(c: _Checker) -> None:
    _optional_id(c)
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


def _check_history(c: _Checker) -> None:
    _optional_id(c)
    c.str_list("terminals")
    c.str_list("events")
    c.str_list("channels", allowed=_CHANNELS)
    c.timestamp("since", required=False)
    c.timestamp("until", required=False)
    c.integer("after", minimum=0, required=False)
    c.integer("before", minimum=1, required=False)
    c.integer("limit", minimum=1, required=False)
    if c.msg.get("limit", 1) > MAX_HISTORY_PAGE:
        raise c.fail(f"'limit' is at most {MAX_HISTORY_PAGE} events per page")


def _check_history_page(c: _Checker) -> None:
    _optional_id(c)
    c.obj_list("events")
    for item in c.msg["events"]:
        _check_event(c.nested(item, "events[]"))
    if not c.nullable("next"):
        c.integer("next", minimum=1)
    c.one_of("order", {"oldest-first", "newest-first"})


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
    c.string("timezone", required=False, max_len=MAX_ID_LENGTH)
    c.integer("gamingDayStart", minimum=0, required=False)
    if c.msg.get("gamingDayStart", 0) > 23:
        raise c.fail("'gamingDayStart' must be an hour from 0 to 23")
    c.string("gamingDay", required=False, pattern=_DAY_RE)
    c.integer("utcOffsetMinutes", minimum=-(2**63), required=False)


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
    MessageType.HISTORY: _check_history,
    MessageType.HISTORY_PAGE: _check_history_page,
    MessageType.SNAPSHOT: _check_snapshot,
    MessageType.TERMINAL: _check_terminal,
    MessageType.ERROR: _check_error,
    MessageType.PING: _optional_id,
    MessageType.PONG: _optional_id,
}


