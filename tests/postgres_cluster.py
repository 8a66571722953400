"""A PostgreSQL cluster of a test's own, which the test may restart: initdb into a
temporary directory, the server on a free loopback port with its socket in that
directory. The shared server the other tests use (DATABASE_URL) is never touched.

initdb and postgres refuse to run as root: as root (CI), they run as the
`postgres` user, which owns the directory."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.live_processes import free_port

SERVER_OPTIONS = ("-c", "fsync=off")
"""No fsync: the test restarts the server, never the machine, so what a commit wrote
is in the OS's page cache when the server comes back. synchronous_commit stays on:
a commit is acknowledged only once its WAL is written, so an immediate (crash-style)
restart keeps every commit a client saw."""


def server_binaries() -> Path:
    """The newest installed server's bin directory (Debian's /usr/lib/postgresql/<version>/bin),
    else the directory of an initdb on PATH."""
    installed = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if installed:
        return installed[-1]
    on_path = shutil.which("initdb")
    if on_path is None:
        raise AssertionError("no PostgreSQL server binaries (initdb) found")
    return Path(on_path).parent


@dataclass
class Cluster:
    directory: Path
    port: int
    binaries: Path

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    async def pg_ctl(self, *args: str) -> None:
        await self._run("pg_ctl", *self._pg_ctl_options(), *args)

    async def restart(self, mode: str) -> float:
        """Restarts the server (``mode``: fast, or immediate: a crash, recovered from the
        WAL) and waits until it accepts connections; the seconds that took."""
        started = time.monotonic()
        await self.pg_ctl("restart", "-m", mode)
        return time.monotonic() - started

    def restart_unnoticed(self, mode: str) -> None:
        """``restart``, blocking the event loop: connections pooled before have not seen
        theirs close when the caller next runs (as when a restart falls between a pool's
        check of a connection and the first statement on it)."""
        command = self._command("pg_ctl", *self._pg_ctl_options(), "restart", "-m", mode)
        completed = subprocess.run(command, capture_output=True, check=False)
        if completed.returncode != 0:
            raise AssertionError(f"pg_ctl restart -m {mode}: exit {completed.returncode}\n{completed.stdout.decode()}")

    def _pg_ctl_options(self) -> list[str]:
        # -l always: without it the server writes to pg_ctl's stdout, and reading it would never end.
        return ["-D", str(self.data), "-l", str(self.directory / "server.log"), "-w"]

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.binaries / program), *args]
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    async def _run(self, program: str, *args: str) -> None:
        command = self._command(program, *args)
        child = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await child.communicate()
        if child.returncode != 0:
            log = self.directory / "server.log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise AssertionError(f"{program} {' '.join(args)}: exit {child.returncode}\n{output.decode()}\n{tail}")


def _base_for_postgres() -> str:
    """A temporary directory the `postgres` user can reach: the usual one, unless a
    root-only mode (seen: /tmp at 0700) keeps others out, then /var/tmp or /dev/shm."""
    candidates = [tempfile.gettempdir(), "/var/tmp", "/dev/shm"]
    if os.geteuid() != 0:
        return candidates[0]
    for candidate in candidates:
        if os.path.isdir(candidate) and os.stat(candidate).st_mode & 0o001:
            return candidate
    raise AssertionError(f"none of {candidates} is open to the postgres user")


@asynccontextmanager
async def own_cluster() -> AsyncIterator[Cluster]:
    """A running cluster (user `postgres`, trust authentication), stopped and deleted after."""
    directory = Path(tempfile.mkdtemp(prefix="leadline-pg-", dir=_base_for_postgres()))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    cluster = Cluster(directory=directory, port=free_port(), binaries=server_binaries())
    try:
        await cluster._run(
            "initdb", "-D", str(cluster.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"
        )
        options = f"-p {cluster.port} -c listen_addresses=127.0.0.1 -k {directory} {' '.join(SERVER_OPTIONS)}"
        await cluster.pg_ctl("start", "-o", options)
        try:
            yield cluster
        finally:
            await cluster.pg_ctl("stop", "-m", "immediate")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
