"""The daemon's half of ``slot-agent diag``: its :class:`LineFacts` from a snapshot of its
line (``Line.status()``, the line owner's ``status``, in the daemon's process or shipped
from the line process). Pure: the daemon adds what it reads through its command queue
(identity, meters) as ``identity`` and ``meters``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.derive.meters import meter_name
from agent.ops.diag_line import MAIN_METERS, LineFacts, money_poll_states, priority_facts

__all__ = ["line_facts_from_status"]


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
    counters["badFrames"] = sum(int(v) for v in (machine.get("badFrames") or {}).values())
    facts.counters = counters
    facts.last_frames = [{"dir": f["dir"], "hex": f["hex"], "at": f.get("at", "")}
                         for f in machine.get("lastFrames", [])][-16:]
    facts.priority = priority_facts(status.get("priority"))
    return facts
