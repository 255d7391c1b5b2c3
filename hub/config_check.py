"""``slot-agent hub --check-config``: hub.yaml checked as the hub would use it, without starting
it (docs/operations.md, "Checking hub.yaml").

Beyond the file itself (hub/config.py), what ``slot-agent hub`` would otherwise find only at
start, one problem at a time: the token file (there, readable, every entry valid), the TLS
certificate and key (readable, and loading together), the action key, and the store (SQLite:
a directory the hub can create its files in; PostgreSQL: psycopg installed and the URL
well formed). Files are checked for whoever runs the check, so run it as the service's user
(``sudo -u slot-hub``); secrets open to others are warnings, as for the agent's config
(configkit.check_file). Nothing is bound or connected to: a running hub may hold the port,
and a database that does not answer is ``slot-agent hub``'s exit 1 at start.

A file key that already has an error of its own (a missing ``tokens:``) is not looked up
again: every problem is reported once.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from configkit import ConfigError, Problem, Section, check_file, load_yaml
from hub.config import TLSLoadError, read_config, tls_context
from hub.tokens import load_tokens, token_file_problems

#: The service's group, which reads the secrets (systemd/slot-hub.service, ``User=slot-hub``).
SERVICE_GROUP = "slot-hub"
#: The agents refuse an action key shorter than this (agent.config.read_hmac_key; the same
#: file on both sides, docs/protocol.md §7): the hub and the agent never import each other.
AGENT_MIN_KEY_BYTES = 16
#: ``StateDirectory=slot-hub``: systemd creates it when the unit starts, not before.
STATE_DIRECTORY = Path("/var/lib/slot-hub")


def check_config(path: Path) -> list[Problem]:
    """Every problem of ``path`` and of what it names (errors and warnings)."""
    try:
        raw = load_yaml(path)
    except ConfigError as exc:
        return list(exc.problems)
    # Resolved, so that every path in a message is absolute (the hub reads the same files).
    config, problems = read_config(raw, path.resolve().parent)
    wrong = {p.path for p in problems if p.severity == "error"}

    def fine(key: str) -> bool:
        """The key has no error of its own yet (nor, for a section, one of its keys)."""
        return not any(w == key or w.startswith(f"{key}.") for w in wrong)

    top = Section(None, "", problems)
    if fine("tokens"):
        _check_tokens(top, config.tokens)
    if config.tls_cert is not None and config.tls_key is not None and fine("tls"):
        _check_tls(Section(None, "tls", problems), config.tls_cert, config.tls_key)
    if config.action_key_file is not None and fine("action_key_file"):
        _check_action_key(top, config.action_key_file)
    if config.store is not None:
        if fine("store"):
            _check_store_url(top, config.store)
    elif config.database is not None and fine("database") and fine("store"):
        # (a wrong store: leaves no database to check, only the placeholder path)
        _check_database(top, config.database)
    return problems


def _check_tokens(top: Section, path: Path) -> None:
    if not check_file(top, "tokens", path, secret=True, group=SERVICE_GROUP):
        return
    try:
        load_tokens(path)
    except ConfigError as exc:
        top.problems.extend(token_file_problems(path, exc.problems))


def _check_tls(tls: Section, cert: Path, key: Path) -> None:
    cert_ok = check_file(tls, "cert", cert, group=SERVICE_GROUP)
    key_ok = check_file(tls, "key", key, secret=True, group=SERVICE_GROUP)
    if not (cert_ok and key_ok):
        return
    try:
        tls_context(cert, key)  # what Hub.start does
    except TLSLoadError as exc:
        tls.error("", f"{cert} and {key} do not load as a certificate and its private key "
                      f"({exc.reason}): slot-agent hub would not start")


def _check_action_key(top: Section, path: Path) -> None:
    if not check_file(top, "action_key_file", path, secret=True, group=SERVICE_GROUP):
        return
    try:
        size = len(path.read_bytes().strip())
    except OSError as exc:
        top.error("action_key_file", f"cannot read {path}: {exc.strerror}")
        return
    if size == 0:
        top.error("action_key_file", f"{path} is empty: the hub would sign and check actions "
                                     "with an empty key")
    elif size < AGENT_MIN_KEY_BYTES:
        top.error("action_key_file", f"{path} holds {size} bytes: the agents refuse a key "
                                     f"under {AGENT_MIN_KEY_BYTES} (actions.hmac_key_file, the "
                                     "same file)")


def _check_database(top: Section, path: Path) -> None:
    """The hub creates the SQLite file and its ``-wal`` and ``-shm`` beside it, never the
    directory."""
    directory = path.parent
    uid = os.geteuid()
    if not directory.is_dir():
        if directory == STATE_DIRECTORY:
            top.warn("database", f"{directory} does not exist yet: slot-hub.service creates it "
                                 "when it starts (StateDirectory=slot-hub); started otherwise, "
                                 "the hub does not create it")
        else:
            top.error("database", f"directory {directory} does not exist (the hub creates the "
                                  "database file, not its directory)")
        return
    if path.exists():
        if not path.is_file():
            top.error("database", f"not a regular file: {path}")
            return
        if not os.access(path, os.R_OK | os.W_OK):
            top.error("database", f"cannot write {path}: permission denied for this user "
                                  f"(uid {uid}); the hub's user must own it")
            return
    if not os.access(directory, os.W_OK | os.X_OK):
        top.error("database", f"cannot create files in {directory} (the database and its -wal "
                              f"and -shm files): permission denied for this user (uid {uid})")


def _check_store_url(top: Section, url: str) -> None:
    """psycopg there and the URL one libpq reads; a password in it is a warning (protocol.md
    §11: it belongs in ~/.pgpass or PGPASSFILE). No connection is made."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    try:
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        top.error("store", "a postgresql:// store needs psycopg 3, not installed beside this "
                           "slot-agent: pip install 'slot-agent[postgresql]'")
        return
    try:
        params = conninfo_to_dict(url)
    except ProgrammingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        if password:
            reason = reason.replace(password, "***")
        top.error("store", f"not a PostgreSQL URL libpq reads: {reason}")
        return
    if params.get("password"):
        top.warn("store", "the URL holds a password (config files are copied and backed up): "
                          "put it in ~/.pgpass or the file PGPASSFILE names instead")
