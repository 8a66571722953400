"""The websocket sessions an API process holds open, and the end of those whose
token no longer authenticates (SPEC R1.2): revoked, or its user deactivated.

A session is one acknowledged connection and the actor its token stood for,
kept current: its role as of the last check. Revoking a token announces it on
Redis after the commit (``announce``); every API process's hub hears it and
ends that token's sessions at once, with close code 4403. Each process also
checks all its sessions' tokens every ``CHECK_SECONDS``, in one query
whatever their number, so an announcement lost with Redis, a user deactivated
or a role changed in the database reaches its sessions within that time too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any

from redis.asyncio import Redis

from app.accounts.actor import Actor
from app.accounts.models import ApiToken, Role
from app.accounts.service import forget_tokens
from app.redis import channel as redis_channel

logger = logging.getLogger("leadline.sessions")

REVOKED_CHANNEL = "accounts:revoked"
"""One channel for every organization: revocations are rare and carry only token ids."""
CHECK_SECONDS = 1.0
"""Between two checks of the open sessions' tokens: well inside the 2 s within which
a revocation must end its sessions when its announcement is lost."""


class Session:
    """One open websocket connection: who it is, as of the last check, and how to end it."""

    def __init__(self, actor: Actor, end: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if actor.token_id is None:
            raise ValueError("a session is opened with a token")
        self.token_id: int = actor.token_id
        # It outlives the look-up that read its user's row: its viewer is read afresh.
        self.actor = dataclasses.replace(actor, user=None)
        self.end = end


class Sessions:
    """The open sessions of one API process."""

    def __init__(self, *, check_seconds: float = CHECK_SECONDS) -> None:
        self.check_seconds = check_seconds
        self._open: set[Session] = set()
        self._checker: asyncio.Task[None] | None = None
        self._ending: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._open)

    @contextlib.contextmanager
    def attending(self, session: Session) -> Iterator[Session]:
        """Keeps ``session`` where revocations and checks find it, while open."""
        self._open.add(session)
        if self._checker is None or self._checker.done():
            self._checker = asyncio.create_task(self._check_while_open(), name="leadline-sessions")
        try:
            yield session
        finally:
            self._open.discard(session)

    def revoked(self, token_ids: Iterable[int]) -> None:
        """Ends the sessions of these tokens (an announcement heard on Redis), and
        forgets them in this process's authentication."""
        gone = set(token_ids)
        forget_tokens(gone)
        for session in [s for s in self._open if s.token_id in gone]:
            self._end(session)

    async def check(self) -> None:
        """Ends the sessions whose token was revoked or whose user is no longer active,
        and gives the others their user's current role: one query for all of them."""
        checked = list(self._open)  # one opened while the query runs waits for the next check
        if not checked:
            return
        rows = await ApiToken.filter(id__in={s.token_id for s in checked}).values_list(
            "id", "revoked_at", "user__active", "user__role"
        )
        roles = {token: Role(role) for token, revoked_at, active, role in rows if revoked_at is None and active}
        for session in checked:
            if session not in self._open:
                continue  # closed meanwhile
            role = roles.get(session.token_id)
            if role is None:
                self._end(session)
            elif role is not session.actor.role:
                session.actor = dataclasses.replace(session.actor, role=role)

    async def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker

    def _end(self, session: Session) -> None:
        self._open.discard(session)
        task = asyncio.create_task(session.end())
        self._ending.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._ending.discard)

    async def _check_while_open(self) -> None:
        while self._open:
            await asyncio.sleep(self.check_seconds)
            try:
                await self.check()
            except Exception:  # the database away: the next check tries again
                logger.warning("could not check the open sessions' tokens", exc_info=True)


async def announce(redis: Redis | None, *, token_ids: Iterable[int]) -> None:
    """Tells every API process that these tokens were revoked (call it after the commit).
    A failure is logged: the processes' periodic checks find the revocation anyway."""
    if redis is None:
        return
    try:
        await redis.publish(redis_channel(redis, REVOKED_CHANNEL), json.dumps({"tokens": sorted(token_ids)}))
    except Exception:
        logger.warning("could not announce a token revocation", exc_info=True)


def announced(data: bytes | str) -> list[int]:
    """The token ids of an announcement; ValueError when it is not one."""
    message = json.loads(data)
    tokens = message.get("tokens") if isinstance(message, dict) else None
    if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
        raise ValueError("not a revocation announcement")
    return tokens
