"""What the tests share, one module a job:

- ``waits``: ``wait_until`` / ``wait_for``, the bounded waits (never a sleep to wait);
- ``threads``: ``stopped_at``, where another thread is blocked (a race set up, not slept for);
- ``hub``: ``HubHarness``, the one in-process hub (test's loop or own thread, port 0, TLS,
  restart on the same port), raw WebSocket ``Peer`` s, schema checks, raw HTTP;
- ``event_data``: an event's ``data`` against docs/schemas/events/data.json
  (``assert_documented``);
- ``tokens``: the hub token tables and the files the hub and the agent read them from;
- ``processes``: the real ``slot-agent`` as a subprocess (``Proc``, ``start_emulator``,
  ``run_cli``), an agent config, ``short_dir`` for unix sockets;
- ``browser``: headless Chromium's path and flags;
- ``postgres``: a throwaway PostgreSQL cluster;
- ``systemd_units``: the shipped units parsed, verified and scored by ``systemd-analyze``.

Tests import them as ``from tests.support.<module> import ...``.
"""

from pathlib import Path

#: The repository's root (docs/, the console script in .venv/).
ROOT = Path(__file__).resolve().parents[2]
