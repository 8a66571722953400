"""What a viewer may read of webhooks: an ADMIN its organization's endpoints and
their deliveries; other roles none."""

from __future__ import annotations

from tortoise.queryset import QuerySet

from app.accounts.actor import Actor
from app.accounts.read import admin_only, of_organization
from app.webhooks.models import WebhookDelivery, WebhookEndpoint


def endpoints(actor: Actor) -> QuerySet[WebhookEndpoint]:
    return admin_only(actor, of_organization(WebhookEndpoint, actor.organization_id))


def deliveries(actor: Actor) -> QuerySet[WebhookDelivery]:
    return admin_only(actor, of_organization(WebhookDelivery, actor.organization_id))


def deliveries_of(endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """The deliveries of an endpoint already read, with their endpoint and event
    (fetched with the page, not a query per delivery)."""
    return (
        of_organization(WebhookDelivery, endpoint.organization_id)
        .filter(endpoint_id=endpoint.id)
        .select_related("endpoint", "event")
    )
