"""Query fields of webhooks: endpoints and their deliveries, ADMIN only."""

from __future__ import annotations

import strawberry

from app.webhooks import read
from schema.context import Info
from schema.node import Node, NodeReader
from schema.webhooks.types import WebhookDelivery, WebhookEndpoint


async def _endpoint(info: Info, pk: int) -> Node | None:
    row = await read.endpoints(info.context.actor).get_or_none(id=pk)
    return WebhookEndpoint(row=row) if row else None


async def _delivery(info: Info, pk: int) -> Node | None:
    row = await read.deliveries(info.context.actor).get_or_none(id=pk).select_related("endpoint", "event")
    return WebhookDelivery(row=row) if row else None


NODES: dict[str, NodeReader] = {"WebhookEndpoint": _endpoint, "WebhookDelivery": _delivery}


@strawberry.type
class WebhookQueries:
    @strawberry.field(description="The organization's webhook endpoints (ADMIN only; empty for other roles).")
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        return [WebhookEndpoint(row=r) for r in await read.endpoints(info.context.actor).order_by("id")]
