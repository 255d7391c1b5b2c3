"""Coverage-guided fuzzing of the WebSocket API parser and the action signature check.

Not part of the test suite (CI runs the hypothesis and seeded fuzz tests in
tests/reliability). For long runs::

    .venv/bin/pip install atheris          # not a project dependency
    .venv/bin/python bench/fuzz/fuzz_wire.py -max_total_time=3600 corpus-wire/

``parse_message`` must return a message or raise ``WireError``; a parsed ``action`` must
get through ``verify_action`` with nothing but ``WireError``. Anything else is a crash.
"""

from __future__ import annotations

import contextlib
import sys

import atheris  # type: ignore[import-not-found]

with atheris.instrument_imports():
    from agent import wire

ACCEPTS = [wire.TERMINAL_TO_HUB, wire.CLIENT_TO_HUB, wire.HUB_TO_TERMINAL, wire.HUB_TO_CLIENT,
           None]
KEY = b"k" * 32


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    accept = ACCEPTS[fdp.ConsumeIntInRange(0, len(ACCEPTS) - 1)]
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
    try:
        msg = wire.parse_message(text, max_bytes=64 * 1024, accept=accept)
    except wire.WireError:
        return
    wire.encode(msg)
    if msg["type"] == "action":
        with contextlib.suppress(wire.WireError):
            wire.verify_action(KEY, msg, 1_778_497_800.0)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
