"""Helpers for the full-loop dashboard test: the daemon's view of the machine through its
control socket (Chromium's settings: tests.support.browser).

The machine facts come from the running ``slot-agent run`` itself (control ``diag`` makes it
read the meters from the machine on its own serial line, control ``status`` reports its poll
cycles), so the test observes the machine without opening the line a second time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.ops.control import control_request


class DaemonView:
    """Read-only questions to a running agent over its control socket."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    def _only_line(self) -> dict[str, Any]:
        lines = control_request(self.socket_path, "diag", timeout=10)["lines"]
        assert len(lines) == 1, lines
        line: dict[str, Any] = lines[0]
        return line

    def games_played(self) -> int:
        """The machine's games-played meter (SAS meter 05), read from the machine just now."""
        line = self._only_line()
        assert line["linkUp"], f"machine link down: {line}"
        meters: dict[str, int] = line["meters"]
        assert "gamesPlayed" in meters, f"games played not read: {line}"
        return int(meters["gamesPlayed"])

    def poll_cycles(self) -> int:
        """Poll cycles the daemon's line owner has completed."""
        status = control_request(self.socket_path, "status", timeout=10)
        line = status["line"]
        assert line is not None and line["running"], status
        return int(line["cycles"])
