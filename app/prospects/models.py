from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Channel(StrEnum):
    EMAIL = "EMAIL"
    SMS = "SMS"
    PHONE = "PHONE"


class ChangeCause(StrEnum):
    USER = "USER"
    ACTION = "ACTION"
    AUTOMATION = "AUTOMATION"
    SCHEDULER = "SCHEDULER"
    INBOUND = "INBOUND"
    OUT_OF_OFFICE = "OUT_OF_OFFICE"


class ConversationState(StrEnum):
    """Who sent the last message (R7): none yet, we did, or they did."""

    NEW = "NEW"
    AWAITING_REPLY = "AWAITING_REPLY"
    REPLY_NEEDED = "REPLY_NEEDED"


class SuppressionReason(StrEnum):
    UNSUBSCRIBED = "UNSUBSCRIBED"
    OPTED_OUT = "OPTED_OUT"
    HARD_BOUNCE = "HARD_BOUNCE"
    DO_NOT_CONTACT = "DO_NOT_CONTACT"
    COMPLAINT = "COMPLAINT"
    MANUAL = "MANUAL"


class TaskKind(StrEnum):
    CALL = "CALL"
    CALLBACK = "CALLBACK"
    TODO = "TODO"


class Prospect(Model):
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    first_name = fields.CharField(max_length=200, null=True)
    last_name = fields.CharField(max_length=200, null=True)
    # Lower-cased (fields.clean): the stored address is its own key.
    email = fields.CharField(max_length=320, null=True)
    # The organization's own id for this person (a CRM id).
    external_id = fields.CharField(max_length=200, null=True)
    phone = fields.CharField(max_length=32, null=True)
    company = fields.CharField(max_length=200, null=True)
    title = fields.CharField(max_length=200, null=True)
    time_zone = fields.CharField(max_length=64, null=True)
    custom_fields: dict[str, object] = fields.JSONField(default=dict)  # type: ignore[assignment]
    # Lower-cased name, email, phone and company: what ProspectFilter.search matches.
    search_text = fields.TextField(default="")
    status: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Status", on_delete=fields.RESTRICT, related_name=False
    )
    owner: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.User", null=True, on_delete=fields.SET_NULL, related_name=False
    )
    assigned_at = fields.DatetimeField(null=True)
    # When it entered its status (set with the status by app/prospects/statuses.py):
    # with assigned_at, where a status's max assignment time counts from.
    status_entered_at = fields.DatetimeField(null=True)
    pullable_after = fields.DatetimeField(null=True)
    do_not_contact = fields.BooleanField(default=False)
    opted_out_channels: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    unsubscribed_at = fields.DatetimeField(null=True)
    contact_attempts = fields.IntField(default=0)
    last_contact_attempt_at = fields.DatetimeField(null=True)
    contact_made_at = fields.DatetimeField(null=True)
    conversation_state = fields.CharEnumField(ConversationState, max_length=16, default=ConversationState.NEW)
    last_message_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    organization_id: int
    status_id: int
    owner_id: int | None

    class Meta:
        table = "prospect"
        # One person, one record (R12.2); NULLs never collide, on either database.
        unique_together = (("organization_id", "email"), ("organization_id", "external_id"))
        # (organization_id, id): a page of a small organization reads its own rows,
        # not a bigger one's before it, whatever the plan (0029).
        indexes = (
            ("organization_id", "status_id"),
            ("organization_id", "owner_id", "created_at"),
            ("organization_id", "id"),
        )


class Suppression(Model):
    """An address the organization must never contact on a channel (R12.1),
    whichever prospect record carries it. One row per cause, so removing one
    cause (an SMS START undoing a STOP) leaves the others blocking."""

    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    channel = fields.CharEnumField(Channel, max_length=8)
    # Normalized: the lower-cased email address, or the E.164 number.
    address = fields.CharField(max_length=320)
    reason = fields.CharEnumField(SuppressionReason, max_length=16)
    prospect: fields.ForeignKeyNullableRelation[Prospect] = fields.ForeignKeyField(
        "models.Prospect", null=True, on_delete=fields.SET_NULL, related_name=False
    )
    created_by: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.User", null=True, on_delete=fields.SET_NULL, related_name=False
    )
    created_at = fields.DatetimeField()

    organization_id: int
    prospect_id: int | None
    created_by_id: int | None

    class Meta:
        table = "suppression"
        unique_together = (("organization_id", "channel", "address", "reason"),)
        indexes = (("organization_id", "created_at"), ("organization_id", "id"))  # the page, newest first


class Activity(Model):
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    prospect: fields.ForeignKeyRelation[Prospect] = fields.ForeignKeyField(
        "models.Prospect", on_delete=fields.CASCADE, related_name=False
    )
    action: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Action", null=True, on_delete=fields.SET_NULL, related_name=False
    )
    interaction = fields.CharField(max_length=16)
    note = fields.TextField(null=True)
    actor: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.User", null=True, on_delete=fields.SET_NULL, related_name=False
    )
    at = fields.DatetimeField()

    organization_id: int
    prospect_id: int
    action_id: int | None
    actor_id: int | None

    class Meta:
        table = "activity"
        indexes = (("prospect_id",),)  # a prospect's activities (the page's DataLoader)


class StatusChange(Model):
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    prospect: fields.ForeignKeyRelation[Prospect] = fields.ForeignKeyField(
        "models.Prospect", on_delete=fields.CASCADE, related_name=False
    )
    from_status: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Status", null=True, on_delete=fields.RESTRICT, related_name=False
    )
    to_status: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Status", on_delete=fields.RESTRICT, related_name=False
    )
    cause = fields.CharEnumField(ChangeCause, max_length=16)
    actor: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.User", null=True, on_delete=fields.SET_NULL, related_name=False
    )
    note = fields.TextField(null=True)
    at = fields.DatetimeField()

    organization_id: int
    prospect_id: int
    from_status_id: int | None
    to_status_id: int
    actor_id: int | None

    class Meta:
        table = "status_change"
        indexes = (("prospect_id",),)  # a prospect's status history


class Task(Model):
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    prospect: fields.ForeignKeyRelation[Prospect] = fields.ForeignKeyField(
        "models.Prospect", on_delete=fields.CASCADE, related_name=False
    )
    assignee: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.User", null=True, on_delete=fields.SET_NULL, related_name=False
    )
    kind = fields.CharEnumField(TaskKind, max_length=16)
    due_at = fields.DatetimeField()
    completed_at = fields.DatetimeField(null=True)
    note = fields.TextField(null=True)
    created_at = fields.DatetimeField()
    # When the worker announced it due (TASK_DUE): once per task.
    due_announced_at = fields.DatetimeField(null=True)
    # A CALL or TASK step's task: completing it lets the enrollment go on.
    enrollment: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Enrollment", null=True, on_delete=fields.SET_NULL, related_name=False
    )
    step: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.SequenceStep", null=True, on_delete=fields.SET_NULL, related_name=False
    )

    organization_id: int
    prospect_id: int
    assignee_id: int | None
    enrollment_id: int | None
    step_id: int | None

    class Meta:
        table = "task"
        # A prospect's tasks; the organization's in id order (the tasks page).
        indexes = (
            ("organization_id", "due_at"),
            ("due_announced_at", "due_at"),
            ("prospect_id",),
            ("organization_id", "id"),
        )
