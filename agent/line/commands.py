"""The line owner's command interface: what remote actions ask of the machine.

Pinned in docs/architecture.md. Remote actions reach the machine only through the line
owner (the one thread that owns the serial line), ahead of routine polls:
``LineOwner.submit(command) -> concurrent.futures.Future[CommandResult]``.

Contract for the executor (the line owner, or a fake in tests):

- ``submit`` never blocks the caller (the caller is the asyncio loop); it queues the command
  and returns a future at once. It may raise :class:`CommandRejectedError` when it cannot take
  the command at all (queue full, line owner stopping); nothing was sent to the machine then.
- Before sending anything for a command, the executor calls
  ``future.set_running_or_notify_cancel()`` and skips the command if that returns False: the
  caller cancels a command that waited in the queue past its action's deadline, and such a
  command must not start (protocol.md §5: after ``expiresAt`` the action must not start).
- The future ends with a :class:`CommandResult`; ``ok=False`` with ``error`` when the machine
  NACKed, did not answer, or reported the command failed. Raising into the future is for bugs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CommandKind",
    "CommandRejectedError",
    "CommandResult",
    "MachineCommand",
    "Submit",
]


class CommandKind(enum.Enum):
    """What the line owner should do; the SAS long poll each maps to is the line owner's job."""

    LOCK = "lock"  # LP 01 shutdown (lock out play)
    UNLOCK = "unlock"  # LP 02 startup (enable play)
    SOUND_ON = "soundOn"  # LP 04
    SOUND_OFF = "soundOff"  # LP 03
    ENABLE_BILL_ACCEPTOR = "enableBillAcceptor"  # LP 06
    DISABLE_BILL_ACCEPTOR = "disableBillAcceptor"  # LP 07
    HANDPAY_RESET = "handpayReset"  # LP A8 (enable jackpot handpay reset) then LP 94 (reset)
    SYNC_CLOCK = "syncClock"  # LP 7F set date and time (the line owner takes the time)
    READ_METERS = "readMeters"  # a full meter read; data = {"meters": {...}}
    MACHINE_INFO = "machineInfo"  # LP 54/1F identity; data = the identity fields


@dataclass(frozen=True, slots=True)
class MachineCommand:
    kind: CommandKind
    address: int
    action_id: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandResult:
    ok: bool
    error: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)  # meters, machine info, ...


class CommandRejectedError(Exception):
    """``submit`` could not queue the command (queue full, stopping); nothing was sent."""


#: ``LineOwner.submit``: queue a command, return its future at once.
Submit = Callable[[MachineCommand], "Future[CommandResult]"]
