"""What the API process shares between its requests and connections, in one typed
object on the Starlette app: set when the app is made (Redis and its hub once it is
connected), read through ``state_of``."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from starlette.applications import Starlette

from app.accounts.sessions import Sessions
from app.clock import Clock
from app.config import Settings
from app.events.hub import Hub


@dataclass
class AppState:
    settings: Settings
    clock: Clock
    sessions: Sessions
    """The websocket sessions this process holds open."""
    redis: Redis | None = None
    """None where the app runs without Redis (some tests): nudges and announcements are skipped."""
    hub: Hub | None = None
    """Live events and session announcements from Redis, for this process's subscribers."""

    def connect(self, redis: Redis) -> None:
        self.redis = redis
        self.hub = Hub(redis, self.sessions)


def install(app: Starlette, state: AppState) -> None:
    app.state.leadline = state


def state_of(app: Starlette) -> AppState:
    """The state ``install`` put on ``app`` (a request's or a websocket's ``.app``)."""
    state = app.state.leadline
    assert isinstance(state, AppState), "app.web.create_app installs it"
    return state
