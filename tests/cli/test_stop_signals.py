"""``cli.stop_signals.StopSignals``: a stop signal landing anywhere in the main thread's wait
is seen, never deadlocks, and ends the wait at once.

``slot-agent emulate`` used to set a ``threading.Event`` from its handler while the main
thread waited on that event; a signal landing while ``Event.wait`` held the event's lock
deadlocked the process (the flaky pty test of tests/emulator/test_emulate_cli.py). The sweep
below lands a real SIGINT on every bytecode of ``StopSignals.wait`` in turn; run against the
old pattern it hangs on the first position inside the lock, and the subprocess's bound turns
that into a failure instead of a hung test run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from cli.stop_signals import StopSignals
from tests.support import ROOT
from tests.support.processes import clean_env

_SWEEP = textwrap.dedent("""
    import signal, sys, threading
    from cli.stop_signals import StopSignals

    def traced_wait(stops, fire_at):
        '''stops.wait(0) with a SIGINT raised at its fire_at-th bytecode (None: never);
        (what it returned, the bytecodes counted).'''
        count = 0
        fired = False

        def tracer(frame, event, arg):
            nonlocal count, fired
            if fired:
                return None  # the handler's own frames are not counted
            frame.f_trace_opcodes = True
            if event == "opcode":
                if count == fire_at:
                    fired = True
                    signal.raise_signal(signal.SIGINT)
                count += 1
            return tracer

        sys.settrace(tracer)
        try:
            return stops.wait(0.0), count
        finally:
            sys.settrace(None)

    with StopSignals() as stops:
        _, positions = traced_wait(stops, None)
    assert positions > 10, positions
    for k in range(positions):
        with StopSignals() as stops:
            seen, _ = traced_wait(stops, k)
            # the handler may run just after wait returns; the next wait sees it then
            assert seen or stops.wait(0.0), k
            assert stops.received is signal.SIGINT, k
    print("positions", positions)

    # a signal sent while the main thread waits ends the wait (the wakeup pipe), long
    # before its timeout; the process's bound fails the test otherwise
    with StopSignals() as stops:
        waiting = threading.Event()

        def send():
            waiting.wait()
            signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)

        sender = threading.Thread(target=send)
        sender.start()
        waiting.set()
        while not stops.wait(600):
            pass
        sender.join()
        assert stops.received is signal.SIGTERM
    print("woken")
""")


def test_a_signal_on_any_bytecode_of_the_wait_is_seen_and_ends_it() -> None:
    done = subprocess.run([sys.executable, "-c", _SWEEP], capture_output=True, text=True,
                          cwd=ROOT, env=clean_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[0].startswith("positions ") and lines[1] == "woken", done.stdout


def test_the_first_signal_is_kept_and_then_the_stop_signals_stay_ignored() -> None:
    """After a stop signal, leaving ignores the stop signals: a second one while the
    command finishes (the emulator's report, the interpreter's exit) changes nothing. With
    Python's SIGINT handler restored it raised KeyboardInterrupt outside any try, and
    ``emulate`` died of SIGINT (-2) instead of exiting 0 (seen in a CI run)."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with StopSignals() as stops:
            assert not stops.requested and not stops.wait(0.0)
            assert signal.getsignal(signal.SIGINT) == stops.handle
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGINT)
            assert stops.wait(0.0) or stops.wait(0.0)
            assert stops.received is signal.SIGTERM
        assert {sig: signal.getsignal(sig) for sig in before} == dict.fromkeys(
            before, signal.SIG_IGN)
        signal.raise_signal(signal.SIGINT)  # ignored: no KeyboardInterrupt here
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    # the previous wakeup fd (none) is back: setting one returns what was there
    assert signal.set_wakeup_fd(-1) == -1


def test_without_a_stop_signal_leaving_restores_the_handlers() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with StopSignals() as stops:
        assert not stops.wait(0.0)
    assert {sig: signal.getsignal(sig) for sig in before} == before
    assert signal.set_wakeup_fd(-1) == -1
