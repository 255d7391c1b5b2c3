"""Stop on SIGTERM or SIGINT in a command whose main thread only waits while threads work.

Python runs a signal handler on the main thread between two bytecodes, wherever that thread
is, also while it holds a lock. So the handler here takes none: it sets a flag, and
:meth:`StopSignals.wait` waits in ``select()`` on a pipe that ``signal.set_wakeup_fd`` writes
to from C when a signal arrives, so the wait ends at once and no signal is lost between the
look at the flag and the wait.

Why not ``threading.Event``: its ``set()`` takes the event's lock, a non-reentrant lock that
the main thread itself holds for part of ``Event.wait()``. ``slot-agent emulate`` waited so
and set the event from its handler; a signal landing in that window deadlocked the process
for good (faulthandler's stack of the stuck process: ``on_signal`` -> ``Event.set`` ->
``Condition.__enter__``, called from within ``Event.wait`` -> ``Condition.__enter__``).
CPython gh-126434 is the same trap in ``multiprocessing.Event``.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

__all__ = ["StopSignals"]

#: what ``signal.signal`` returns (None: a handler not installed from Python)
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class StopSignals:
    """``with StopSignals() as stops: while not stops.wait(0.2): ...`` on the main thread.

    Entering installs the handlers (and the wakeup pipe); leaving restores what was there,
    unless a stop signal came: then the stop signals stay ignored. The process is stopping,
    and a second signal during the rest of it (writing the report, the interpreter's exit)
    must change nothing; restored, Python's SIGINT handler raised KeyboardInterrupt outside
    any ``try`` and the process died of SIGINT instead of exiting 0.
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
                 ) -> None:
        self.signals = signals
        #: the first stop signal received, or None
        self.received: signal.Signals | None = None
        self._read_fd = -1
        self._write_fd = -1
        self._old_wakeup_fd: int | None = None  # None: not replaced
        self._old_handlers: dict[signal.Signals, _Handler] = {}

    @property
    def requested(self) -> bool:
        return self.received is not None

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        """The handler: a flag set, nothing else (no lock, no I/O), so it is safe wherever
        the main thread is interrupted."""
        if self.received is None:
            self.received = signal.Signals(signum)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a stop signal; whether one has come.

        A signal that arrives during the wait ends it at once. Its handler may run just after
        the wait returns (Python runs handlers between bytecodes), so this can return False
        right after a signal; the caller's next ``wait`` then returns True at once.
        """
        if self.received is not None:
            return True
        with contextlib.suppress(InterruptedError):
            ready, _, _ = select.select([self._read_fd], [], [], max(0.0, timeout))
            if ready:
                self._drain()
        return self.received is not None

    def __enter__(self) -> StopSignals:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        try:
            # the byte per signal is only a wake-up: a full pipe loses nothing that matters
            self._old_wakeup_fd = signal.set_wakeup_fd(self._write_fd,
                                                       warn_on_full_buffer=False)
            for sig in self.signals:
                self._old_handlers[sig] = signal.signal(sig, self.handle)
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, old in self._old_handlers.items():
            if self.received is not None:
                signal.signal(sig, signal.SIG_IGN)  # stopping: see the class docstring
            elif old is not None:
                signal.signal(sig, old)
        self._old_handlers.clear()
        if self._old_wakeup_fd is not None:
            signal.set_wakeup_fd(self._old_wakeup_fd)
        for fd in (self._read_fd, self._write_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._read_fd = self._write_fd = -1
        self._old_wakeup_fd = None

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._read_fd, 64):
                pass
