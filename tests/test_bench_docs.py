"""The benchmarks are what the docs say they are: every script under bench/ answers ``--help``
from another working directory, every option a doc shows for a bench script is one the
script accepts, and docs/performance.md's table lists every benchmark there is.

Nothing is measured here (the benchmarks are not tests; docs/performance.md): a renamed or
removed option, or a script that no longer starts, fails here instead of in a reader's shell.
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache

import pytest

from tests.support import ROOT

BENCH = ROOT / "bench"
#: Modules the benchmarks share, and the door benchmark's helpers (docs/performance.md,
#: below the table): not benchmarks of their own.
HELPERS = {"benchlib", "procs", "rawws", "door_machine", "perf_tty"}
#: Scripts that answer --help (the libraries have no command line).
COMMANDS = sorted(p.stem for p in BENCH.glob("*.py") if p.stem not in {"benchlib", "procs",
                                                                           "rawws"})
#: The docs that show bench command lines.
DOCS = ("README.md", "docs/performance.md", "docs/reliability.md", "docs/scaling.md",
        "docs/architecture.md", "docs/operations.md", "docs/sas.md")
#: A bench script named in backticks, with what follows it up to the closing backtick.
COMMAND = re.compile(r"`(?:[^`]*\s)?bench/(\w+)\.py((?:[^`])*)`")
#: An option as a doc writes it: ``--name``.
OPTION = re.compile(r"(?<![\w-])(--[a-z][\w-]*)")
NUMBERS = {"fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18}


@cache
def help_text(script: str) -> subprocess.CompletedProcess[str]:
    """``--help`` of a bench script, run from the root directory (not the checkout: the
    scripts work from any working directory, docs/performance.md)."""
    return subprocess.run([sys.executable, str(BENCH / f"{script}.py"), "--help"], cwd="/",
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("script", COMMANDS)
def test_every_bench_script_answers_help_from_another_directory(script: str) -> None:
    done = help_text(script)
    if script == "wire_decode" and "pip install msgspec" in done.stderr:
        return  # msgspec is no dependency of the project: the script says what it needs
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {script}.py"), done.stdout


def documented_options() -> list[tuple[str, int, str, str]]:
    """(doc, line, script, option) for each option shown beside a bench script."""
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        for match in COMMAND.finditer(text):
            script, rest = match.group(1), match.group(2)
            if script not in COMMANDS:
                continue
            line = text.count("\n", 0, match.start()) + 1
            found += [(doc, line, script, option) for option in OPTION.findall(rest)]
    return found


def test_every_documented_bench_option_is_accepted() -> None:
    options = documented_options()
    assert len(options) > 40, "the docs' bench commands were not found"
    wrong = []
    for doc, line, script, option in options:
        done = help_text(script)
        if done.returncode != 0:
            continue  # a script that needs an extra (msgspec): its --help is not there
        if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", done.stdout):
            wrong.append(f"{doc}:{line}: bench/{script}.py has no {option}")
    assert not wrong, "\n".join(wrong)


def test_the_performance_table_lists_every_benchmark() -> None:
    text = (ROOT / "docs" / "performance.md").read_text()
    table = re.findall(r"^\| [^|]+ \| `python bench/(\w+)\.py", text, re.M)
    benchmarks = sorted(p.stem for p in BENCH.glob("*.py") if p.stem not in HELPERS)
    assert sorted(table) == benchmarks
    count = re.match(r"# Performance\n\n(\w+) benchmarks under `bench/`", text)
    assert count is not None and NUMBERS[count.group(1).lower()] == len(benchmarks)
