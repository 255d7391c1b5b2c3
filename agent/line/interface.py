"""What the rest of the agent may use of a line owner, wherever it runs.

:class:`Line` is the one typed surface that :class:`agent.line.owner.LineOwner` (a thread of
this process) and :class:`agent.line.process.LineProcess` (the proxy of a line owner run in a
child process) both implement: the daemon, the actions and ``diag`` hold a ``Line`` and never
ask which one it is. :class:`OpenCommands` is the admission rule both apply to a submitted
command, written once.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Hashable, Iterable
from concurrent.futures import Future
from typing import Any, Generic, Protocol, TypeVar

from agent.line.commands import CommandRejectedError, CommandResult, MachineCommand
from agent.reads import ReadRequest

__all__ = ["Line", "OpenCommands"]


class Line(Protocol):
    """A running line owner: the serial line's only user (DESIGN §3.3)."""

    @property
    def running(self) -> bool: ...

    @property
    def cycles(self) -> int: ...

    @property
    def skipped_slots(self) -> int: ...

    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...

    def submit(self, command: MachineCommand) -> Future[CommandResult]:
        """Queue a remote command ahead of routine polls; the future ends with its result.
        Raises :class:`CommandRejectedError` when the line cannot take it."""
        ...

    def request_reads(self, reads: Iterable[ReadRequest]) -> None: ...

    def set_poll_interval(self, interval_ms: int) -> None: ...

    def status(self) -> dict[str, Any]: ...

    def links_up(self) -> dict[int, bool]:
        """Each polled address and whether its link is up: what the ``STATUS=`` line reads
        every 2 s, without building (or, for a line process, asking for) :meth:`status`."""
        ...

    def idle(self) -> bool: ...

    def start_capture(self, limit: int | None = None) -> None:
        """Record every frame from now on; :class:`agent.line.capture.CaptureError`
        when a capture already runs (``slot-agent capture``)."""
        ...

    def stop_capture(self) -> dict[str, Any]:
        """End the capture: ``{"frames": [...], "dropped": n}``."""
        ...

    def close(self) -> None:
        """Release what the line holds in this process once it stopped (its transport)."""
        ...


_F = TypeVar("_F", bound="Future[CommandResult]")


class OpenCommands(Generic[_F]):
    """The commands submitted and not finished, and the rule that admits a new one.

    A command for an address the line does not poll ends at once with a failed result (the
    caller learns it like any other outcome); when ``limit`` commands already wait, the
    submit is refused with :class:`CommandRejectedError` (the caller reports ``busy``).
    """

    def __init__(self, addresses: Collection[int], limit: int) -> None:
        self._addresses = frozenset(addresses)
        self._limit = limit
        self._open: dict[Hashable, _F] = {}
        self._lock = threading.Lock()

    def admit(self, key: Hashable, command: MachineCommand, future: _F) -> bool:
        """True when ``command`` is admitted under ``key`` (forgotten when its future ends);
        False when it already ended (no machine at its address)."""
        if command.address not in self._addresses:
            future.set_result(CommandResult(False, f"no machine at address {command.address}"))
            return False
        with self._lock:
            if len(self._open) >= self._limit:
                raise CommandRejectedError(
                    f"{len(self._open)} commands already wait for the line")
            self._open[key] = future
        future.add_done_callback(lambda _f: self._forget(key))
        return True

    def get(self, key: Hashable) -> _F | None:
        with self._lock:
            return self._open.get(key)

    def pending(self) -> list[_F]:
        with self._lock:
            return list(self._open.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)

    def _forget(self, key: Hashable) -> None:
        with self._lock:
            self._open.pop(key, None)
