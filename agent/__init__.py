"""slot-agent: the daemon that polls a slot machine over SAS and streams its events."""

__version__ = "0.1.0"
