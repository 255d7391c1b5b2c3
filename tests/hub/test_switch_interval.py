"""The hub process's switch interval (hub/switch_interval.py): its writer thread gets the
interpreter lock back from a busy event loop sooner than CPython's default lets it."""

from __future__ import annotations

import sys

from hub.switch_interval import SWITCH_INTERVAL, tune_switch_interval


def test_the_hub_process_hands_the_lock_over_ten_times_sooner() -> None:
    previous = tune_switch_interval()
    try:
        assert sys.getswitchinterval() == SWITCH_INTERVAL
        assert previous / 10 >= SWITCH_INTERVAL  # CPython's default: 5 ms
    finally:
        sys.setswitchinterval(previous)
