"""The ``--make-corpus DIR`` step shared by the harnesses: write each seed input as a file."""

from __future__ import annotations

from pathlib import Path


def write_seeds(directory: Path, seeds: dict[str, bytes]) -> int:
    """Write ``seeds`` as ``DIR/seed-<name>`` (libFuzzer reads a corpus directory as-is)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (directory / f"seed-{name}").write_bytes(data)
    print(f"wrote {len(seeds)} seed inputs to {directory}")
    return 0
