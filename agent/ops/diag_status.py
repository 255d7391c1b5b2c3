"""The daemon's half of ``slot-agent diag``: its :class:`LineFacts` from a snapshot of its
line (``Line.status()``, the line owner's ``status``, in the daemon's process or shipped
from the line process: :func:`line_facts_from_status`, pure) and the identity and meters
read again through the line's command queue (:func:`line_facts`, on the control thread)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any

from agent.derive.meters import meter_name
from agent.line.commands import CommandKind, CommandRejectedError, MachineCommand
from agent.line.interface import Line
from agent.ops.diag_line import MAIN_METERS, LineFacts, money_poll_states, priority_facts

__all__ = ["DIAG_READ_TIMEOUT_S", "line_facts", "line_facts_from_status"]

log = logging.getLogger(__name__)

#: How long ``diag`` over the control socket waits for a fresh meter read.
DIAG_READ_TIMEOUT_S = 5.0


def line_facts(line: Line, status: Mapping[str, Any], machine: Mapping[str, Any], *,
               port: str) -> LineFacts:
    """The facts of ``machine`` (one of ``status["machines"]``, ``status`` being
    ``line.status()``), with its identity and meters read again through the command queue
    when its link is up (between routine polls; blocks up to :data:`DIAG_READ_TIMEOUT_S`
    per read)."""
    address = int(machine["address"])
    identity: dict[str, Any] = {}
    meters: dict[str, int] = {}
    if machine["linkUp"]:
        identity = _command_data(line, address, CommandKind.MACHINE_INFO)
        meters = dict(_command_data(line, address, CommandKind.READ_METERS).get("meters")
                      or {})
    return line_facts_from_status(status, machine, port=port, identity=identity,
                                  meters=meters)


def _command_data(line: Line, address: int, kind: CommandKind) -> dict[str, Any]:
    """Run a command through the line owner's queue and wait (control thread only)."""
    try:
        future = line.submit(MachineCommand(kind, address))
        result = future.result(timeout=DIAG_READ_TIMEOUT_S)
    except (CommandRejectedError, FutureTimeoutError) as exc:
        log.info("diag: %s not answered: %s", kind.value, exc)
        return {}
    return dict(result.data) if result.ok else {}


def line_facts_from_status(status: Mapping[str, Any], machine: Mapping[str, Any], *,
                           port: str, identity: Mapping[str, Any] | None = None,
                           meters: Mapping[str, int] | None = None) -> LineFacts:
    """The facts of ``machine`` (one of ``status["machines"]``) on the line at ``port``.
    ``identity`` (a MACHINE_INFO result) and ``meters`` (a READ_METERS result's meters,
    keyed by hex code) were read just now and win over the snapshot's."""
    address = int(machine["address"])
    facts = LineFacts(port=port, address=address, port_opened=True)
    facts.general_poll_ok = bool(machine["linkUp"])
    error = status.get("error")
    if error and not facts.general_poll_ok:
        # The line itself failed (TCP refused, adapter gone, permission): that is the
        # cause to report, not the cable or the address of a machine never reached.
        facts.port_opened, facts.port_error = False, f"in the running agent: {error}"
    if not facts.general_poll_ok:
        facts.general_poll_error = (error or
                                    f"link down since {machine.get('since') or 'start'}")
    known: dict[str, Any] = {**(machine.get("machine") or {}), **(identity or {})}
    by_hex: dict[str, int] = {**(machine.get("lastMeters") or {}), **(meters or {})}
    facts.link_up = facts.general_poll_ok
    facts.sas_version = known.get("sasVersion") or None
    facts.serial_number = known.get("serialNumber")
    if known.get("gameId") is not None:
        facts.machine_info = {
            "gameId": known.get("gameId"), "additionalId": known.get("additionalId"),
            "denominationCode": None, "denominationCents": known.get("denomination"),
            "maxBet": known.get("maxBet"), "paytableId": known.get("paytableId"),
            "basePercent": known.get("basePercent")}
    by_code = {int(k, 16): int(v) for k, v in by_hex.items()}
    facts.credits = by_code.get(0x0C)
    facts.meters = {meter_name(c): by_code[c] for c in MAIN_METERS if c in by_code}
    # a poll found ignored stays so for diag through the snapshot's re-probe (which empties
    # ignoredPolls), until the machine answers it (agent.line.schedule Memory.verdicts)
    verdicts = {f"LP {p}": v for p, v in (machine.get("pollVerdicts") or {}).items()}
    ignored = {f"LP {p}" for p in machine.get("ignoredPolls", [])}
    ignored.update(p for p, v in verdicts.items() if v == "ignored")
    facts.ignored_polls = sorted(ignored)
    facts.money_polls = money_poll_states(
        facts.ignored_polls, {p for p, v in verdicts.items() if v == "answered"})
    polls: dict[str, int] = dict(machine.get("polls") or {})
    counters = {k: int(v) for k, v in polls.items()}
    counters["polls"] = sum(polls.values())
    bad: dict[str, int] = {k: int(v) for k, v in (machine.get("badFrames") or {}).items()}
    # late answers are thrown away before a send, counted as a bad frame of their own kind
    # (agent/line/reply_window.py); diag's link check names them apart, as --direct does
    counters["late"] = bad.pop("late", 0)
    counters["badFrames"] = sum(bad.values())
    facts.counters = counters
    facts.last_frames = [{"dir": f["dir"], "hex": f["hex"], "at": f.get("at", "")}
                         for f in machine.get("lastFrames", [])][-16:]
    facts.priority = priority_facts(status.get("priority"))
    return facts
