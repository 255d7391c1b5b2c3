"""What the commands that read the agent's config share: loading it and reporting its
problems (the parser helpers every command uses are in :mod:`cli.commands.options`)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from cli.commands.checks import EXIT_INVALID_CONFIG

if TYPE_CHECKING:
    from agent.config import Config

__all__ = ["EXIT_INVALID_CONFIG", "load_config_or_report"]


def load_config_or_report(path: str) -> Config | None:
    """The configuration at ``path``, or None after printing every problem with its key."""
    from agent.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"{path}: invalid configuration", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem.severity}: {problem}", file=sys.stderr)
        return None
