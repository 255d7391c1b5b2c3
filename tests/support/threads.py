"""Where another thread stands: a test that races a close against a read or a write waits
until the racing thread is provably at the line that matters (blocked on a lock, waiting in
``select()``), never for a while."""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["stopped_at"]


def stopped_at(thread: threading.Thread, function: Callable[..., Any], text: str) -> bool:
    """``thread``'s innermost Python frame is ``function`` at its first line containing
    ``text`` (where it is blocked in a call into C: a lock's acquire, a ``select()``)."""
    frame = sys._current_frames().get(thread.ident or 0)
    code = getattr(function, "__code__", None)
    if frame is None or code is None or frame.f_code is not code:
        return False
    source, first = inspect.getsourcelines(function)
    line = first + next(i for i, line in enumerate(source) if text in line)
    return frame.f_lineno == line
