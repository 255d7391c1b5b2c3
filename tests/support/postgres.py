"""A throwaway PostgreSQL cluster for tests: Debian's server, on a unix socket in a temporary
folder, no TCP port at all.

PostgreSQL refuses to run as root and CI runs as root, so the cluster is made and started as
the ``postgres`` user (``runuser``) when this process is root. ``pg_config --bindir`` finds
``initdb`` and ``pg_ctl``. Where the server is not installed, :func:`available` says why and
the tests that need it are skipped with that reason (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def _bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
    path = Path(out.stdout.strip())
    return path if (path / "initdb").exists() and (path / "pg_ctl").exists() else None


def available() -> str | None:
    """None when a cluster can be started here, else why not."""
    if _bindir() is None:
        return "PostgreSQL server not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and no 'postgres' user to run the server as"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg not installed (pip install -e '.[test]')"
    return None


@dataclass(frozen=True, slots=True)
class Cluster:
    socket_dir: Path
    dbname: str = "postgres"
    user: str = "postgres"

    @property
    def url(self) -> str:
        """A libpq URL for the cluster's unix socket (``store: postgresql://…``)."""
        return f"postgresql:///{self.dbname}?host={self.socket_dir}&user={self.user}"

    def create_database(self, name: str) -> Cluster:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return Cluster(self.socket_dir, name, self.user)


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextmanager
def cluster(*, durable: bool = False) -> Iterator[Cluster]:
    """Start a fresh cluster (fsync off: a test database, never a product setting;
    ``durable``: fsync on, as a production server runs, for benchmarks)."""
    bindir = _bindir()
    assert bindir is not None, available()
    root = Path(tempfile.mkdtemp(prefix="slot-agent-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        data = root / "data"
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                                     "-U", "postgres", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True)
        fsync = "on" if durable else "off"
        options = f"-k {root} -c listen_addresses='' -c fsync={fsync} -c max_connections=200"
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", options,
                                     "-l", str(root / "server.log"), "-w", "start"]),
                       check=True, capture_output=True)
        try:
            yield Cluster(root)
        finally:
            subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m",
                                         "immediate", "-w", "stop"]),
                           check=False, capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
