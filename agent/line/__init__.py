"""The serial line's owner, in a subpackage of its own.

- ``owner``: :class:`LineOwner`, the thread that owns the transport and the SAS host state
  (DESIGN §3.3: one owner per serial line).
- ``process``: :class:`LineProcess`, the daemon's proxy for a line owner run in a child
  process, so SAS timing never waits on the daemon's other work.
- ``child``: that child process (``python -m agent.line.child``).
- ``messages``: what crosses the socket between the proxy and the child.
"""
