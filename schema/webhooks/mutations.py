"""Webhook endpoints and their deliveries (contract part 30), ADMIN only."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry

from app.accounts.models import Role
from app.config import Settings
from app.errors import InvalidInput
from app.events.models import EventType
from app.webhooks import models, service
from app.webhooks.models import DeliveryState
from app.workflows.service import UNCHANGED
from schema.context import Info
from schema.events.types import Event
from schema.relay import Connection, Node, UserError, guarded, paginate
from schema.types import _gid

strawberry.enum(DeliveryState)


@strawberry.type
class WebhookEndpoint(Node):
    row: strawberry.Private[models.WebhookEndpoint]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return _gid("WebhookEndpoint", self.row.id)

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
        query = models.WebhookDelivery.filter(
            endpoint_id=self.row.id, organization_id=self.row.organization_id
        ).select_related("endpoint", "event")  # fetched with the page, not a query per delivery
        return await paginate(query, first, after, lambda r: WebhookDelivery(row=r))


@strawberry.type
class WebhookDelivery(Node):
    row: strawberry.Private[models.WebhookDelivery]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return _gid("WebhookDelivery", self.row.id)

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


async def endpoints(info: Info) -> list[WebhookEndpoint]:
    """The organization's endpoints (empty for roles other than ADMIN)."""
    actor = info.context.actor
    if actor.role is not Role.ADMIN:
        return []
    rows = await models.WebhookEndpoint.filter(organization_id=actor.organization_id).order_by("id")
    return [WebhookEndpoint(row=r) for r in rows]


async def node(info: Info, type_name: str, pk: int) -> Node | None:
    actor = info.context.actor
    if actor.role is not Role.ADMIN:
        return None
    if type_name == "WebhookEndpoint":
        endpoint = await models.WebhookEndpoint.get_or_none(id=pk, organization_id=actor.organization_id)
        return WebhookEndpoint(row=endpoint) if endpoint else None
    delivery = await models.WebhookDelivery.get_or_none(id=pk, organization_id=actor.organization_id).select_related(
        "endpoint", "event"
    )
    return WebhookDelivery(row=delivery) if delivery else None


@strawberry.input
class CreateWebhookEndpointInput:
    url: str
    event_types: list[EventType] | None = None


@strawberry.type(description="`secret` (whsec_...) is shown once, here.")
class CreateWebhookEndpointPayload:
    webhook_endpoint: WebhookEndpoint | None = None
    secret: str | None = None
    errors: list[UserError]


@strawberry.input
class UpdateWebhookEndpointInput:
    id: strawberry.ID
    url: str | None = strawberry.UNSET
    event_types: list[EventType] | None = strawberry.UNSET
    enabled: bool | None = strawberry.UNSET


@strawberry.type
class UpdateWebhookEndpointPayload:
    webhook_endpoint: WebhookEndpoint | None = None
    errors: list[UserError]


@strawberry.input
class DeleteWebhookEndpointInput:
    id: strawberry.ID


@strawberry.type
class DeleteWebhookEndpointPayload:
    deleted_id: strawberry.ID | None = None
    errors: list[UserError]


@strawberry.input(description="The old secret keeps signing alongside the new one for 24 hours.")
class RotateWebhookSecretInput:
    id: strawberry.ID


@strawberry.type
class RotateWebhookSecretPayload:
    webhook_endpoint: WebhookEndpoint | None = None
    secret: str | None = None
    errors: list[UserError]


def _settings(info: Info) -> Settings:
    return cast(Settings, info.context.request.app.state.settings)


def _given(value: Any) -> Any:
    """An input field left out keeps the stored value; null for a list means every type."""
    return UNCHANGED if value is strawberry.UNSET else value


@strawberry.type
class WebhookMutations:
    @strawberry.mutation
    async def create_webhook_endpoint(
        self, info: Info, input: CreateWebhookEndpointInput
    ) -> CreateWebhookEndpointPayload:
        async def run() -> dict[str, Any]:
            made = await service.create_endpoint(info.context.actor, _settings(info), input.url, input.event_types)
            return {"webhook_endpoint": WebhookEndpoint(row=made.endpoint), "secret": made.secret}

        return await guarded(info, CreateWebhookEndpointPayload, run)

    @strawberry.mutation
    async def update_webhook_endpoint(
        self, info: Info, input: UpdateWebhookEndpointInput
    ) -> UpdateWebhookEndpointPayload:
        async def run() -> dict[str, Any]:
            if input.url is None or input.enabled is None:
                field = "url" if input.url is None else "enabled"
                raise InvalidInput(f"`{field}` cannot be null.", ["input", field])
            endpoint = await service.update_endpoint(
                info.context.actor,
                _settings(info),
                input.id,
                url=_given(input.url),
                event_types=_given(input.event_types),
                enabled=_given(input.enabled),
            )
            return {"webhook_endpoint": WebhookEndpoint(row=endpoint)}

        return await guarded(info, UpdateWebhookEndpointPayload, run)

    @strawberry.mutation
    async def delete_webhook_endpoint(
        self, info: Info, input: DeleteWebhookEndpointInput
    ) -> DeleteWebhookEndpointPayload:
        async def run() -> dict[str, Any]:
            deleted = await service.delete_endpoint(info.context.actor, input.id)
            return {"deleted_id": _gid("WebhookEndpoint", deleted)}

        return await guarded(info, DeleteWebhookEndpointPayload, run)

    @strawberry.mutation
    async def rotate_webhook_secret(self, info: Info, input: RotateWebhookSecretInput) -> RotateWebhookSecretPayload:
        async def run() -> dict[str, Any]:
            made = await service.rotate_secret(info.context.actor, _settings(info), input.id)
            return {"webhook_endpoint": WebhookEndpoint(row=made.endpoint), "secret": made.secret}

        return await guarded(info, RotateWebhookSecretPayload, run)
