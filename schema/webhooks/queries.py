"""Query fields of webhooks: endpoints and their deliveries, ADMIN only."""

from __future__ import annotations

import strawberry

from app.accounts.models import Role
from app.webhooks import models
from schema.context import Info
from schema.node import Node, NodeReader
from schema.webhooks.types import WebhookDelivery, WebhookEndpoint


async def _endpoint(info: Info, pk: int) -> Node | None:
    actor = info.context.actor
    if actor.role is not Role.ADMIN:
        return None
    endpoint = await models.WebhookEndpoint.get_or_none(id=pk, organization_id=actor.organization_id)
    return WebhookEndpoint(row=endpoint) if endpoint else None


async def _delivery(info: Info, pk: int) -> Node | None:
    actor = info.context.actor
    if actor.role is not Role.ADMIN:
        return None
    delivery = await models.WebhookDelivery.get_or_none(id=pk, organization_id=actor.organization_id).select_related(
        "endpoint", "event"
    )
    return WebhookDelivery(row=delivery) if delivery else None


NODES: dict[str, NodeReader] = {"WebhookEndpoint": _endpoint, "WebhookDelivery": _delivery}


@strawberry.type
class WebhookQueries:
    @strawberry.field(description="The organization's webhook endpoints (ADMIN only; empty for other roles).")
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        actor = info.context.actor
        if actor.role is not Role.ADMIN:
            return []
        rows = await models.WebhookEndpoint.filter(organization_id=actor.organization_id).order_by("id")
        return [WebhookEndpoint(row=r) for r in rows]
