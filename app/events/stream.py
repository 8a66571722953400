"""One subscriber's stream of events: the log after a cursor, then live ones,
with no gap and no duplicate (SPEC R10.2).

The stream starts listening before it reads the log, so an event committed
while it reads arrives live too; it remembers the last cursor it passed and
drops anything at or before it. When the hub says live events were missed, it
reads the log again from that cursor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

from app.accounts.actor import Actor
from app.events import read
from app.events.hub import Hub
from app.events.models import Event

PAGE = 500
Wanted = Callable[[Event], Awaitable[bool]]


async def follow(actor: Actor, hub: Hub, wanted: Wanted, *, after: int | None = None) -> AsyncIterator[Event]:
    """The events the viewer may see and ``wanted`` accepts: those after cursor
    ``after`` first (none without it), then live ones as they are published."""
    async with hub.listen(actor.organization_id) as listener:
        last = after if after is not None else await _head(actor)
        while True:
            async for event in _log_after(actor, last):
                last = event.seq or last
                if await wanted(event):
                    yield event
            while (live := await listener.next()) is not None:
                if live.seq is None or live.seq <= last:
                    continue  # seen already, or read from the log
                last = live.seq
                if await wanted(live) and await read.may_see(actor, live):
                    yield live


async def _head(actor: Actor) -> int:
    top = (
        await Event.filter(organization_id=actor.organization_id, seq__not_isnull=True)
        .order_by("-seq")
        .first()
        .values_list("seq", flat=True)
    )
    return int(cast(int | None, top) or 0)


async def _log_after(actor: Actor, cursor: int) -> AsyncIterator[Event]:
    while True:
        page = await read.visible(actor).filter(seq__gt=cursor).order_by("seq").limit(PAGE)
        for event in page:
            yield event
        if len(page) < PAGE:
            return
        cursor = page[-1].seq or cursor
