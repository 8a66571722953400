"""Webhook endpoint mutations (contract part 30), ADMIN only."""

from __future__ import annotations

from typing import Any

import strawberry

from app.config import Settings
from app.errors import InvalidInput
from app.events.models import EventType
from app.webhooks import service
from app.workflows.service import UNCHANGED
from schema.context import Info
from schema.errors import UserError, guarded
from schema.node import global_id, pk
from schema.webhooks.types import WebhookEndpoint


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
    return info.context.settings


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
            made = await service.create_endpoint(
                actor=info.context.actor, settings=_settings(info), url=input.url, event_types=input.event_types
            )
            return {"webhook_endpoint": WebhookEndpoint(row=made.endpoint), "secret": made.secret}

        return await guarded(info, CreateWebhookEndpointPayload, run)

    @strawberry.mutation
    async def update_webhook_endpoint(
        self, info: Info, input: UpdateWebhookEndpointInput
    ) -> UpdateWebhookEndpointPayload:
        async def run() -> dict[str, Any]:
            if input.url is None or input.enabled is None:
                field = "url" if input.url is None else "enabled"
                raise InvalidInput(f"`{field}` cannot be null.", (field,))
            endpoint = await service.update_endpoint(
                actor=info.context.actor,
                settings=_settings(info),
                endpoint_id=pk("WebhookEndpoint", input.id),
                url=_given(input.url),
                event_types=_given(input.event_types),
                enabled=_given(input.enabled),
            )
            return {"webhook_endpoint": WebhookEndpoint(row=endpoint)}

        return await guarded(info, UpdateWebhookEndpointPayload, run, {"endpoint_id": "id"})

    @strawberry.mutation
    async def delete_webhook_endpoint(
        self, info: Info, input: DeleteWebhookEndpointInput
    ) -> DeleteWebhookEndpointPayload:
        async def run() -> dict[str, Any]:
            deleted = await service.delete_endpoint(
                actor=info.context.actor, endpoint_id=pk("WebhookEndpoint", input.id)
            )
            return {"deleted_id": global_id("WebhookEndpoint", deleted)}

        return await guarded(info, DeleteWebhookEndpointPayload, run, {"endpoint_id": "id"})

    @strawberry.mutation
    async def rotate_webhook_secret(self, info: Info, input: RotateWebhookSecretInput) -> RotateWebhookSecretPayload:
        async def run() -> dict[str, Any]:
            made = await service.rotate_secret(
                actor=info.context.actor, settings=_settings(info), endpoint_id=pk("WebhookEndpoint", input.id)
            )
            return {"webhook_endpoint": WebhookEndpoint(row=made.endpoint), "secret": made.secret}

        return await guarded(info, RotateWebhookSecretPayload, run, {"endpoint_id": "id"})
