"""An ``--out FILE`` written whole or not at all (``capture --out``, ``outbox export --out``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TextIO


@contextlib.contextmanager
def written_whole(out: str) -> Iterator[TextIO]:
    """``out``, written as ``out.part`` and renamed once the block is done: a write that
    fails (a full disk) or is interrupted (Ctrl-C) leaves no file that looks like a whole
    one, and no ``.part`` either. Errors go on to the caller."""
    part = f"{out}.part"
    try:
        with open(part, "w", encoding="utf-8") as fileobj:
            yield fileobj
        os.replace(part, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(part)
        raise
