"""The connection to the hub: the WSS client, remote actions, the TLS context."""
