"""Managing webhook endpoints (ADMIN only): create, update, delete, rotate the
secret. A secret is returned once, by create and rotate, and stored sealed
(app/webhooks/sealing.py); a rotation keeps the old secret signing beside the
new one for ROTATION_OVERLAP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tortoise.transactions import in_transaction

from app.accounts.actor import Actor
from app.config import Settings
from app.errors import InvalidInput
from app.events.models import EventType
from app.webhooks import sealing, signing, targets
from app.webhooks.models import WebhookEndpoint
from app.workflows.service import UNCHANGED, get_owned

ROTATION_OVERLAP = timedelta(hours=24)
MAX_ENDPOINTS = 20


@dataclass(frozen=True)
class WithSecret:
    endpoint: WebhookEndpoint
    secret: str


async def _checked_url(url: str, settings: Settings) -> str:
    await targets.resolve(url, allow_private=settings.webhook_allow_private)
    return url.strip()


def _types(event_types: list[EventType] | None) -> list[str]:
    return sorted({EventType(t).value for t in event_types or []})


async def create_endpoint(
    *, actor: Actor, settings: Settings, url: str, event_types: list[EventType] | None
) -> WithSecret:
    actor.require_admin()
    if await WebhookEndpoint.filter(organization_id=actor.organization_id).count() >= MAX_ENDPOINTS:
        raise InvalidInput(f"An organization has at most {MAX_ENDPOINTS} webhook endpoints.", targets.URL_FIELD)
    secret = signing.new_secret()
    checked = await _checked_url(url, settings)
    async with in_transaction():
        endpoint = await WebhookEndpoint.create(
            organization_id=actor.organization_id,
            url=checked,
            event_types=_types(event_types),
            secret="",  # sealed below: the sealing binds the row's id
            created_at=actor.now(),
        )
        endpoint.secret = sealing.seal(secret, secret_key=settings.secret_key, endpoint_id=endpoint.id, column="secret")
        await endpoint.save(update_fields=["secret"])
    return WithSecret(endpoint, secret)


async def get_endpoint(actor: Actor, endpoint_id: int) -> WebhookEndpoint:
    actor.require_admin()
    return await get_owned(actor, WebhookEndpoint, endpoint_id, ("endpoint_id",))


async def update_endpoint(
    *,
    actor: Actor,
    settings: Settings,
    endpoint_id: int,
    url: Any = UNCHANGED,
    event_types: Any = UNCHANGED,
    enabled: Any = UNCHANGED,
) -> WebhookEndpoint:
    """Enabling an endpoint clears the reason it was disabled; its deliveries
    still owed resume on their schedule."""
    endpoint = await get_endpoint(actor, endpoint_id)
    if url is not UNCHANGED:
        endpoint.url = await _checked_url(url, settings)
    if event_types is not UNCHANGED:
        endpoint.event_types = _types(event_types)
    if enabled is not UNCHANGED:
        endpoint.enabled = bool(enabled)
        endpoint.disabled_reason = None if enabled else "Disabled through the API."
    await endpoint.save()
    return endpoint


async def delete_endpoint(*, actor: Actor, endpoint_id: int) -> int:
    """Deletes the endpoint and its deliveries; its id."""
    endpoint = await get_endpoint(actor, endpoint_id)
    await endpoint.delete()
    return endpoint.id


async def rotate_secret(*, actor: Actor, settings: Settings, endpoint_id: int) -> WithSecret:
    """A new secret; the current one signs beside it for ROTATION_OVERLAP. The row is
    locked: of two rotations at once, the second keeps the first's secret as previous."""
    async with in_transaction():
        owned = await get_endpoint(actor, endpoint_id)
        endpoint = await WebhookEndpoint.filter(id=owned.id).select_for_update().get()
        secret = signing.new_secret()
        sealing.rotate(endpoint, secret, secret_key=settings.secret_key)
        endpoint.previous_secret_expires_at = actor.now() + ROTATION_OVERLAP
        await endpoint.save()
    return WithSecret(endpoint, secret)
