"""One way to validate a configuration file, for the agent's config, the hub's and the token
file: every problem at once, each at its key path, unknown keys with a did-you-mean.

A bottom-floor package (docs/architecture.md): the agent and the hub never import each other,
so the mechanism they share lives below both. It knows YAML and mappings, nothing of SAS or
of the WebSocket API. A reader walks a parsed file with one :class:`Section` per mapping,
asking for each key with its type, default and bounds; a wrong value is recorded as a
:class:`Problem` and its default used, so the walk goes on and reports everything; the caller
raises :class:`ConfigError` with all of them when any is an error.

Why not a schema library: the messages are the product here (a technician reads them on a
terminal PC), and the few types the files use fit in this module.

``yaml`` and ``difflib`` are imported where they are used, not at the top: the agent's line
process (agent/line/child.py) unpickles its :class:`agent.config.Config`, so it imports
``agent.config`` and this module, but never reads a file or reports a problem; the two cost it
about 1.5 MB of its memory (docs/performance.md, "Footprint: the line process's imports").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from configkit.files import check_file

__all__ = ["MISSING", "ConfigError", "Problem", "Section", "bounds", "check_file", "load_yaml",
           "show"]

#: What :meth:`Section.raw` returns for a key the file does not have.
MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config file, at a key path (``machines[0].address``)."""

    path: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every error (and warning) found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        lines = "\n".join(f"  {p}" for p in errors)
        super().__init__(f"{len(errors)} configuration problem(s):\n{lines}")

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def show(value: Any) -> str:
    """A value as the file would spell it, for a message."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def bounds(lo: float | None, hi: float | None) -> str:
    """`` from 1 to 10``, `` >= 1``, `` <= 10`` or nothing: the range in a message."""
    if lo is not None and hi is not None:
        return f" from {_num(lo)} to {_num(hi)}"
    if lo is not None:
        return f" >= {_num(lo)}"
    if hi is not None:
        return f" <= {_num(hi)}"
    return ""


class Section:
    """Reads one mapping, recording problems under its key path and the keys it knows."""

    def __init__(self, data: Any, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        self.known: list[str] = []
        if data is None or data is MISSING:
            data = {}
        if not isinstance(data, Mapping):
            self.error("", f"must be a mapping of keys, got {show(data)}")
            data = {}
        self.data: Mapping[str, Any] = data

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, message: str) -> None:
        self.problems.append(Problem(self.key(name) if name else self.path or "(root)", message))

    def warn(self, name: str, message: str) -> None:
        self.problems.append(Problem(self.key(name), message, "warning"))

    def raw(self, name: str) -> Any:
        self.known.append(name)
        return self.data.get(name, MISSING)

    def section(self, name: str) -> Section:
        """The mapping under ``name`` (an empty one when absent)."""
        return Section(self.raw(name), self.key(name), self.problems)

    def integer(self, name: str, default: int, lo: int | None = None,
                hi: int | None = None) -> int:
        value = self.raw(name)
        if value is MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or (
            lo is not None and value < lo) or (hi is not None and value > hi):
            self.error(name, f"must be an integer{bounds(lo, hi)}, got {show(value)}")
            return default
        return value

    def optional_integer(self, name: str, default: int | None = None, lo: int | None = None,
                         hi: int | None = None) -> int | None:
        """:meth:`integer`, where ``null`` in the file means "none" (off)."""
        value = self.data.get(name, MISSING)
        if value is None or value is MISSING:
            self.known.append(name)
            return None if value is None else default
        return self.integer(name, 0 if default is None else default, lo, hi)

    def number(self, name: str, default: float, lo: float | None = None,
               hi: float | None = None) -> float:
        value = self.raw(name)
        if value is MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or (
            lo is not None and value < lo) or (hi is not None and value > hi) or (
            value != value) or value in (float("inf"), float("-inf")):
            self.error(name, f"must be a number{bounds(lo, hi)}, got {show(value)}")
            return default
        return float(value)

    def optional_number(self, name: str, default: float | None, lo: float | None = None,
                        hi: float | None = None) -> float | None:
        """:meth:`number`, where ``null`` in the file means "none" (no limit, never)."""
        value = self.data.get(name, MISSING)
        if value is None or value is MISSING:
            self.known.append(name)
            return None if value is None else default
        return self.number(name, 0.0 if default is None else default, lo, hi)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is MISSING:
            return default
        if not isinstance(value, bool):
            self.error(name, f"must be true or false, got {show(value)}")
            return default
        return value

    def string(self, name: str, default: str) -> str:
        value = self.raw(name)
        if value is MISSING:
            return default
        if not isinstance(value, str) or not value:
            self.error(name, f"must be a non-empty string, got {show(value)}")
            return default
        return value

    def optional_string(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name)
        if value is MISSING:
            return default
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.error(name, f"must be a non-empty string or null, got {show(value)}")
            return default
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        """One of ``choices``, whatever its case in the file (returned as ``choices`` spell
        it)."""
        value = self.raw(name)
        if value is MISSING:
            return default
        by_fold = {c.casefold(): c for c in choices}
        if not isinstance(value, str) or value.casefold() not in by_fold:
            self.error(name, f"must be one of {'|'.join(choices)}, got {show(value)}")
            return default
        return by_fold[value.casefold()]

    def strings(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw(name)
        if value is MISSING:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.error(name, f"must be a list of non-empty strings, got {show(value)}")
            return default
        return tuple(value)

    def file_path(self, name: str, base: Path | None, *,
                  required: bool = False) -> Path | None:
        """A file path; relative ones are relative to ``base`` (the config file's folder)."""
        value = self.optional_string(name)
        if value is None:
            if required:
                self.error(name, "required: a path")
            return None
        path = Path(value)
        return path if path.is_absolute() or base is None else base / path

    def finish(self) -> None:
        """Report keys nobody read: typos, or keys from another version."""
        for name in self.data:
            if name in self.known:
                continue
            if not isinstance(name, str):
                self.error(show(name), "keys must be strings")
                continue
            import difflib  # here, not at the top: see the module's docstring

            close = difflib.get_close_matches(name, self.known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            where = f"in {self.path!r}" if self.path else "at the top level"
            self.error(name, f"unknown key {where}{hint}")


def load_yaml(path: str | Path) -> Any:
    """The parsed YAML of ``path``; :class:`ConfigError` naming the file (and the line and
    column of a syntax error) when it cannot be read or parsed."""
    import yaml  # here, not at the top: see the module's docstring

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem("(file)", f"cannot read {file}: {exc}")]) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem("(file)", f"{file}: {where}invalid YAML: {reason}")]) from exc
