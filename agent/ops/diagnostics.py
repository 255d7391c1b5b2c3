"""``slot-agent diag``: the checks a technician runs at the machine, and the report they make.

Three kinds of facts feed the report, each a plain JSON-able mapping so the running daemon can
send them over the control socket unchanged:

- *line facts* (:class:`LineFacts`): did the port open, did the machine answer a general
  poll, who it is (LP 54, LP 1F), its credits and main meters, which long polls it ignores,
  the link counters and the last frames as elided hex. The daemon builds them from its line
  owner; without a daemon :func:`probe_line` polls the machine directly with
  :class:`~sas_protocol.host.HostProtocol` over a transport it is given.
- *outbox facts*: depth, oldest unacknowledged event, ``quick_check``
  (:func:`outbox_facts`, read-only, safe beside the daemon).
- *uplink facts*: DNS, TCP, TLS, authentication and the hub's clock, each step on its own,
  for every hub URL of ``uplink.url`` (:func:`probe_uplink`): the uplink rows report the URL
  the agent gets its session on, ``uplink_urls`` every URL (one passing is enough: another
  failing is a warning that names it; :mod:`agent.ops.diag_uplink_rules`). Authentication
  is the hub's verdict on this terminal id with this token: the handshake, then ``hello``
  until ``welcome`` or the hub's refusal (``forbidden`` and close 1008 when the token is
  bound to another terminal, docs/protocol.md §4). A hello would replace a running daemon's
  session (close 4002), so when the daemon's own session is up, its ``welcome`` is the
  verdict and diag stops at the handshake.
- *daemon facts*: running (answered), stopped (no control socket, or a stale one a dead
  daemon left), hung (no answer in time), or not reachable (permission).

:func:`build_report` turns the facts into :class:`Check` rows (``ok``, ``warn``, ``fail`` or
``skip``, with a hint for anything not ok); :func:`render_table` and :meth:`Report.to_json`
print them (the report model and its rendering: :mod:`agent.ops.diag_report`). The exit code
is 1 when any check failed. The facts are gathered by :mod:`agent.ops.diag_line` (the line:
facts and the direct probe) and :mod:`agent.ops.diag_uplink` (the hub); this module holds the
rules that judge them (the uplink's in :mod:`agent.ops.diag_uplink_rules`).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any

from agent.derive.meters import meter_name
from agent.line.discovery import money_sources
from agent.line.messages import NICE_AHEAD, RT_PRIORITY
from agent.ops.diag_line import (
    MAIN_METERS,
    NOT_ASKED,
    LineFacts,
    ignored_commands,
    probe_line,
)
from agent.ops.diag_report import (
    CHECK_IDS,
    Check,
    CheckStatus,
    Report,
    make_check,
    render_table,
)
from agent.ops.diag_uplink import probe_uplink
from agent.ops.diag_uplink_rules import uplink_checks

__all__ = [
    "CHECK_IDS",
    "MAIN_METERS",
    "Check",
    "CheckStatus",
    "LineFacts",
    "Report",
    "build_report",
    "daemon_state",
    "outbox_facts",
    "probe_line",
    "probe_uplink",
    "render_table",
]



# ------------------------------------------------------------------------------ outbox


def outbox_facts(path: str, *, terminal_id: str | None = None,
                 now: float | None = None) -> dict[str, Any]:
    """Read-only look at the outbox file (safe while the daemon writes to it).

    With ``terminal_id``, ``ownedBy`` tells whether the file belongs to that terminal:
    ``run`` refuses to start on another terminal's outbox (its events must never be sent
    under a second id), so diag and check-config must say so first."""
    from agent.store.outbox import Outbox, OutboxError

    now = time.time() if now is None else now
    try:
        reader = Outbox.open_reader(path)
    except OutboxError as exc:
        return {"path": path, "exists": os.path.exists(path), "error": str(exc)}
    try:
        stats = reader.stats()
        health = reader.quick_check()
    except Exception as exc:  # a damaged file must be reported, never a traceback
        return {"path": path, "exists": True, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        reader.close()
    oldest = stats.oldest_unacked_created_at
    owner = stats.terminal_id or None
    return {
        "path": path, "exists": True, "error": None, "terminalId": owner,
        "ownerMismatch": bool(terminal_id and owner and owner != terminal_id),
        "expectedTerminalId": terminal_id,
        "depth": stats.depth, "rows": stats.rows,
        "lastSeq": stats.last_seq, "ackedSeq": stats.acked_seq,
        "oldestUnackedAgeS": None if oldest is None else max(0.0, now - oldest),
        "dbBytes": stats.db_bytes, "walBytes": stats.wal_bytes, "quickCheck": health,
    }


# ------------------------------------------------------------------------------ the report


def build_report(
    *,
    line: LineFacts | None,
    outbox: Mapping[str, Any] | None,
    uplink: Mapping[str, Any] | None,
    source: str,
    terminal_id: str,
    daemon_uplink: Mapping[str, Any] | None = None,
    max_skew_s: float = 30.0,
    generated_at: float | None = None,
    daemon: Mapping[str, Any] | None = None,
) -> Report:
    """Every check of :data:`CHECK_IDS` from the facts (a missing fact is a ``skip``).

    ``daemon``: ``{"state": "running" | "stopped" | "stale" | "hung" | "unreachable" |
    "error" | "not asked", "detail": str}`` (:func:`daemon_state`)."""
    checks = [*_line_checks(line), _priority_check(line, source), _outbox_check(outbox),
              *uplink_checks(uplink, daemon_uplink, max_skew_s), _daemon_check(daemon)]
    return Report(tuple(checks), source, terminal_id,
                  time.time() if generated_at is None else generated_at)


_SKIP_LINE = "the machine did not answer a general poll"


def _line_checks(line: LineFacts | None) -> list[Check]:
    ids = [cid for cid, _ in CHECK_IDS[:7]]
    if line is None:
        return [make_check(cid, CheckStatus.SKIP, "line not checked") for cid in ids]
    out: list[Check] = []
    if not line.port_opened:
        error = line.port_error or "cannot open"
        out.append(make_check(
            "serial_port", CheckStatus.FAIL, f"{line.port}: {error}",
            _port_hint(line.port, error), port=line.port))
        out.extend(make_check(cid, CheckStatus.SKIP, "the serial port did not open")
                   for cid in ids[1:])
        return out
    out.append(make_check("serial_port", CheckStatus.OK, f"{line.port} opened", port=line.port))
    if not line.general_poll_ok:
        out.append(make_check(
            "general_poll", CheckStatus.FAIL,
            f"no answer at SAS address {line.address}: {line.general_poll_error or 'silence'}",
            "check the address in the machine's SAS menu against machines[].address; the "
            "cable (TX/RX swapped, ground); that the SAS port is enabled on the machine; "
            "19200 baud", address=line.address))
        out.extend(make_check(cid, CheckStatus.SKIP, _SKIP_LINE) for cid in ids[2:5])
    else:
        out.append(make_check("general_poll", CheckStatus.OK,
                          f"the machine at SAS address {line.address} answers",
                          address=line.address))
        out.append(_sas_version_check(line))
        out.append(_machine_info_check(line))
        out.append(_meters_check(line))
    out.append(_ignored_check(line))
    out.append(_link_check(line))
    return out


def _port_hint(port: str, error: str) -> str:
    """Where to look, by the cause the error names (refused, gone, permission, busy) before
    anything about cabling: the technician fixes what failed, not what might."""
    lowered = error.lower()
    if "refused" in lowered or "errno 111" in lowered:
        return (f"the connection to {port} was refused: nothing listens there (is the serial "
                "server / terminal server up, the port number in serial.port right?)")
    if "no route" in lowered or "unreachable" in lowered or "timed out" in lowered:
        return (f"{port} is not reachable on the network: the serial server's address, its "
                "power and the network between")
    if any(gone in lowered for gone in ("no such file", "errno 2]", "no such device",
                                        "errno 19", "errno 5]", "input/output error",
                                        "disconnected", "returned no data")):
        return (f"the device {port} is gone (unplugged USB adapter?): ls -l /dev/serial/by-id/; "
                "prefer a by-id path in serial.port; the daemon reopens it when it is back")
    if "control" in lowered or "daemon" in lowered:
        return ("the running daemon owns the serial line, so diag did not open it: check the "
                "daemon (systemctl status slot-agent; journalctl -u slot-agent); members of "
                "the slot-agent group may use its control socket; --direct only with the "
                "daemon stopped")
    if "permission" in lowered or "errno 13" in lowered:
        return (f"the user may not open {port}: add it to the dialout group "
                "(sudo usermod -aG dialout <user>, then log in again); under systemd check "
                "SupplementaryGroups=dialout and the DeviceAllow= group of the adapter")
    if "busy" in lowered or "resource temporarily" in lowered or "lock" in lowered:
        return f"another program holds {port}: fuser {port}; is slot-agent already running?"
    if port.startswith("tcp://"):
        return "nothing listens at that address: is the serial server / emulator running?"
    return ("the device does not exist: ls -l /dev/serial/by-id/; prefer a by-id path in "
            "serial.port; after plugging an adapter, restart the service")


def _sas_version_check(line: LineFacts) -> Check:
    if line.sas_version is None:
        status = "ignored" if "LP 54" in line.ignored_polls else line.failed_polls.get(
            "LP 54", "no reply")
        return make_check("sas_version", CheckStatus.FAIL, f"LP 54 not answered ({status})",
                      "a machine that answers general polls but not long polls: host control "
                      "may be disabled in the machine's SAS settings")
    return make_check("sas_version", CheckStatus.OK,
                  f"SAS {line.sas_version[:1]}.{line.sas_version[1:]}, serial number "
                  f"{line.serial_number or '(none)'}",
                  sasVersion=line.sas_version, serialNumber=line.serial_number)


def _machine_info_check(line: LineFacts) -> Check:
    info = line.machine_info
    if info is None:
        return make_check("machine_info", CheckStatus.FAIL, "LP 1F not answered",
                      "host control may be disabled in the machine's SAS settings")
    cents = info.get("denominationCents")
    code = info.get("denominationCode")
    detail = (f"game {info.get('gameId')}, paytable {info.get('paytableId')}, denomination"
              + ("" if code is None else f" code {code:02X}"))
    if not cents:
        return make_check("machine_info", CheckStatus.WARN, f"{detail} (no money value)",
                      "set the accounting denomination on the machine; money events wait "
                      "for it", **info)
    return make_check("machine_info", CheckStatus.OK, f"{detail} = {cents} ¢ per credit",
                  **info)


def _marked_sources(sources: Mapping[str, str], unverified: list[str]) -> dict[str, str]:
    """``sources`` (agent.line.discovery ``money_sources``) with each poll of ``unverified``
    marked ``(not verified)``: a poll diag did not send (``not_probed``), or the daemon has
    not asked yet (:func:`_not_asked`), is assumed answered, as the agent will try it."""
    marked = dict(sources)
    for poll in unverified:
        for money, source in marked.items():
            marked[money] = _mark_unverified(source, poll)
    return marked


def _mark_unverified(source: str, poll: str) -> str:
    """``source`` with ``poll`` marked: ``LP 3D records (not verified)``, ``billsAccepted
    (LP 46, not verified)``, ``+ LP 48 (not verified)``."""
    source = source.replace(f"{poll} records", f"{poll} records (not verified)")
    source = source.replace(f"({poll})", f"({poll}, not verified)")
    return re.sub(rf"\+ {poll}(?= \+|$)", f"+ {poll} (not verified)", source)


#: Polls ``moneyPolls`` reports but the check never warns about: LP 1B is read only after
#: a handpay (exception 51), and ``--direct`` does not send it either.
_UNWARNED_POLLS = frozenset({"LP 1B"})


def _not_asked(line: LineFacts, sources: Mapping[str, str]) -> list[str]:
    """The polls the money ``sources`` rely on that the daemon has not sent yet (its
    ``moneyPolls``; empty from ``--direct``, whose polls not sent are ``not_probed``)."""
    named = " ".join(sources.values())
    return [poll for poll, state in (line.money_polls or {}).items()
            if state == NOT_ASKED and poll not in _UNWARNED_POLLS
            and re.search(rf"\b{poll}\b", named)]


#: Why a poll diag left to the agent matters, by poll.
_NOT_PROBED_HINTS = {
    "LP 3D": "diag does not read LP 3D while a ticket record waits (on a machine without LP "
             "4D that read takes the record, reference §3.9b): whether tickets can be valued "
             "shows once the agent has read it (ticketPrinted with source \"LP 3D\"; "
             "LP 3D in the ignored long polls if not); run diag again with the agent running",
}

#: When the running agent sends a poll it has not sent yet, by poll (others: with the
#: meters, at the discovery after a link-up).
_NOT_ASKED_WHEN = {
    "LP 4D": "at each link-up and after each cash-out ticket",
    "LP 3D": "at each link-up and after each cash-out ticket, where LP 4D is ignored",
    "LP 48": "after a bill, on a machine without bill meters",
}


def _not_asked_hint(poll: str) -> str:
    when = _NOT_ASKED_WHEN.get(poll, "with the meters, at the discovery after a link-up")
    return (f"the agent has not sent {poll} yet (it does {when}), so whether the machine "
            f"answers it is not verified yet; run diag again once it has")


def _meters_check(line: LineFacts) -> Check:
    wanted = [meter_name(code) for code in MAIN_METERS]
    missing = [name for name in wanted if name not in line.meters]
    shown = ", ".join(f"{k} {v}" for k, v in line.meters.items())
    credits = "unknown" if line.credits is None else str(line.credits)
    plain = money_sources(ignored_commands(line.ignored_polls))
    not_asked = _not_asked(line, plain)
    sources = _marked_sources(plain, [*line.not_probed, *not_asked])
    money = "; ".join(f"{k}: {v}" for k, v in sources.items())
    detail = f"credits {credits}; {shown or 'no meters read'}; money from: {money}"
    detail += "".join(f"; {poll} not read: {why}" for poll, why in line.not_probed.items())
    detail += "".join(f"; {poll} not verified yet: the agent has not sent it"
                      for poll in not_asked)
    data: dict[str, Any] = {"credits": line.credits, "meters": line.meters,
                            "moneySources": sources, "notProbed": dict(line.not_probed),
                            "moneyPolls": None if line.money_polls is None
                            else dict(line.money_polls)}
    unverified = [_NOT_PROBED_HINTS.get(poll, f"{poll} was not read: {why}")
                  for poll, why in line.not_probed.items()]
    unverified += [_not_asked_hint(poll) for poll in not_asked]
    if len(missing) == len(wanted):
        return make_check("meters", CheckStatus.FAIL, detail,
                      "; ".join(["no main meter is readable: money cannot be tracked; see "
                                 "the ignored long polls", *unverified]), **data)
    if missing or line.credits is None:
        what = ", ".join(missing) if missing else "current credits (LP 1A)"
        return make_check("meters", CheckStatus.WARN, f"{detail}; missing {what}",
                      "; ".join(["the machine ignores these meter polls; see the ignored "
                                 "long polls", *unverified]), **data)
    if unverified:
        return make_check("meters", CheckStatus.WARN, detail, "; ".join(unverified), **data)
    return make_check("meters", CheckStatus.OK, detail, **data)


def _ignored_check(line: LineFacts) -> Check:
    if not line.general_poll_ok:
        return make_check("ignored_polls", CheckStatus.SKIP, _SKIP_LINE)
    if not line.ignored_polls:
        return make_check("ignored_polls", CheckStatus.OK, "none", ignored=[])
    return make_check("ignored_polls", CheckStatus.WARN, ", ".join(line.ignored_polls),
                  "expected for older SAS versions; a long list on a recent machine means a "
                  "vendor quirk flag may be needed", ignored=line.ignored_polls)


def _link_check(line: LineFacts) -> Check:
    c = line.counters
    errors = {k: int(c.get(k, 0)) for k in ("timeout", "crc", "framing", "nack", "busy",
                                            "badFrames", "late") if c.get(k)}
    frames = [f"{f.get('dir', '?')} {f.get('hex', '')}" for f in line.last_frames]
    detail = (f"{c.get('polls', 0)} polls, "
              + (", ".join(f"{k} {v}" for k, v in errors.items()) or "no errors"))
    data: dict[str, Any] = {"counters": dict(c), "lastFrames": list(line.last_frames)}
    if line.general_poll_ok and errors.get("late"):
        return make_check("link_errors", CheckStatus.WARN, detail,
                      "the machine answers after the reply window: raise "
                      "poll.reply_timeout_ms (bad frames may be late answers too; the agent "
                      "widens a late machine's window itself, up to 250 ms, and logs it)",
                      **data)
    if line.general_poll_ok and (errors.get("crc") or errors.get("badFrames")):
        return make_check("link_errors", CheckStatus.WARN, detail,
                      "CRC errors or bad frames: cabling, ground, a second host on the line, "
                      "parity handling of the USB adapter", **data)
    if not line.general_poll_ok:
        return make_check("link_errors", CheckStatus.FAIL, detail + (
            "; last frames: " + " | ".join(frames[-4:]) if frames else ""),
            "timeouts: the SAS address or the cable; rx frames that never come mean the "
            "machine does not hear the host", **data)
    return make_check("link_errors", CheckStatus.OK, detail, **data)


def _priority_check(line: LineFacts | None, source: str) -> Check:
    """Whether the line process got the scheduling ``poll.line_priority`` asks: a fallback
    (the unit refused it) is a warning, since polls then wait behind a busy CPU
    (docs/operations.md, "Line process priority")."""
    if line is None or line.priority is None:
        why = ("diag --direct polls from its own process, not the line process"
               if source == "direct" else "the daemon did not report it")
        return make_check("line_priority", CheckStatus.SKIP, why)
    asked, got = line.priority.get("asked", ""), line.priority.get("got", "")
    detail = f"asked {asked}, got {got}: {line.priority.get('detail', '')}"
    if asked == got:
        return make_check("line_priority", CheckStatus.OK, detail, asked=asked, got=got)
    return make_check(
        "line_priority", CheckStatus.WARN, detail,
        "the unit does not allow what poll.line_priority asks: for realtime add the drop-in "
        f"of docs/operations.md (LimitRTPRIO={RT_PRIORITY}, RestrictRealtime=no, "
        "SystemCallFilter=sched_setscheduler); for nice keep "
        f"LimitNICE=-{NICE_AHEAD} and setpriority in the shipped unit; then systemctl restart "
        "slot-agent", asked=asked, got=got)


def _outbox_check(outbox: Mapping[str, Any] | None) -> Check:
    if outbox is None:
        return make_check("outbox", CheckStatus.SKIP, "outbox not checked")
    if not outbox.get("exists", False):
        return make_check("outbox", CheckStatus.WARN, f"no outbox at {outbox.get('path')}",
                      "the daemon creates it at its first start; check outbox.path and that "
                      "the state directory exists", **outbox)
    if outbox.get("error") or outbox.get("quickCheck") not in (None, "ok"):
        return make_check("outbox", CheckStatus.FAIL,
                      f"{outbox.get('path')}: {outbox.get('error') or outbox.get('quickCheck')}",
                      "the file is damaged: the daemon moves it aside at start and raises an "
                      "outboxFault alert; keep the moved file for the audit", **outbox)
    if outbox.get("ownerMismatch"):
        return make_check("outbox", CheckStatus.FAIL,
                      f"{outbox.get('path')} belongs to terminal {outbox.get('terminalId')!r}, "
                      f"not {outbox.get('expectedTerminalId')!r}: slot-agent run refuses to start",
                      "terminal_id must be the one this outbox was created for; a PC moved to "
                      "another machine needs a new outbox.path (keep the old file until "
                      "'slot-agent outbox status' shows nothing waiting)", **outbox)
    age = outbox.get("oldestUnackedAgeS")
    detail = (f"{outbox.get('depth', 0)} events waiting, oldest "
              + ("none" if age is None else f"{age:.0f} s old")
              + f", quick_check {outbox.get('quickCheck')}")
    if outbox.get("recoveredFrom"):
        return make_check("outbox", CheckStatus.WARN,
                      f"{detail}; recovered from {outbox['recoveredFrom']}",
                      "the previous file was damaged and moved aside (outboxFault alert)",
                      **outbox)
    if age is not None and age > 600:
        return make_check("outbox", CheckStatus.WARN, detail,
                      "events wait more than 10 minutes: is the uplink connected and the hub "
                      "acknowledging? (hub logs)", **outbox)
    return make_check("outbox", CheckStatus.OK, detail, **outbox)


_DAEMON_CHECKS: dict[str, tuple[CheckStatus, str | None]] = {
    "running": (CheckStatus.OK, None),
    "stopped": (CheckStatus.WARN,
                "the service is not running: systemctl status slot-agent; journalctl -u "
                "slot-agent -n 50 says why it stopped; systemctl start slot-agent"),
    "stale": (CheckStatus.WARN,
              "the daemon died without removing its control socket: journalctl -u slot-agent "
              "-n 50 for the reason; systemd restarts it (Restart=on-failure) unless it keeps "
              "failing"),
    "hung": (CheckStatus.FAIL,
             "the daemon is running but stuck: journalctl -u slot-agent -n 100, then "
             "systemctl restart slot-agent (the outbox keeps every event)"),
    "unreachable": (CheckStatus.FAIL,
                    "diag may not use the control socket: run it as root or as a member of the "
                    "slot-agent group"),
    "error": (CheckStatus.FAIL, "the daemon answered with an error: journalctl -u slot-agent"),
}


def daemon_state(error: BaseException | None, *, socket_path: str | None,
                 timeout: float) -> dict[str, Any]:
    """The daemon's state from how ``control_request`` ended (None: it answered)."""
    from agent.ops.control import ControlRequestError, ControlUnavailableError

    if socket_path is None:
        return {"state": "not asked", "detail": "control_socket is not set"}
    if error is None:
        return {"state": "running", "detail": f"answered on {socket_path}"}
    if isinstance(error, ControlUnavailableError):
        state = {"missing": "stopped", "stale": "stale", "permission": "unreachable",
                 "closed": "hung"}.get(error.reason, "stopped")
        detail = {"stopped": f"not running: no control socket at {socket_path}",
                  "stale": f"not running: {socket_path} is a stale socket nobody serves",
                  "unreachable": f"cannot ask: {error}",
                  "hung": f"running but {error}"}[state]
        return {"state": state, "detail": detail}
    if isinstance(error, TimeoutError):
        return {"state": "hung",
                "detail": f"running but no answer on {socket_path} within {timeout:g} s"}
    if isinstance(error, ControlRequestError):
        return {"state": "error", "detail": f"answered with an error: {error}"}
    return {"state": "error", "detail": str(error)}


def _daemon_check(daemon: Mapping[str, Any] | None) -> Check:
    if daemon is None or daemon.get("state") not in _DAEMON_CHECKS:
        detail = "not asked" if daemon is None else str(daemon.get("detail"))
        return make_check("daemon", CheckStatus.SKIP, detail)
    status, hint = _DAEMON_CHECKS[str(daemon["state"])]
    return make_check("daemon", status, str(daemon.get("detail", "")), hint,
                  state=daemon["state"])
