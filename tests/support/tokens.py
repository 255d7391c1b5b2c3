"""The tests' hub tokens: one table for the hub, uplink and reliability tests, one for the
dashboard in a browser, and the files the hub and the agent read them from.

Tests may spell a token as its literal (``"tok-alice"``); the literal is the one defined here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Token:
    """One line of a hub token file (docs/operations.md: tokens)."""

    token: str
    role: str  # terminal, operator or viewer
    name: str  # the terminalId of a terminal token, else the principal's name
    bank: str | None = None
    area: str | None = None

    def yaml(self) -> str:
        who = f"terminalId: {self.name}" if self.role == "terminal" else f"name: {self.name}"
        extra = "".join(f', {key}: "{value}"' for key, value in
                        (("bank", self.bank), ("area", self.area)) if value is not None)
        return f"  - {{token: {self.token}, role: {self.role}, {who}{extra}}}\n"


#: The hub, uplink and reliability tests' table.
HUB_TOKENS: tuple[Token, ...] = (
    Token("tok-t1", "terminal", "T1", bank="B1", area="Main floor"),
    Token("tok-t2", "terminal", "T2", bank="B2", area="High limit"),
    Token("tok-t3", "terminal", "T3"),
    Token("tok-ops", "operator", "ops"),
    Token("tok-alice", "operator", "alice"),
    Token("tok-bob", "operator", "bob"),
    Token("tok-carol", "viewer", "carol"),
    Token("tok-view", "viewer", "view"),
)
TERMINAL_TOKENS = {t.name: t.token for t in HUB_TOKENS if t.role == "terminal"}
OPERATOR = "tok-ops"
VIEWER = "tok-view"

#: The dashboard's table: EGM-1 plays, EGM-2 has a token and never connects (listed offline).
DASHBOARD_TERMINAL, DASHBOARD_SILENT = "EGM-1", "EGM-2"
DASHBOARD_TERMINAL_TOKEN = "tok-egm-1"
DASHBOARD_OPERATOR, DASHBOARD_OPERATOR2 = "tok-op-floor", "tok-op-slot-tech"
DASHBOARD_VIEWER = "tok-view-cctv"
DASHBOARD_TOKENS: tuple[Token, ...] = (
    Token(DASHBOARD_TERMINAL_TOKEN, "terminal", DASHBOARD_TERMINAL, bank="12",
          area="Main floor"),
    Token("tok-egm-2", "terminal", DASHBOARD_SILENT, bank="14", area="High limit"),
    Token(DASHBOARD_OPERATOR, "operator", "floor-supervisor"),
    Token(DASHBOARD_OPERATOR2, "operator", "slot-tech"),
    Token(DASHBOARD_VIEWER, "viewer", "cctv-room"),
)

#: An action-signing key (hub ``action_key_file``; the agent checks with the same bytes).
ACTION_KEY = b"hub-action-key-0123456789abcdef"


def for_terminal(terminal_id: str) -> tuple[Token, ...]:
    """A one-terminal table (hubs the agent process connects to) with the operator token."""
    return (Token(f"tok-{terminal_id.lower()}", "terminal", terminal_id),
            Token(OPERATOR, "operator", "ops"))


def token_of(tokens: Iterable[Token], name: str) -> str:
    """The token of the terminal or principal called ``name``."""
    return next(t.token for t in tokens if t.name == name)


def tokens_yaml(tokens: Iterable[Token]) -> str:
    return "tokens:\n" + "".join(t.yaml() for t in tokens)


def write_token_file(directory: Path, tokens: Iterable[Token] = HUB_TOKENS) -> Path:
    """The hub's token file (mode 0600, as the hub wants it)."""
    path = directory / "hub-tokens.yaml"
    path.write_text(tokens_yaml(tokens), encoding="utf-8")
    path.chmod(0o600)
    return path


def write_agent_token(path: Path, token: str) -> Path:
    """The agent's ``uplink.token_file``: the token alone, mode 0600."""
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path
