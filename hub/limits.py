"""Per-client request limits: a token bucket (docs/protocol.md §5, "Limits").

A ``getState`` builds a snapshot of the floor (milliseconds of the event loop with thousands
of terminals): one client asking in a loop would hold up every terminal. Each client gets a
bucket of ``burst`` requests refilled at ``per_second``; a request over it is answered with
``rate_limited`` and costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    burst: int
    per_second: float
    tokens: float = -1.0  # full at the first take
    last: float = 0.0

    def take(self, now: float) -> bool:
        """Spend one token at ``now`` (seconds); False if there is none."""
        if self.tokens < 0:
            self.tokens, self.last = float(self.burst), now
        elapsed = max(0.0, now - self.last)
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.per_second)
        self.last = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True
