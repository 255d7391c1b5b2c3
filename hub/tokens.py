"""The token file: token -> role (+ terminalId or name). docs/protocol.md §11.

Tokens are kept only as SHA-256 digests in memory and are never logged; logs name the
principal instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from api.wire import HUB_SOURCE, Role, valid_terminal_id


class TokenFileError(Exception):
    """The token file is unusable; ``problems`` names each bad entry."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a token belongs to. ``name`` is the terminalId for terminals."""

    role: Role
    name: str
    terminal_id: str | None = None
    bank: str | None = None  # terminal tokens: where the machine stands (optional)
    area: str | None = None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenTable:
    def __init__(self, entries: Iterable[tuple[str, Principal]]) -> None:
        self._by_digest: dict[bytes, Principal] = {}
        for token, principal in entries:
            self._by_digest[_digest(token)] = principal

    def lookup(self, token: str | None) -> Principal | None:
        if not token:
            return None
        return self._by_digest.get(_digest(token))

    def terminals(self) -> list[str]:
        """Every terminalId a token is bound to, sorted."""
        return sorted({p.terminal_id for p in self._by_digest.values() if p.terminal_id})

    def registry(self) -> dict[str, dict[str, str]]:
        """``bank`` / ``area`` of the terminals whose token entry gives them."""
        out: dict[str, dict[str, str]] = {}
        for p in self._by_digest.values():
            if p.terminal_id:
                info = {k: v for k, v in (("bank", p.bank), ("area", p.area)) if v}
                if info:
                    out.setdefault(p.terminal_id, {}).update(info)
        return out


def _principal(role_text: Any, ident: Any, where: str, counts: dict[Role, int],
               problems: list[str]) -> Principal | None:
    try:
        role = Role(role_text)
    except ValueError:
        problems.append(f"{where}: role must be terminal, viewer or operator")
        return None
    if ident is not None and (not isinstance(ident, str) or not ident.strip()):
        problems.append(f"{where}: name/terminalId must be a non-empty string")
        return None
    if role is Role.TERMINAL:
        if ident is None:
            problems.append(f"{where}: a terminal token needs a terminalId")
            return None
        if not valid_terminal_id(ident):
            problems.append(f"{where}: terminalId {ident[:40]!r} is not a valid terminal id")
            return None
        if ident == HUB_SOURCE:
            problems.append(f"{where}: terminalId {HUB_SOURCE!r} is reserved for the hub")
            return None
        return Principal(role, ident, ident)
    counts[role] = counts.get(role, 0) + 1
    return Principal(role, ident or f"{role.value}-{counts[role]}")


def parse_tokens(text: str) -> TokenTable:
    """YAML (``tokens:`` list of mappings) or simple lines ``<token> <role> [id]``."""
    problems: list[str] = []
    entries: list[tuple[str, Principal]] = []
    counts: dict[Role, int] = {}
    seen: set[str] = set()
    raw: Any = None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        raw = None
    if isinstance(raw, dict) and "tokens" in raw:
        items = raw["tokens"]
        if not isinstance(items, list):
            raise TokenFileError(["tokens: must be a list"])
        for i, item in enumerate(items):
            where = f"tokens[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("token"), str) \
                    or not item["token"]:
                problems.append(f"{where}: needs a non-empty string 'token'")
                continue
            ident = item.get("terminalId") if item.get("role") == "terminal" else item.get("name")
            principal = _principal(item.get("role"), ident, where, counts, problems)
            if principal is not None and principal.terminal_id is not None:
                places = {}
                for place in ("bank", "area"):
                    value = item.get(place)
                    if value is None:
                        continue
                    if not isinstance(value, str | int) or isinstance(value, bool) \
                            or not str(value).strip() or len(str(value)) > 64:
                        problems.append(f"{where}.{place}: must be a short name")
                    else:
                        places[place] = str(value).strip()
                principal = Principal(principal.role, principal.name, principal.terminal_id,
                                      **places)
            if principal is not None:
                if item["token"] in seen:
                    problems.append(f"{where}: the same token appears twice")
                seen.add(item["token"])
                entries.append((item["token"], principal))
    else:
        for lineno, line in enumerate(text.splitlines(), 1):
            stripped = line.split("#", 1)[0].strip()
            if not stripped:
                continue
            parts = stripped.split()
            where = f"line {lineno}"
            if len(parts) not in (2, 3):
                problems.append(f"{where}: expected '<token> <role> [terminalId or name]'")
                continue
            principal = _principal(parts[1], parts[2] if len(parts) == 3 else None, where,
                                   counts, problems)
            if principal is not None:
                if parts[0] in seen:
                    problems.append(f"{where}: the same token appears twice")
                seen.add(parts[0])
                entries.append((parts[0], principal))
    if problems:
        raise TokenFileError(problems)
    return TokenTable(entries)


def load_tokens(path: Path) -> TokenTable:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenFileError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse_tokens(text)
