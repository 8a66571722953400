"""Webhook endpoint and delivery types (contract part 30)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.events.models import EventType
from app.webhooks import models, read
from app.webhooks.models import DeliveryState
from schema.context import Info
from schema.events.types import Event
from schema.node import Node, global_id
from schema.pagination import Connection, paginate

strawberry.enum(DeliveryState)


@strawberry.type
class WebhookEndpoint(Node):
    row: strawberry.Private[models.WebhookEndpoint]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("WebhookEndpoint", self.row.id)

    @strawberry.field
    def url(self) -> str:
        return self.row.url

    @strawberry.field(description="Empty means every type.")
    def event_types(self) -> list[EventType]:
        return [EventType(t) for t in self.row.event_types]

    @strawberry.field
    def enabled(self) -> bool:
        return self.row.enabled

    @strawberry.field
    def disabled_reason(self) -> str | None:
        return self.row.disabled_reason

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field(description="Oldest first.")
    async def deliveries(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[WebhookDelivery]:
        return await paginate(read.deliveries_of(self.row), first, after, lambda r: WebhookDelivery(row=r))


@strawberry.type
class WebhookDelivery(Node):
    row: strawberry.Private[models.WebhookDelivery]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("WebhookDelivery", self.row.id)

    @strawberry.field
    def endpoint(self) -> WebhookEndpoint:
        return WebhookEndpoint(row=self.row.endpoint)

    @strawberry.field
    def event(self) -> Event:
        return Event(row=self.row.event)

    @strawberry.field
    def state(self) -> DeliveryState:
        return self.row.state

    @strawberry.field
    def attempts(self) -> int:
        return self.row.attempts

    @strawberry.field
    def last_status_code(self) -> int | None:
        return self.row.last_status_code

    @strawberry.field
    def last_error(self) -> str | None:
        return self.row.last_error

    @strawberry.field
    def next_attempt_at(self) -> datetime | None:
        return self.row.next_attempt_at if self.row.state == DeliveryState.PENDING else None

    @strawberry.field
    def delivered_at(self) -> datetime | None:
        return self.row.delivered_at
