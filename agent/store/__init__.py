"""Durable storage: the SQLite outbox (events and state in one transaction), its read side,
and the pipeline that feeds it from the interpreter."""
