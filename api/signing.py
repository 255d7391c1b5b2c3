"""Action signatures: the canonical form of an action and its HMAC-SHA256 (docs/protocol.md
§7)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from api.checks import parse_timestamp
from api.codes import DEFAULT_SIGNATURE_WINDOW, MAX_ID_LENGTH, ErrorCode, WireError
from api.parse import _SURROGATE_RE


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_float(item) for item in value)
    return False


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
    if _has_float(params):
        # Refused with the action's id, as every refusal of an action is (protocol.md §5).
        raise WireError(ErrorCode.BAD_MESSAGE, "signed params may not hold floats (§7: "
                        "integers only)", _text_id(msg))
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
