"""Remote actions: check, de-duplicate, execute through the line owner, report twice.

An ``action`` frame from the hub (docs/protocol.md §4) goes through, in this order:

1. ``terminalId`` must be ours (else rejected, ``forbidden``).
2. With an action key configured (``actions.hmac_key_file``), the HMAC-SHA256 signature and
   ``issuedAt`` inside the replay window are checked (protocol.md §7; else rejected,
   ``bad_signature``). These two refusals are not recorded under the id, so a forged frame
   cannot burn the id of a genuine action.
3. The id is recorded in the outbox's actions table (:meth:`Outbox.action_begin`). An id seen
   before is never executed again: a finished one is answered with its stored result (the
   ``actionAck`` says ``accepted`` or ``rejected`` as the first time), a running one gets an
   ``actionAck`` ``accepted`` and its one ``actionResult`` follows when it ends.
4. Past ``expiresAt``: ``actionAck`` rejected, ``actionResult`` ``expired``; nothing executed.
5. Unknown action, unknown or malformed params (``address`` must be a configured machine
   address; ``startPlayerSession`` needs ``playerId``): rejected, ``unknown_action`` /
   ``bad_params``.
6. ``actionAck`` accepted at once, then the work: a :class:`MachineCommand` through the line
   owner's priority queue (``submit``), a ``SessionCommand`` observation for player sessions,
   or the injected diagnostics report.

Every result, whatever the path, is (a) sent back as ``actionResult`` through ``reply``,
(b) stored with the id (:meth:`Outbox.action_finish`) so a repeat gets the same answer, and
(c) committed as an ``actionCompleted`` event (channel ``system``) through ``emit``, so the
hub learns it even when the connection was down when the result was ready. Steps (b) and (c)
happen before (a). Error strings start with a code, ``"<code>: <detail>"`` (:class:`ActionError`).

Lock state: the line owner, not this module, produces the ``HostLockChanged`` observation
(with ``action_id``) when the machine ACKs LP 01/02, so the interpreter emits
``machineLocked``/``machineUnlocked`` with ``by`` = the action id exactly once, in order with
what else the line saw, and also when the action gave up waiting but the machine did lock.

Deadline: an action may not *start* after ``expiresAt`` (or, without one, after
``actions.default_ttl_s`` from receipt). A command still queued at the deadline is cancelled
(its future, see :mod:`agent.line.commands`) and reported ``expired``; a command already
running on the line is given :data:`RUNNING_GRACE_S` more to finish, then reported ``failed``
(``timeout``), since its effect on the machine is unknown.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from agent.config import Config, read_hmac_key
from agent.line.commands import (
    CommandKind,
    CommandRejectedError,
    CommandResult,
    MachineCommand,
    Submit,
)
from agent.observations import Observation, SessionCommand
from agent.ops.metrics import ActionStatus as MetricStatus
from agent.ops.metrics import AgentMetrics
from agent.store.outbox import ActionRecord
from api import messages, wire
from api.events import Event, utc_timestamp
from api.wire import ActionAckStatus, ActionStatus, WireError

__all__ = [
    "ACTION_NAMES",
    "RUNNING_GRACE_S",
    "ActionError",
    "ActionStore",
    "Actions",
    "Reply",
]

log = logging.getLogger("agent.uplink.actions")

#: How long a command that already started on the line may run past the action's deadline.
RUNNING_GRACE_S = 30.0
#: A result larger than this (JSON bytes) is left out of the ``actionCompleted`` event; the
#: direct ``actionResult`` and the stored record still carry it.
MAX_EVENT_RESULT_BYTES = 4096
MAX_PLAYER_ID_LENGTH = 64

#: Sends one frame to the hub (the uplink queues it; it never blocks).
Reply = Callable[[dict[str, Any]], None]


class ActionError(enum.StrEnum):
    """Codes at the start of ``actionAck.error`` / ``actionResult.error``."""

    FORBIDDEN = "forbidden"  # the action names another terminal
    BAD_SIGNATURE = wire.ErrorCode.BAD_SIGNATURE.value
    EXPIRED = wire.ErrorCode.EXPIRED.value
    UNKNOWN_ACTION = "unknown_action"
    BAD_PARAMS = "bad_params"
    BUSY = "busy"  # the line owner could not queue the command
    MACHINE = "machine_error"  # the machine refused or did not answer
    TIMEOUT = "timeout"  # started on the line and did not end in time
    INTERRUPTED = "interrupted"  # the agent stopped while the action ran
    INTERNAL = "internal"


class ActionStore(Protocol):
    """The outbox's actions table (:class:`agent.store.outbox.Outbox` implements it)."""

    def action_begin(self, action_id: str, received_at: float) -> ActionRecord | None: ...

    def action_finish(self, action_id: str, result: Mapping[str, Any]) -> None: ...

    def unfinished_actions(self) -> list[ActionRecord]: ...


