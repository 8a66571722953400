"""The data directory is its owner's alone: directories 0700, files 0600, whatever
the process umask. It holds the SQLite database, the generated secret key and dev
token, the file outbox's messages and the embedded Redis.

Modes are set explicitly where each file is made rather than by a process umask:
SQLite gives the -wal, -shm and -journal files it creates later (from its own
thread) the database file's mode, even over the umask, so the database file made
0600 here covers them; and an install made before keeps a 0644 database, whose
new WAL files would be 0644 under any umask, until its mode is tightened (here,
at each start). Only the embedded Redis server, a process of its own, is
started under a 0077 umask (app/redis.py)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

DIRECTORY = 0o700
FILE = 0o600


def make_directory(path: Path) -> None:
    """``path`` and its missing parents created, ``path`` itself 0700."""
    path.mkdir(mode=DIRECTORY, parents=True, exist_ok=True)
    tighten(path)


def make_file(path: Path) -> None:
    """An empty 0600 file at ``path`` unless there is a file already (then tightened)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE))
    tighten(path)


def write_file(path: Path, data: bytes) -> None:
    """``path`` holds ``data``, mode 0600 (created, or replaced in place)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, FILE)
        file.write(data)


def tighten(path: Path) -> None:
    """Takes group and other access off ``path`` when it exists and is ours."""
    with contextlib.suppress(FileNotFoundError):
        status = path.stat()
        mode = stat.S_IMODE(status.st_mode)
        if status.st_uid == os.geteuid() and mode & 0o077:
            path.chmod(mode & 0o700)


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """A 0077 umask, for starting a process whose files are made beyond our reach."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)
