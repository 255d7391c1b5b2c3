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
from configkit import MISSING, ConfigError, Problem, Section


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
               problems: list[Problem]) -> Principal | None:
    def at(key: str) -> str:
        """A YAML entry's problem at its key (``tokens[2].role``); a line's at the line."""
        return f"{where}.{key}" if where.startswith("tokens[") else where

    try:
        role = Role(role_text)
    except ValueError:
        problems.append(Problem(at("role"), "role must be terminal, viewer or operator"))
        return None
    ident_key = "terminalId" if role is Role.TERMINAL else "name"
    if ident is not None and (not isinstance(ident, str) or not ident.strip()):
        problems.append(Problem(at(ident_key), "name/terminalId must be a non-empty string"))
        return None
    if role is Role.TERMINAL:
        if ident is None:
            problems.append(Problem(at(ident_key), "a terminal token needs a terminalId"))
            return None
        if not valid_terminal_id(ident):
            problems.append(Problem(at(ident_key),
                                    f"terminalId {ident[:40]!r} is not a valid terminal id"))
            return None
        if ident == HUB_SOURCE:
            problems.append(Problem(at(ident_key),
                                    f"terminalId {HUB_SOURCE!r} is reserved for the hub"))
            return None
        return Principal(role, ident, ident)
    counts[role] = counts.get(role, 0) + 1
    return Principal(role, ident or f"{role.value}-{counts[role]}")


def parse_tokens(text: str) -> TokenTable:
    """YAML (``tokens:`` list of mappings) or simple lines ``<token> <role> [id]``.

    Raises :class:`configkit.ConfigError` with every problem, each at its place
    (``tokens[2].role``, ``line 7``), as the hub's and the agent's configs do."""
    problems: list[Problem] = []
    entries: list[tuple[str, Principal]] = []
    wheres: list[str] = []  # where each entry stands, for the duplicate check
    counts: dict[Role, int] = {}
    raw: Any = None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        raw = None
    if isinstance(raw, dict) and "tokens" in raw:
        top = Section(raw, "", problems)
        items = top.raw("tokens")
        top.finish()
        if not isinstance(items, list):
            raise ConfigError([Problem("tokens", "must be a list")])
        for i, item in enumerate(items):
            entry = _yaml_entry(Section(item, f"tokens[{i}]", problems), counts)
            if entry is not None:
                entries.append(entry)
                wheres.append(f"tokens[{i}]")
    else:
        for lineno, line in enumerate(text.splitlines(), 1):
            stripped = line.split("#", 1)[0].strip()
            if not stripped:
                continue
            parts = stripped.split()
            where = f"line {lineno}"
            if len(parts) not in (2, 3):
                problems.append(Problem(where, "expected '<token> <role> [terminalId or name]'"))
                continue
            principal = _principal(parts[1], parts[2] if len(parts) == 3 else None, where,
                                   counts, problems)
            if principal is not None:
                entries.append((parts[0], principal))
                wheres.append(where)
    seen: set[str] = set()
    for (token, _), where in zip(entries, wheres, strict=True):
        if token in seen:
            problems.append(Problem(where, "the same token appears twice"))
        seen.add(token)
    if any(p.severity == "error" for p in problems):
        raise ConfigError(problems)
    return TokenTable(entries)


def _yaml_entry(sec: Section, counts: dict[Role, int]) -> tuple[str, Principal] | None:
    """One ``tokens:`` item; None (its problems recorded) when it is unusable."""
    token = sec.string("token", "")
    role = sec.raw("role")
    ident = sec.raw("terminalId") if role == "terminal" else sec.raw("name")
    sec.raw("name" if role == "terminal" else "terminalId")  # known, ignored for that role
    places: dict[str, str] = {}
    for place in ("bank", "area"):
        value = sec.raw(place)
        if value is MISSING or value is None:
            continue
        if not isinstance(value, str | int) or isinstance(value, bool) \
                or not str(value).strip() or len(str(value)) > 64:
            sec.error(place, "must be a short name")
        else:
            places[place] = str(value).strip()
    sec.finish()
    if not token:
        sec.error("token", "needs a non-empty string")
        return None
    principal = _principal(role, None if ident is MISSING else ident, sec.path, counts,
                           sec.problems)
    if principal is None:
        return None
    if principal.terminal_id is not None and places:
        principal = Principal(principal.role, principal.name, principal.terminal_id, **places)
    return token, principal


def token_file_problems(path: Path, problems: list[Problem]) -> list[Problem]:
    """The problems :func:`load_tokens` found in ``path``, under hub.yaml's key that names
    the file (``tokens``), as config problems are named: the file's own places (``line 7``,
    ``tokens[2].role``) after its path; one it could not read, by its message alone."""
    return [Problem("tokens", p.message if p.path == "(file)" else f"{path}: {p}", p.severity)
            for p in problems]


def load_tokens(path: Path) -> TokenTable:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem("(file)", f"cannot read {path}: {exc.strerror}")]) from None
    except UnicodeDecodeError:  # an invalid token file (exit 2), not a traceback
        raise ConfigError([Problem("(file)", f"cannot read {path}: not UTF-8 text")]) from None
    return parse_tokens(text)
