"""Query fields of the event log."""

from __future__ import annotations

import strawberry

from app.events import read
from schema.context import Info
from schema.events.types import Event, EventFilter
from schema.node import Node, NodeReader, decode_ids
from schema.pagination import Connection, paginate


async def _event(info: Info, pk: int) -> Node | None:
    row = await read.visible(info.context.actor).get_or_none(id=pk)
    return Event(row=row) if row else None


NODES: dict[str, NodeReader] = {"Event": _event}


@strawberry.type
class EventQueries:
    @strawberry.field(description="The event log, oldest first; `after` takes an event cursor.")
    async def events(
        self,
        info: Info,
        filter: EventFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Event]:
        given = filter or EventFilter()
        query = read.events(
            info.context.actor,
            types=given.types,
            prospect_ids=None if given.prospect_id is None else decode_ids("Prospect", [given.prospect_id]),
        )
        return await paginate(query, first, after, lambda r: Event(row=r), key="seq")
