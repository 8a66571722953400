"""The event log's type and query (contract part 30: ``events``)."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar, cast

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON

from app import ids
from app.events import models
from app.events.models import EventType
from schema.context import Info
from schema.messaging.types import Message
from schema.node import Node, global_id
from schema.prospects.types import Prospect, StatusChange, Task
from schema.sequences.types import StageChange

strawberry.enum(EventType)


@strawberry.input
class EventFilter:
    types: list[EventType] | None = None
    prospect_id: strawberry.ID | None = None


@strawberry.type(description="One entry of the organization's append-only event log.")
class Event(Node):
    row: strawberry.Private[models.Event]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("Event", self.row.id)

    @strawberry.field(description="Opaque and increasing within the organization; pass it as `after` to resume.")
    def cursor(self) -> str:
        return ids.encode("Cursor", cast(int, self.row.seq))

    @strawberry.field
    def type(self) -> EventType:
        return self.row.type

    @strawberry.field
    def at(self) -> datetime:
        return self.row.at

    @strawberry.field(description="Null once the prospect is erased.")
    async def prospect(self, info: Info) -> Prospect | None:
        # `visible` already kept an AGENT to its prospects' events.
        row = None if self.row.prospect_id is None else await info.context.loaders.prospect.load(self.row.prospect_id)
        return Prospect(row=row) if row is not None else None

    @strawberry.field
    async def status_change(self, info: Info) -> StatusChange | None:
        row = await _load(info.context.loaders.status_change, self.row.status_change_id)
        return StatusChange(row=row) if row is not None else None

    @strawberry.field
    async def stage_change(self, info: Info) -> StageChange | None:
        row = await _load(info.context.loaders.stage_change, self.row.stage_change_id)
        return StageChange(row=row) if row is not None else None

    @strawberry.field
    async def message(self, info: Info) -> Message | None:
        row = await _load(info.context.loaders.message, self.row.message_id)
        return Message(row=row) if row is not None else None

    @strawberry.field
    async def task(self, info: Info) -> Task | None:
        row = await _load(info.context.loaders.task, self.row.task_id)
        return Task(row=row) if row is not None else None

    @strawberry.field(description="The same JSON that webhooks deliver.")
    def payload(self) -> JSON:
        return cast(JSON, self.row.payload)


R = TypeVar("R")


async def _load(loader: DataLoader[int, R | None], pk: int | None) -> R | None:
    """The event's subject, if it still exists (an erasure removes it)."""
    return None if pk is None else await loader.load(pk)