@dataclass(frozen=True, slots=True)
class _Spec:
    kind: CommandKind | None  # None: not a machine command
    params: frozenset[str]
    required: frozenset[str] = frozenset()


_ADDR = frozenset({"address"})
_SPECS: Mapping[str, _Spec] = {
    "lock": _Spec(CommandKind.LOCK, _ADDR),
    "unlock": _Spec(CommandKind.UNLOCK, _ADDR),
    "enableBillAcceptor": _Spec(CommandKind.ENABLE_BILL_ACCEPTOR, _ADDR),
    "disableBillAcceptor": _Spec(CommandKind.DISABLE_BILL_ACCEPTOR, _ADDR),
    "soundOn": _Spec(CommandKind.SOUND_ON, _ADDR),
    "soundOff": _Spec(CommandKind.SOUND_OFF, _ADDR),
    "handpayReset": _Spec(CommandKind.HANDPAY_RESET, _ADDR),
    "syncClock": _Spec(CommandKind.SYNC_CLOCK, _ADDR),
    "readMeters": _Spec(CommandKind.READ_METERS, _ADDR),
    "machineInfo": _Spec(CommandKind.MACHINE_INFO, _ADDR),
    "startPlayerSession": _Spec(None, _ADDR | {"playerId"}, frozenset({"playerId"})),
    "endPlayerSession": _Spec(None, _ADDR | {"playerId"}),
    "diagnostics": _Spec(None, frozenset()),
}
#: Every action name this agent executes (docs/events.md lists them).
ACTION_NAMES = tuple(_SPECS)

_METRIC = {
    ActionStatus.SUCCEEDED: MetricStatus.OK,
    ActionStatus.FAILED: MetricStatus.FAILED,
    ActionStatus.REJECTED: MetricStatus.REJECTED,
    ActionStatus.EXPIRED: MetricStatus.EXPIRED,
}


def _metric_name(name: str) -> str:
    """The ``action`` label: a known name, else "unknown" (labels stay few)."""
    return name if name in _SPECS else "unknown"


class _Refused(Exception):
    def __init__(self, status: ActionStatus, code: ActionError, detail: str) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.status = status
        self.text = f"{code.value}: {detail}"


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: ActionStatus
    error: str | None = None
    result: Mapping[str, Any] | None = None

    def record(self, action: str) -> dict[str, Any]:
        rec: dict[str, Any] = {"action": action, "status": self.status.value}
        if self.error is not None:
            rec["error"] = self.error
        if self.result is not None:
            rec["result"] = dict(self.result)
        return rec


