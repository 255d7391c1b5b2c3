"""What the tests share: waits, in-process servers, tokens, processes, throwaway databases."""

from pathlib import Path

#: The repository's root (docs/, the console script in .venv/).
ROOT = Path(__file__).resolve().parents[2]
