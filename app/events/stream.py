"""One subscriber's stream of events: the log after a cursor, then live ones,
with no gap and no duplicate (SPEC R10.2).

The stream starts listening before it reads the log, so an event committed
while it reads arrives live too; it remembers the last cursor it passed and
drops anything at or before it. When the hub says live events were missed, it
reads the log again from that cursor.

Every event passes the read rule for the viewer as it is when the event is
handed on, not as it was when the stream began or the log page was read: a
role changed since, or a prospect taken from an AGENT, stops its events.

A ``Progress`` given to ``follow`` tells where the stream is (the shared
fan-out, app.events.fanout, tells its members' frames apart by it) and can
make it start after a cursor of its own (a member that goes on alone).
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


class Progress:
    """Where one ``follow`` is: the cursor it started after and the last one it
    passed (handed on or not); ``resume_after``, when set, is where it starts
    instead of its ``after`` (or the log's head)."""

    def __init__(
        self,
        *,
        resume_after: int | None = None,
        on_start: Callable[[bool], None] | None = None,
        on_pass: Callable[[int], None] | None = None,
    ) -> None:
        self.resume_after = resume_after
        self.start: int | None = None
        self.position: int | None = None
        self._on_start = on_start
        self._on_pass = on_pass

    def started(self, cursor: int, *, replaying: bool) -> None:
        """The stream begins after ``cursor``; ``replaying``: it reads the log from a
        cursor its subscriber chose, not from the head."""
        self.start = self.position = cursor
        if self._on_start is not None:
            self._on_start(replaying)

    def passing(self, seq: int) -> None:
        """The event ``seq`` is next (before it is tested); ``position`` is still the one before."""
        if self._on_pass is not None:
            self._on_pass(seq)
        self.position = seq


async def follow(
    viewer: Viewer, hub: Hub, wanted: Wanted, *, after: int | None = None, progress: Progress | None = None
) -> AsyncIterator[Event]:
    """The events the viewer may see and ``wanted`` accepts: those after cursor
    ``after`` first (none without it), then live ones as they are published."""
    progress = progress or Progress()
    async with hub.listen(viewer().organization_id) as listener:
        start = progress.resume_after if progress.resume_after is not None else after
        last = start if start is not None else await _head(viewer())
        progress.started(last, replaying=start is not None)
        while True:
            async for event in _log_after(viewer, last):
                last = event.seq or last
                progress.passing(last)
                if await wanted(event) and await read.may_see(viewer(), event):
                    yield event
            while (live := await listener.next()) is not None:
                if live.seq is None or live.seq <= last:
                    continue  # seen already, or read from the log
                last = live.seq
                progress.passing(last)
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