class Actions:
    """Executes the hub's ``action`` frames; see the module docstring for the exact rules.

    Lives on the asyncio side. ``submit`` is ``LineOwner.submit``; ``emit`` hands an event to
    the pipeline (it lands in the outbox); ``observe`` hands an observation to the pipeline
    (interpreter input); ``diagnostics_report`` builds the same report as the diagnostics
    command. All three callables must not block. Outbox calls run in a worker thread.
    """

    def __init__(
        self,
        *,
        terminal_id: str,
        store: ActionStore,
        submit: Submit,
        emit: Callable[[Event], None],
        observe: Callable[[Observation], None],
        diagnostics_report: Callable[[], Mapping[str, Any]],
        addresses: Sequence[int],
        hmac_key: bytes | None = None,
        replay_window_s: float = wire.DEFAULT_SIGNATURE_WINDOW,
        default_ttl_s: float = 300.0,
        metrics: AgentMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not addresses:
            raise ValueError("Actions needs at least one machine address")
        self.terminal_id = terminal_id
        self._store = store
        self._submit = submit
        self._emit = emit
        self._observe = observe
        self._diagnostics = diagnostics_report
        self._addresses = tuple(addresses)
        self._key = hmac_key
        self._window = replay_window_s
        self._ttl = default_ttl_s
        self._metrics = metrics
        self._clock = clock

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        store: ActionStore,
        submit: Submit,
        emit: Callable[[Event], None],
        observe: Callable[[Observation], None],
        diagnostics_report: Callable[[], Mapping[str, Any]],
        metrics: AgentMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Actions:
        """Build from the agent's configuration (reads ``actions.hmac_key_file``)."""
        return cls(
            terminal_id=config.terminal_id, store=store, submit=submit, emit=emit,
            observe=observe, diagnostics_report=diagnostics_report,
            addresses=[m.address for m in config.machines], hmac_key=read_hmac_key(config),
            replay_window_s=config.actions.replay_window_s,
            default_ttl_s=config.actions.default_ttl_s, metrics=metrics, clock=clock,
        )

    # ------------------------------------------------------------------ entry points

    async def handle(self, msg: messages.Action, reply: Reply) -> dict[str, Any] | None:
        """Handle one ``action`` as the uplink read it (:func:`api.decode.from_hub_to_terminal`).

        Sends ``actionAck`` and (later) ``actionResult`` through ``reply``. Returns the
        ``actionResult`` frame, or None when the id is still running elsewhere.
        """
        action_id = msg.id
        name = msg.action
        now = self._clock()
        try:
            self._check_origin(msg, now)
        except _Refused as refused:
            log.warning("action %s (%s) refused: %s", action_id, name, refused.text)
            return await self._conclude(action_id, name, _Outcome(refused.status,
                                                                  refused.text), reply,
                                        recorded=False)
        seen = await asyncio.to_thread(self._store.action_begin, action_id, now)
        if seen is not None:
            return self._repeat(action_id, name, seen, reply)
        try:
            deadline = self._check_expiry(msg, now)
            spec, params, address = self._validate(name, msg.params or {})
        except _Refused as refused:
            log.warning("action %s (%s) refused: %s", action_id, name, refused.text)
            return await self._conclude(action_id, name, _Outcome(refused.status,
                                                                  refused.text), reply)
        reply(wire.action_ack(action_id, self.terminal_id, ActionAckStatus.ACCEPTED))
        log.info("action %s (%s) accepted from %s", action_id, name, msg.sender or "?")
        try:
            outcome = await self._execute(action_id, name, spec, params, address, deadline)
        except Exception:
            log.exception("action %s (%s) failed inside the agent", action_id, name)
            outcome = _Outcome(ActionStatus.FAILED, f"{ActionError.INTERNAL.value}: "
                                                    "the agent failed; see its log")
        return await self._conclude(action_id, name, outcome, reply, acked=True)

    def recover_unfinished(self) -> int:
        """Finish actions left running by a previous run (call once at start, off the loop).

        Each gets a ``failed`` result (``interrupted``) and its ``actionCompleted`` event, so
        a hub asking again gets an answer. The machine may or may not have executed it.
        """
        records = self._store.unfinished_actions()
        for rec in records:
            outcome = _Outcome(ActionStatus.FAILED, f"{ActionError.INTERRUPTED.value}: the "
                                                    "agent stopped while the action ran")
            stored = outcome.record("unknown")
            self._store.action_finish(rec.action_id, stored)
            self._emit(self._completed_event(rec.action_id, "unknown", outcome))
        return len(records)

    # ------------------------------------------------------------------ checks

    def _check_origin(self, msg: messages.Action, now: float) -> None:
        if msg.terminal_id != self.terminal_id:
            raise _Refused(ActionStatus.REJECTED, ActionError.FORBIDDEN,
                           f"action is for terminal {msg.terminal_id[:64]}, "
                           f"this is {self.terminal_id}")
        if self._key is not None:
            try:
                wire.verify_action(self._key, msg.to_wire(), now, self._window)
            except WireError as exc:
                raise _Refused(ActionStatus.REJECTED, ActionError.BAD_SIGNATURE,
                               exc.message) from None

    def _check_expiry(self, msg: messages.Action, now: float) -> float:
        expires = msg.expires_at
        if expires is None:
            return now + self._ttl
        deadline = wire.parse_timestamp(expires)
        if deadline <= now:
            raise _Refused(ActionStatus.EXPIRED, ActionError.EXPIRED,
                           f"expiresAt {expires} has passed")
        return deadline

    def _validate(self, name: str, raw: Any) -> tuple[_Spec, dict[str, Any], int]:
        spec = _SPECS.get(name)
        if spec is None:
            raise _Refused(ActionStatus.REJECTED, ActionError.UNKNOWN_ACTION,
                           f"unknown action {name[:64]!r}; known: {', '.join(ACTION_NAMES)}")
        if not isinstance(raw, Mapping):
            raise _Refused(ActionStatus.REJECTED, ActionError.BAD_PARAMS,
                           "params must be an object")
        params = dict(raw)
        unknown = sorted(set(params) - spec.params)
        if unknown:
            allowed = ", ".join(sorted(spec.params)) or "none"
            raise _Refused(ActionStatus.REJECTED, ActionError.BAD_PARAMS,
                           f"unknown parameter(s) {', '.join(map(repr, unknown))[:200]} for "
                           f"{name} (allowed: {allowed})")
        missing = sorted(spec.required - set(params))
        if missing:
            raise _Refused(ActionStatus.REJECTED, ActionError.BAD_PARAMS,
                           f"{name} needs {', '.join(map(repr, missing))}")
        address = self._addresses[0]
        if "address" in params:
            value = params["address"]
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value not in self._addresses:
                raise _Refused(ActionStatus.REJECTED, ActionError.BAD_PARAMS,
                               f"address must be a configured machine address "
                               f"{list(self._addresses)}, got {json.dumps(value)[:40]}")
            address = value
        if "playerId" in params:
            player = params["playerId"]
            if not isinstance(player, str) or not player or \
                    len(player) > MAX_PLAYER_ID_LENGTH:
                raise _Refused(ActionStatus.REJECTED, ActionError.BAD_PARAMS,
                               f"playerId must be a non-empty string of at most "
                               f"{MAX_PLAYER_ID_LENGTH} characters")
        return spec, params, address

    # ------------------------------------------------------------------ execution

    async def _execute(self, action_id: str, name: str, spec: _Spec, params: dict[str, Any],
                       address: int, deadline: float) -> _Outcome:
        if name == "diagnostics":
            return _Outcome(ActionStatus.SUCCEEDED, result=dict(self._diagnostics()))
        if name in ("startPlayerSession", "endPlayerSession"):
            start = name == "startPlayerSession"
            player = params.get("playerId")
            self._observe(SessionCommand(at=self._clock(), address=address, start=start,
                                         player_id=player, action_id=action_id))
            result: dict[str, Any] = {"session": "started" if start else "ended"}
            if player is not None:
                result["playerId"] = player
            return _Outcome(ActionStatus.SUCCEEDED, result=result)
        assert spec.kind is not None
        command = MachineCommand(spec.kind, address, action_id, {})
        try:
            future = self._submit(command)
        except CommandRejectedError as exc:
            return _Outcome(ActionStatus.FAILED, f"{ActionError.BUSY.value}: {exc}")
        done = await self._await_command(future, deadline)
        if done is None:
            if future.cancel():
                return _Outcome(ActionStatus.EXPIRED, f"{ActionError.EXPIRED.value}: still "
                                                      "queued on the line at its deadline")
            return _Outcome(ActionStatus.FAILED, f"{ActionError.TIMEOUT.value}: the command "
                                                 f"ran {RUNNING_GRACE_S:.0f} s past the "
                                                 "deadline; its effect is unknown")
        if not done.ok:
            return _Outcome(ActionStatus.FAILED,
                            f"{ActionError.MACHINE.value}: {done.error or 'command failed'}",
                            result=dict(done.data) or None)
        result = dict(done.data)
        if spec.kind in (CommandKind.LOCK, CommandKind.UNLOCK):
            result["locked"] = spec.kind is CommandKind.LOCK
        return _Outcome(ActionStatus.SUCCEEDED, result=result)

    async def _await_command(self, future: Future[CommandResult], deadline: float
                             ) -> CommandResult | None:
        """The command's result, or None when it did not end in time."""
        waiter = asyncio.wrap_future(future)
        timeout = max(0.0, deadline - self._clock())
        done, _ = await asyncio.wait({waiter}, timeout=timeout)
        if not done and future.running():
            done, _ = await asyncio.wait({waiter}, timeout=RUNNING_GRACE_S)
        if not done:
            return None
        if waiter.cancelled():
            return CommandResult(False, "the line owner cancelled the command")
        exc = waiter.exception()
        if exc is not None:
            log.error("line owner raised for a command: %r", exc)
            return CommandResult(False, f"line owner error: {type(exc).__name__}")
        return waiter.result()

    # ------------------------------------------------------------------ reporting

    def _repeat(self, action_id: str, name: str, seen: ActionRecord, reply: Reply
                ) -> dict[str, Any] | None:
        if self._metrics is not None:
            self._metrics.record_action(_metric_name(name), MetricStatus.DUPLICATE)
        if seen.result is None:
            log.info("action %s repeated while it runs: its result follows", action_id)
            reply(wire.action_ack(action_id, self.terminal_id, ActionAckStatus.ACCEPTED))
            return None
        stored = seen.result
        status = ActionStatus(str(stored.get("status", ActionStatus.FAILED.value)))
        error = stored.get("error")
        log.info("action %s repeated: answering its stored result (%s)", action_id,
                 status.value)
        ack_status = ActionAckStatus.REJECTED if status in (
            ActionStatus.REJECTED, ActionStatus.EXPIRED) else ActionAckStatus.ACCEPTED
        reply(wire.action_ack(action_id, self.terminal_id, ack_status,
                              error if ack_status is ActionAckStatus.REJECTED else None))
        frame = wire.action_result(action_id, self.terminal_id, status,
                                   error=None if error is None else str(error),
                                   result=stored.get("result"))
        reply(frame)
        return frame

    async def _conclude(self, action_id: str, name: str, outcome: _Outcome, reply: Reply, *,
                        recorded: bool = True, acked: bool = False) -> dict[str, Any]:
        if outcome.result is not None:
            # What is stored and sent must be JSON: anything else becomes its string form.
            outcome = _Outcome(outcome.status, outcome.error,
                               json.loads(json.dumps(dict(outcome.result), default=str)))
        if not acked:
            reply(wire.action_ack(action_id, self.terminal_id, ActionAckStatus.REJECTED,
                                  outcome.error))
        if recorded:
            try:
                await asyncio.to_thread(self._store.action_finish, action_id,
                                        outcome.record(name))
            except Exception:
                # The result still goes out (reply and event); only the de-duplication of a
                # repeat after this point is lost, and the repeat finds the id "running".
                log.exception("action %s: cannot store its result", action_id)
        self._emit(self._completed_event(action_id, name, outcome))
        if self._metrics is not None:
            self._metrics.record_action(_metric_name(name), _METRIC[outcome.status])
        log.info("action %s (%s) %s%s", action_id, name, outcome.status.value,
                 f": {outcome.error}" if outcome.error else "")
        frame = wire.action_result(action_id, self.terminal_id, outcome.status,
                                   error=outcome.error, result=outcome.result)
        reply(frame)
        return frame

    def _completed_event(self, action_id: str, name: str, outcome: _Outcome) -> Event:
        # ``error`` is always there, null on success (docs/events.md: a listed field is
        # always present); the actionResult reply leaves it out instead (docs/protocol.md).
        data: dict[str, Any] = {"actionId": action_id, "action": name,
                                "status": outcome.status.value, "error": outcome.error}
        if outcome.result is not None:
            text = json.dumps(dict(outcome.result), separators=(",", ":"), default=str)
            if len(text.encode()) <= MAX_EVENT_RESULT_BYTES:
                data["result"] = dict(outcome.result)
            else:
                data["resultOmitted"] = True
        return Event("actionCompleted", utc_timestamp(self._clock()), data)
