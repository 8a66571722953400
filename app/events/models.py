from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class EventType(StrEnum):
    PROSPECT_CREATED = "PROSPECT_CREATED"
    PROSPECT_UPDATED = "PROSPECT_UPDATED"
    PROSPECT_DELETED = "PROSPECT_DELETED"
    STATUS_CHANGED = "STATUS_CHANGED"
    STAGE_CHANGED = "STAGE_CHANGED"
    MESSAGE_SENT = "MESSAGE_SENT"
    MESSAGE_RECEIVED = "MESSAGE_RECEIVED"
    MESSAGE_BOUNCED = "MESSAGE_BOUNCED"
    TASK_CREATED = "TASK_CREATED"
    TASK_DUE = "TASK_DUE"
    TASK_COMPLETED = "TASK_COMPLETED"
    ASSIGNMENT_CHANGED = "ASSIGNMENT_CHANGED"
    SUPPRESSION_REMOVED = "SUPPRESSION_REMOVED"


class Event(Model):
    """One entry of the append-only event log of an organization (R10.1), written in
    the transaction of the change it records. ``seq`` (the cursor) is given by the
    sequencer once the event is committed, in the order events become visible,
    so a reader resuming after a cursor never skips one committed late. The
    subjects are plain ids, not foreign keys: erasing a prospect leaves its
    events with ids only (their payloads carry ids and facts, no personal data)."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    seq = fields.BigIntField(null=True, unique=True)
    type = fields.CharEnumField(EventType, max_length=24)
    at = fields.DatetimeField()
    prospect_id = fields.IntField(null=True)
    status_change_id = fields.IntField(null=True)
    stage_change_id = fields.IntField(null=True)
    message_id = fields.IntField(null=True)
    task_id = fields.IntField(null=True)
    payload: dict[str, object] = fields.JSONField()  # type: ignore[assignment]

    organization_id: int

    class Meta:
        table = "event"
        indexes = (("organization_id", "seq"),)


class EventRelay(Model):
    """The relay position: the highest cursor published to subscribers and turned
    into webhook deliveries. One row; the relay updates it in the transaction that
    creates the deliveries, so each event gets them once."""

    id = fields.IntField(primary_key=True)
    published_seq = fields.BigIntField(default=0)

    class Meta:
        table = "event_relay"
