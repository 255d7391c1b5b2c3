"""The files a configuration names: there, a regular file, readable by whoever checks it
(run the check as the service's user), and a secret not open to others. Shared by the agent's
config and the hub's (``slot-agent check-config``; ``slot-agent hub --check-config`` for the hub's).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from configkit import Section


def check_file(sec: Section, name: str, path: str | Path | None, *, secret: bool = False,
               group: str = "slot-agent") -> bool:
    """A file the service will read must exist and be readable by whoever checks it; True
    when it is (the caller may then look inside).

    The secret-file rule (docs/operations.md, "Where things live" and "Running the hub as a
    service"): ``0640 root:<group>``, readable by the service through its group, by nobody
    else. So only a mode that gives others any access is a warning; group read is what the
    service needs (a ``0600 root`` file would be unreadable by it, which running the check as
    the service's user shows).
    """
    if path is None:
        return False
    try:
        st = os.stat(path)
    except FileNotFoundError:
        sec.error(name, f"file not found: {path}")
        return False
    except OSError as exc:
        sec.error(name, f"cannot read {path}: {exc.strerror}")
        return False
    if not stat.S_ISREG(st.st_mode):
        sec.error(name, f"not a regular file: {path}")
        return False
    if not os.access(path, os.R_OK):
        sec.error(name, f"cannot read {path}: permission denied for this user (uid "
                        f"{os.geteuid()}); the service reads it through its group: "
                        f"chown root:{group} and chmod 0640 it")
        return False
    if secret and st.st_mode & stat.S_IRWXO:
        sec.warn(name, f"{path} is readable or writable by others (mode "
                       f"{stat.S_IMODE(st.st_mode):04o}); chmod 0640 it (owner root, "
                       f"group {group})")
    return True
