"""How a configuration check reports, the agent's (``check-config``) and the hub's (``hub
--check-config``) alike: every problem at once, each with its key path; warnings beside the
errors. Imports nothing of the agent or the hub, so each command loads only its own side."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from configkit import Problem

#: Exit code for an invalid configuration (argparse uses 2 for bad usage, by the same logic).
EXIT_INVALID_CONFIG = 2


def report_check(path: str, problems: Sequence[Problem]) -> int:
    """Print the outcome of checking ``path``: ``OK: PATH`` on stdout (0) after any warnings
    on stderr, or ``PATH: N error(s)`` and every problem on stderr
    (:data:`EXIT_INVALID_CONFIG`)."""
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    if errors:
        print(f"{path}: {len(errors)} error(s)", file=sys.stderr)
        for problem in errors:
            print(f"  error: {problem}", file=sys.stderr)
        for problem in warnings:
            print(f"  warning: {problem}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    for problem in warnings:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"OK: {path}")
    return 0
