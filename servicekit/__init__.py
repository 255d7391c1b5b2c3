"""What a long-running slot-agent process needs from its service manager: the systemd
notification protocol (``servicekit.sdnotify``). Bottom floor: it imports nothing of ours, so
the agent's daemon and the hub's command (``slot-agent run``, ``slot-agent hub``) share one
implementation without importing each other (tests/test_layering.py)."""
