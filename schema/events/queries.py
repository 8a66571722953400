"""Query fields of the event log."""

from __future__ import annotations

import strawberry
from tortoise.queryset import QuerySet

from app.events import models, read
from schema.context import Info
from schema.events.types import Event, EventFilter
from schema.node import Node, NodeReader, decode_ids
from schema.pagination import Connection, paginate


def events_query(info: Info, filter: EventFilter | None) -> QuerySet[models.Event]:
    query = read.visible(info.context.actor)
    if filter is not None:
        if filter.types is not None:
            query = query.filter(type__in=[t.value for t in filter.types])
        if filter.prospect_id is not None:
            query = query.filter(prospect_id__in=decode_ids("Prospect", [filter.prospect_id]) or [])
    return query


async def page(info: Info, filter: EventFilter | None, first: int | None, after: str | None) -> Connection[Event]:
    """Oldest first, by cursor."""
    return await paginate(events_query(info, filter), first, after, lambda r: Event(row=r), key="seq")


async def _event(info: Info, pk: int) -> Node | None:
    event = await read.visible(info.context.actor).get_or_none(id=pk)
    return Event(row=event) if event else None


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
        return await page(info, filter, first, after)
