"""Reading a received frame: bounded JSON (depth, values, finite numbers, no lone
surrogates) decoded once, then checked by its type's rules (:mod:`api.checks`)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection
from typing import Any

from api.checks import _CHECKS, _Checker, event_ok
from api.codes import (
    MAX_ID_LENGTH,
    MAX_JSON_DEPTH,
    MAX_JSON_VALUES,
    ErrorCode,
    MessageType,
    WireError,
)


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
#: Its C scanner: a frame that is one JSON value from its first character to its last (every
#: frame a conforming peer sends) is decoded by it directly, without ``decode``'s two
#: whitespace searches and Python frames (0.8 µs of 2.8 per event frame, measured); any
#: other text goes through ``decode``, which answers it as before (errors included).
_SCAN: Callable[[str, int], tuple[Any, int]] = (
    _DECODER.scan_once)  # type: ignore[attr-defined]
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
    suspect = "\\u" in text and ("\\ud" in text or "\\uD" in text)
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
        try:
            msg, end = _SCAN(text, 0)
        except StopIteration:
            end = -1
        if end != len(text):  # whitespace around it, more after it, or not JSON
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
    if mtype is not MessageType.EVENT or not event_ok(msg):  # events: one pass, no _Checker
        _CHECKS[mtype](_Checker(msg, ref_id))
    return msg


