"""The interpreter's switch interval for a hub process (``slot-agent hub``).

The store's writer thread (hub/store.py) runs each SQLite statement with the interpreter
lock released and must take the lock back after it, while the event loop, 70-90 % busy
under floor load, holds it between system calls. A thread asking for the lock gets it
when the holder next lets go, or when the switch interval (5 ms by default) forces it to.
Measured at 10,000 events/s from 3,000 terminals (docs/performance.md, "The
checkpoint off the commit path"): the commits whose acks were late were not doing more work, they
were waiting up to 5-8 ms at each of their six or seven statements (a ``BEGIN`` that
takes microseconds, 5-8 ms; a one-row ``SELECT``, 5.5 ms; an insert of 800 rows, 101 ms
with 19 ms of CPU), and every ack behind the commit waited with it.

At :data:`SWITCH_INTERVAL` the writer waits at most about that long per statement; the
loop gives the lock up only when another thread asks for it, so a hub whose writer is idle
pays nothing. Set once for the process, by the command that owns it.
"""

from __future__ import annotations

import sys

#: Seconds a thread waits for the interpreter lock before the holder is asked to let go
#: (CPython's default is 0.005).
SWITCH_INTERVAL = 0.0005


def tune_switch_interval() -> float:
    """Set the hub's switch interval; return the previous one."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    return previous
