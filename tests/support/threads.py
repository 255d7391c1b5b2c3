"""Where another thread stands: a test that races a close against a read or a write waits
until the racing thread is provably at the line that matters (blocked on a lock, waiting in
``select()``), never for a while."""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable
from typing import Any

from drivers.base import TransportError
from drivers.selectable import SelectableTransport
from tests.support.waits import wait_until

__all__ = ["close_during_write", "stopped_at"]


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


def close_during_write(transport: SelectableTransport, write: Callable[[], None],
                       held: threading.Event, release: threading.Event) -> list[TransportError]:
    """Race a close against a write: ``write`` runs on a thread until ``held`` says it is
    stopped inside the write (the test's own hook, between the transport's look at whether
    it is closed and its system call); ``transport.close()`` runs on another; once the close
    has either gone ahead or is blocked on the transport's I/O lock, ``release`` lets the
    write on. Both threads are joined; the transport errors the write raised are returned.
    Callers set ``selectable.CLOSE_GRACE_S`` high, so that a close waits and never gives up."""
    failures: list[TransportError] = []

    def run() -> None:
        try:
            write()
        except TransportError as exc:
            failures.append(exc)

    writer = threading.Thread(target=run)
    writer.start()
    assert held.wait(20), "the write never reached its hold"
    closer = threading.Thread(target=transport.close)
    closer.start()
    try:
        # either the close went ahead (released the descriptor under the write) or it waits
        wait_until(lambda: not closer.is_alive() or (
            transport._io_lock.locked()
            and stopped_at(closer, SelectableTransport.close, "_io_lock.acquire")))
    finally:
        release.set()
        writer.join(20)
        closer.join(20)
    assert not writer.is_alive() and not closer.is_alive()
    return failures
