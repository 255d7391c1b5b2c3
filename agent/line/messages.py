"""What crosses the socket between the daemon and its line process, and the figures both
sides agree on (agent/line/process.py is the daemon's side, agent/line/child.py the child's).

Every message is a frozen dataclass sent pickled over one Unix socket pair; both processes
import this module, so a message unpickles as the very class it was sent as.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.config import Config
from agent.line.commands import CommandResult, MachineCommand
from agent.reads import ReadRequest
from drivers.base import Transport

#: The child ships its metric figures and cycle count this often (a link going up or down is
#: shipped at once): well inside a 15 s scrape and the watchdog's 15 s check, and rare enough
#: that shipping costs next to nothing (0.5 s cost about 0.15 % of a core over both
#: processes at the 200 ms cadence: bench/footprint.py, docs/performance.md).
TICK_S = 2.0
#: Once the child was asked to stop, how long it may take beyond the line owner's own stop
#: timeout before it is killed.
STOP_GRACE_S = 2.0
#: Exit status of a child whose line-owner thread died of a bug (sysexits EX_SOFTWARE).
EXIT_LINE_CRASHED = 70
#: Exit status of a child that could not start (the line did not open, a bad handshake).
EXIT_CANNOT_START = 1
#: The child's name in ``ps -e``, ``top`` (``/proc/PID/comm``, at most 15 characters).
CHILD_COMM = "slot-agent-line"
#: How many nice levels the child goes ahead of the daemon when it may (root, or a
#: ``LimitNICE=`` that allows it): on a busy CPU the kernel then runs the line first.
NICE_AHEAD = 5
#: The SCHED_RR priority of the line process with ``poll.line_priority: realtime`` (1..99):
#: above every ordinary process, below the kernel's interrupt threads (50) and watchdogs (99).
#: The unit's ``LimitRTPRIO=`` must allow at least this (docs/operations.md).
RT_PRIORITY = 10

TransportFactory = Callable[[Config], Transport]


# ---------------------------------------------------------------------- daemon -> child


@dataclass(frozen=True, slots=True)
class Init:
    config: Config
    factory: TransportFactory
    log_level: int
    frame_log_size: int
    max_pending_commands: int


@dataclass(frozen=True, slots=True)
class Submit:
    command_id: int
    command: MachineCommand


@dataclass(frozen=True, slots=True)
class Reads:
    reads: tuple[ReadRequest, ...]


@dataclass(frozen=True, slots=True)
class SetInterval:
    interval_ms: int


@dataclass(frozen=True, slots=True)
class SetLogLevel:
    level: int


@dataclass(frozen=True, slots=True)
class StatusQuery:
    """Ask for ``LineOwner.status()``; answered by :class:`StatusAnswer`."""

    request_id: int


@dataclass(frozen=True, slots=True)
class IdleQuery:
    """Ask for ``LineOwner.idle()``; answered by :class:`IdleAnswer`."""

    request_id: int


@dataclass(frozen=True, slots=True)
class CancelQuery:
    """Cancel a command not started yet; answered by :class:`CancelAnswer`."""

    request_id: int
    command_id: int


@dataclass(frozen=True, slots=True)
class CaptureQuery:
    """Start (``start`` True) or end a capture of the line's frames (``slot-agent capture``);
    answered by :class:`CaptureAnswer`."""

    request_id: int
    start: bool


Query = StatusQuery | IdleQuery | CancelQuery | CaptureQuery


@dataclass(frozen=True, slots=True)
class Stop:
    timeout: float


# ---------------------------------------------------------------------- child -> daemon


@dataclass(frozen=True, slots=True)
class Ready:
    transport: str
    pid: int
    #: The scheduling the line process got: ``{"asked", "got", "detail"}`` (child.Priority).
    priority: dict[str, str]


@dataclass(frozen=True, slots=True)
class OpenFailed:
    error: str


@dataclass(frozen=True, slots=True)
class Started:
    command_id: int


@dataclass(frozen=True, slots=True)
class Finished:
    command_id: int
    result: CommandResult


@dataclass(frozen=True, slots=True)
class StatusAnswer:
    request_id: int
    status: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IdleAnswer:
    request_id: int
    idle: bool


@dataclass(frozen=True, slots=True)
class CancelAnswer:
    request_id: int
    cancelled: bool


@dataclass(frozen=True, slots=True)
class CaptureAnswer:
    """``result``: the frames when a capture ended; ``error``: why it could not start."""

    request_id: int
    result: dict[str, Any]
    error: str | None = None


Answer = StatusAnswer | IdleAnswer | CancelAnswer | CaptureAnswer


@dataclass(frozen=True, slots=True)
class Tick:
    """What the line owner counted since the last tick (metrics are shipped, not kept)."""

    cycles: int
    skipped_slots: int
    polls: tuple[tuple[int, str, int], ...] = ()  # (address, result, count)
    latencies: tuple[float, ...] = ()
    deviations: tuple[float, ...] = ()
    bad_frames: tuple[tuple[int, str, int], ...] = ()  # (address, kind, count)
    links: tuple[tuple[int, bool], ...] = ()


@dataclass(frozen=True, slots=True)
class Log:
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Stopped:
    error: str | None


