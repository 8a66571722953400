"""The API process's side of the relay: one Redis pub/sub connection per process
that fans published events out to the local subscribers of each organization.

A channel is subscribed while at least one local subscriber of its
organization listens, and unsubscribed when the last one leaves. ``listen``
returns only once Redis has confirmed the subscription, so a subscriber that
then reads the log misses nothing between the two. When the connection to
Redis drops, or a subscriber falls too far behind, its listener is told to
catch up from the log instead (``Listener.next`` returns None).

The same connection hears token revocations (app.accounts.sessions) while the
process has websocket sessions open, and ends theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable

from redis.asyncio import Redis

from app.accounts import sessions
from app.accounts.sessions import Session, Sessions
from app.events import relay
from app.events.models import Event
from app.redis import channel as redis_channel

logger = logging.getLogger("leadline.hub")

BACKLOG = 1000
"""Events a listener may hold unread; past it, it catches up from the log."""
CONFIRM_SECONDS = 10.0
RECONNECT_SECONDS = 0.5


class Listener:
    """What one subscriber has not read yet."""

    def __init__(self) -> None:
        self._events: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._behind = False

    def push(self, event: Event) -> None:
        if len(self._events) >= BACKLOG:
            self.fell_behind()
            return
        self._events.append(event)
        self._ready.set()

    def fell_behind(self) -> None:
        self._events.clear()
        self._behind = True
        self._ready.set()

    async def next(self) -> Event | None:
        """The next live event, or None: events may have been missed, read the log."""
        while True:
            if self._behind:
                self._behind = False
                return None
            if self._events:
                return self._events.popleft()
            self._ready.clear()
            await self._ready.wait()


class Hub:
    def __init__(self, redis: Redis, sessions: Sessions) -> None:
        self._pubsub = redis.pubsub()
        self._prefix = redis_channel(redis, "")
        self.sessions = sessions
        self._listeners: dict[int, set[Listener]] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._reconnecting: set[str] = set()
        self._lock = asyncio.Lock()

    def subscriber_count(self) -> int:
        return sum(len(group) for group in self._listeners.values())

    @contextlib.asynccontextmanager
    async def listen(self, organization_id: int) -> AsyncIterator[Listener]:
        listener = Listener()
        self._listeners.setdefault(organization_id, set()).add(listener)
        try:
            await self._join(relay.channel(organization_id))
            yield listener
        finally:
            group = self._listeners.get(organization_id, set())
            group.discard(listener)
            if not group:
                # Shielded: a second cancellation must not leave the channel subscribed.
                await asyncio.shield(
                    self._leave(relay.channel(organization_id), lambda: bool(self._listeners.get(organization_id)))
                )
                if not self._listeners.get(organization_id):
                    self._listeners.pop(organization_id, None)

    @contextlib.asynccontextmanager
    async def attend(self, session: Session) -> AsyncIterator[Session]:
        """Keeps ``session`` open until its token's revocation is announced (or the
        periodic check finds it); the revocation channel is subscribed meanwhile."""
        try:
            with self.sessions.attending(session):
                try:
                    await self._join(sessions.REVOKED_CHANNEL)
                except Exception:  # Redis away: the periodic check alone ends revoked sessions
                    logger.warning("could not hear token revocations", exc_info=True)
                yield session
        finally:
            if not self.sessions:
                await asyncio.shield(self._leave(sessions.REVOKED_CHANNEL, lambda: bool(self.sessions)))

    async def _join(self, name: str) -> None:
        """Subscribes to the channel unless it is already; returns once Redis confirmed it."""
        async with self._lock:  # SUBSCRIBE and UNSUBSCRIBE of one channel never cross
            if self._reader is None:
                await self._pubsub.connect()  # type: ignore[no-untyped-call]
                self._reader = asyncio.create_task(self._read(), name="leadline-hub")
            confirmed = self._confirmed.get(name)
            if confirmed is None:
                confirmed = self._confirmed[name] = asyncio.get_running_loop().create_future()
                try:
                    # Shielded: once asked, the subscription completes and its confirmation
                    # resolves the future, even if this subscriber is cancelled meanwhile.
                    await asyncio.shield(self._pubsub.subscribe(self._prefix + name))
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    del self._confirmed[name]
                    confirmed.set_exception(ConnectionError("Live events are unavailable: Redis did not answer."))
                    confirmed.exception()  # retrieved here; whoever waits on it gets it raised
                    raise error
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
        # that arrives as the future completes, and a cancelled subscriber would live on.
        async with asyncio.timeout(CONFIRM_SECONDS):
            await asyncio.shield(confirmed)

    async def _leave(self, name: str, wanted: Callable[[], bool]) -> None:
        async with self._lock:
            if wanted():
                return  # someone joined meanwhile: keep the channel
            confirmed = self._confirmed.pop(name, None)
            with contextlib.suppress(Exception):  # the connection may be gone: nothing to undo then
                if confirmed is not None and not confirmed.done():
                    async with asyncio.timeout(CONFIRM_SECONDS):
                        await asyncio.shield(confirmed)
                await self._pubsub.unsubscribe(self._prefix + name)

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis went away: reconnect, resubscribe, and have everyone catch up
                logger.warning("lost the Redis subscription; reconnecting", exc_info=True)
                for group in self._listeners.values():
                    for listener in group:
                        listener.fell_behind()
                self._reconnecting = set(self._confirmed)
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, object]) -> None:
        kind, name = message["type"], _text(message["channel"]).removeprefix(self._prefix)
        if name == sessions.REVOKED_CHANNEL:
            if kind == "subscribe":
                # After a lost connection, what was announced meanwhile is left to the periodic check.
                self._reconnecting.discard(name)
                if (confirmed := self._confirmed.get(name)) is not None and not confirmed.done():
                    confirmed.set_result(None)
            elif kind == "message":
                try:
                    self.sessions.revoked(sessions.announced(message["data"]))  # type: ignore[arg-type]
                except ValueError:
                    logger.error("unreadable revocation on %s", name)
            return
        if kind == "subscribe":
            confirmed = self._confirmed.get(name)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
            elif name in self._reconnecting:
                # Resubscribed after a lost connection: what was published meanwhile is only in the log.
                self._reconnecting.discard(name)
                for listener in self._listeners.get(relay.organization_of(name), ()):
                    listener.fell_behind()
        elif kind == "message":
            try:
                events = relay.unwire(message["data"])  # type: ignore[arg-type]
            except (ValueError, KeyError, TypeError):
                logger.error("unreadable events on %s", name)
                return
            for event in events:
                for listener in self._listeners.get(event.organization_id, ()):
                    listener.push(event)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
