"""Compact JSON text with one encoder made for every call.

``json.JSONEncoder.encode`` makes a new C encoder on each call (about a microsecond of the
~2.7 an event's ``data`` took to encode), and the hub encodes every event's ``data`` for the
store and many frames for the fan-out. :func:`reused_encoder` makes the C encoder once; its
text is exactly ``JSONEncoder(ensure_ascii=False, separators=(",", ":"))``'s (a test holds
them together). No cycle check: what the hub encodes was decoded from JSON or built by the
hub, never circular.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["reused_encoder"]


def reused_encoder(*, allow_nan: bool) -> Callable[[Any], str]:
    """Compact JSON (non-ASCII as itself), the C encoder made once; ``allow_nan=False``
    refuses NaN and the infinities with ``ValueError``, as ``api.wire.encode`` does."""
    reference = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"),
                                 allow_nan=allow_nan)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator
        return reference.encode
    c_encode = make(None, reference.default, json.encoder.encode_basestring, None, ":", ",",
                    False, False, allow_nan)

    def encode(obj: Any) -> str:
        return "".join(c_encode(obj, 0))
    return encode
