"""The WebSocket API that the agent and the hub both speak.

``api.events`` holds the event envelope and the catalog of event names (which fixes each
name's channel); ``api.wire`` the messages: names, codes, validation, builders and action
signatures; ``api.capture`` the capture file of ``slot-agent capture`` (docs/operations.md).
docs/protocol.md is the contract. This package does no I/O and imports nothing of
ours above ``sas_protocol`` (tests/test_layering.py).
"""
