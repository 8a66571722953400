"""One subscriber's stream of events: the log after a cursor, then live ones,
with no gap and no duplicate (SPEC R10.2).

The stream starts listening before it reads the log, so an event committed
while it reads arrives live too; it remembers the last cursor it passed and
drops anything at or before it. When the hub says live events were missed, it
reads the log again from that cursor.

Every event passes the read rule for the viewer as it is when the event is
handed on, not as it was when the stream began or the log page was read: a
role changed since, or a prospect taken from an AGENT, stops its events.
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
Viewer = Callable[[], Actor]
"""The viewer as it is now (a websocket session's actor is kept current)."""


async def follow(viewer: Viewer, hub: Hub, wanted: Wanted, *, after: int | None = None) -> AsyncIterator[Event]:
    """The events the viewer may see and ``wanted`` accepts: those after cursor
    ``after`` first (none without it), then live ones as they are published."""
    async with hub.listen(viewer().organization_id) as listener:
        last = after if after is not None else await _head(viewer())
        while True:
            async for event in _log_after(viewer, last):
                last = event.seq or last
                if await wanted(event) and await read.may_see(viewer(), event):
                    yield event
            while (live := await listener.next()) is not None:
                if live.seq is None or live.seq <= last:
                    continue  # seen already, or read from the log
                last = live.seq
                if await wanted(live) and await read.may_see(viewer(), live):
                    yield live


async def _head(actor: Actor) -> int:
    top = (
        await Event.filter(organization_id=actor.organization_id, seq__not_isnull=True)
        .order_by("-seq")
        .first()
        .values_list("seq", flat=True)
    )
    return int(cast(int | None, top) or 0)


async def _log_after(viewer: Viewer, cursor: int) -> AsyncIterator[Event]:
    while True:
        page = await read.visible(viewer()).filter(seq__gt=cursor).order_by("seq").limit(PAGE)
        for event in page:
            yield event
        if len(page) < PAGE:
            return
        cursor = page[-1].seq or cursor
