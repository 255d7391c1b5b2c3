"""Reference central server of the WebSocket API (docs/protocol.md) and its dashboard."""

from __future__ import annotations
