"""The ``slot-agent`` command line: the top floor, above agent, hub and emulator.

``cli.main`` parses the command line; each subcommand lives in ``cli/commands/<name>.py`` and
imports only what it runs. This is the only package that composes emulator, agent and hub (for
``slot-agent demo``).
"""
