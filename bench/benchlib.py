"""Shared helpers of the benchmarks: repeated runs, medians, percentiles, a result table.

The machine a benchmark runs on is usually shared and noisy, so every script measures its
baseline in the same run, repeats each measurement and reports the median, and judges itself
by ratios rather than absolute times.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

_T = TypeVar("_T")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def repeat(runs: int, measure: Callable[[int], float], label: str) -> list[float]:
    """Call ``measure(run_index)`` ``runs`` times; print each figure as it comes."""
    figures = []
    for i in range(runs):
        value = measure(i)
        figures.append(value)
        print(f"  {label} run {i + 1}/{runs}: {value:,.1f}", flush=True)
    return figures


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, as ``uptime`` shows them ("n/a" where the
    platform has none): every figure is printed beside it, since on a shared machine the
    figures move with it."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def header(title: str) -> None:
    """Title, date, machine and load, so a pasted result says where it came from."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpus = os.cpu_count() or 0
    print(f"# {title}")
    print(f"# {now}; {platform.machine()} {cpus} cores; Python {platform.python_version()}; "
          f"{platform.system()} {platform.release()}; load average {load_average()}",
          flush=True)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One target: ``value`` compared with ``limit`` (``at_least`` or at most)."""

    name: str
    value: float
    limit: float
    at_least: bool

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def line(self) -> str:
        op = ">=" if self.at_least else "<="
        mark = "MET" if self.met else "MISSED"
        return f"  {mark:6} {self.name}: {self.value:,.3g} (target {op} {self.limit:,.3g})"


def verdicts(items: Sequence[Verdict]) -> int:
    """Print every target's verdict and the load average at the end of the run; exit code 0
    when all are met, 1 otherwise."""
    now = datetime.now(UTC).strftime("%H:%M UTC")
    print(f"targets (judged at {now}, load average {load_average()}; a shared machine's "
          "load moves every figure):")
    for v in items:
        print(v.line())
    return 0 if all(v.met for v in items) else 1


class HelpDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` gives each option's default where it has one (not for a flag, a file
    that is not written unless named, or a help text that says its default itself)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)

    def _format_action(self, action: argparse.Action) -> str:
        if (action.help is None and action.option_strings
                and action.default not in (None, False, argparse.SUPPRESS)):
            action = copy.copy(action)  # an option without a help text: its default
            action.help = "default: %(default)s"
        return super()._format_action(action)


def exit_with(code: int) -> None:
    sys.stdout.flush()
    raise SystemExit(code)


def run_in_workdir(prefix: str, main: Callable[[Path], Coroutine[Any, Any, _T]]) -> _T:
    """``asyncio.run(main(workdir))`` in a fresh directory under /tmp, removed afterwards
    (the hub's and the agent's files: databases, tokens, configuration)."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        return asyncio.run(main(workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def beside_python(name: str, *, on_path: bool = False) -> str:
    """The console script ``name`` of the environment running this benchmark, beside
    ``sys.executable`` (a venv's ``bin/``, a system prefix, a pipx environment): a benchmark
    runs from whichever environment has the package installed, never from a path of this
    checkout. ``on_path``: a tool (py-spy) may also come from ``PATH``. Exits with a clear
    message when it is not found."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name) if on_path else None
    if found is not None:
        return found
    raise SystemExit(f"no {name} executable beside {sys.executable}"
                     + (" or on PATH" if on_path else "")
                     + ": install it into this environment (pip install -e . for slot-agent,"
                     " pip install py-spy) or run the benchmark with the Python of the"
                     " environment that has it")
