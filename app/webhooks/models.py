from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class DeliveryState(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    DEAD = "DEAD"


class WebhookEndpoint(Model):
    """A URL that receives the events of an organization, signed with its secret
    (Standard Webhooks). After a rotation the previous secret keeps signing too
    until previous_secret_expires_at. Empty event_types means every type."""

    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    url = fields.CharField(max_length=2000)
    event_types: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    enabled = fields.BooleanField(default=True)
    disabled_reason = fields.CharField(max_length=300, null=True)
    secret = fields.CharField(max_length=100)
    previous_secret = fields.CharField(max_length=100, null=True)
    previous_secret_expires_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    organization_id: int

    class Meta:
        table = "webhook_endpoint"


class WebhookDelivery(Model):
    """One event owed to one endpoint. The database holds the retry schedule:
    next_attempt_at is when the worker tries next (a claimed delivery has it moved
    ahead by a lease, so a killed worker only delays it)."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    endpoint: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.WebhookEndpoint", on_delete=fields.CASCADE, related_name=False
    )
    event: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Event", on_delete=fields.CASCADE, related_name=False
    )
    state = fields.CharEnumField(DeliveryState, max_length=10, default=DeliveryState.PENDING)
    attempts = fields.IntField(default=0)
    last_status_code = fields.IntField(null=True)
    last_error = fields.CharField(max_length=300, null=True)
    next_attempt_at = fields.DatetimeField(null=True)
    delivered_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    organization_id: int
    endpoint_id: int
    event_id: int

    class Meta:
        table = "webhook_delivery"
        unique_together = (("endpoint", "event"),)
        indexes = (("state", "next_attempt_at"),)
