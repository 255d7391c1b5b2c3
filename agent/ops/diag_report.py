"""``slot-agent diag``'s report: its rows, their order and titles, and the human table.

A :class:`Report` is a tuple of :class:`Check` rows, one for every entry of
:data:`CHECK_IDS` in that order (the JSON form always has all of them); :func:`render_table`
prints it for a person, :meth:`Report.to_json` for a program. The rules that judge the facts
and make the rows are :mod:`agent.ops.diagnostics`'s.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent import __version__

__all__ = ["CHECK_IDS", "Check", "CheckStatus", "Report", "make_check", "render_table"]


class CheckStatus(enum.StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but worth a look; does not fail the run
    FAIL = "fail"
    SKIP = "skip"  # not run: not configured, or an earlier step failed


@dataclass(frozen=True, slots=True)
class Check:
    """One row of the report. ``hint`` says where to look when the status is not ok."""

    id: str
    title: str
    status: CheckStatus
    detail: str
    hint: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": self.status.value,
                "detail": self.detail, "hint": self.hint, "data": dict(self.data)}


#: Every check, in report order (the JSON report always has all of them).
CHECK_IDS: tuple[tuple[str, str], ...] = (
    ("serial_port", "serial port opens"),
    ("general_poll", "general poll answered"),
    ("sas_version", "SAS version and serial number (LP 54)"),
    ("machine_info", "machine info and denomination (LP 1F)"),
    ("meters", "credits and main meters"),
    ("ignored_polls", "long polls the machine ignores"),
    ("link_errors", "link errors and last frames"),
    ("line_priority", "line process scheduling (poll.line_priority)"),
    ("outbox", "outbox depth, oldest unacknowledged, health"),
    ("uplink_dns", "uplink: DNS"),
    ("uplink_tcp", "uplink: TCP connect"),
    ("uplink_tls", "uplink: TLS certificate"),
    ("uplink_auth", "uplink: authentication"),
    ("uplink_urls", "uplink: every hub URL (failover)"),
    ("clock_skew", "clock skew against the hub"),
    ("daemon", "agent daemon"),
)
_TITLES = dict(CHECK_IDS)


@dataclass(frozen=True, slots=True)
class Report:
    """The checks, where the line facts came from (``daemon`` or ``direct``) and when."""

    checks: tuple[Check, ...]
    source: str
    terminal_id: str
    generated_at: float

    @property
    def ok(self) -> bool:
        return not any(c.status is CheckStatus.FAIL for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def check(self, check_id: str) -> Check:
        for c in self.checks:
            if c.id == check_id:
                return c
        raise KeyError(check_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": self.source,
            "terminalId": self.terminal_id,
            "version": __version__,
            "generatedAt": self.generated_at,
            "checks": [c.to_json() for c in self.checks],
        }


def make_check(check_id: str, status: CheckStatus, detail: str, hint: str | None = None,
               **data: Any) -> Check:
    """A row with its title from :data:`CHECK_IDS`; the hint only when it is not ok."""
    return Check(check_id, _TITLES[check_id], status, detail,
                 hint if status is not CheckStatus.OK else None, data)




_MARK = {CheckStatus.OK: "ok", CheckStatus.WARN: "WARN", CheckStatus.FAIL: "FAIL",
         CheckStatus.SKIP: "skip"}


def render_table(report: Report) -> str:
    """The human form: one line per check, the hint indented under it."""
    width = max(len(c.title) for c in report.checks)
    where = ("asked the running daemon over its control socket" if report.source == "daemon"
             else "polled the machine directly (no daemon running)")
    lines = [f"slot-agent diag for {report.terminal_id or '(no terminal id)'}: {where}", ""]
    for c in report.checks:
        lines.append(f"{_MARK[c.status]:<4}  {c.title:<{width}}  {c.detail}")
        if c.hint:
            lines.append(f"{'':<4}  {'':<{width}}  hint: {c.hint}")
    failed = sum(1 for c in report.checks if c.status is CheckStatus.FAIL)
    warned = sum(1 for c in report.checks if c.status is CheckStatus.WARN)
    lines.append("")
    lines.append("all checks passed" if report.ok and not warned else
                 f"{failed} failed, {warned} warnings")
    return "\n".join(lines)
