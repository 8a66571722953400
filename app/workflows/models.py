from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from app.prospects.models import Channel
from app.sequences.state import Stage


class SystemStatus(StrEnum):
    NEW = "NEW"
    ATTEMPTING_CONTACT = "ATTEMPTING_CONTACT"
    CONTACTED = "CONTACTED"
    IN_PROGRESS = "IN_PROGRESS"
    WON = "WON"
    LOST = "LOST"
    UNREACHABLE = "UNREACHABLE"
    DO_NOT_CONTACT = "DO_NOT_CONTACT"


class Interaction(StrEnum):
    CALL = "CALL"
    SMS = "SMS"
    EMAIL = "EMAIL"
    IN_PERSON = "IN_PERSON"
    OTHER = "OTHER"


class TriggerEvent(StrEnum):
    PROSPECT_CREATED = "PROSPECT_CREATED"
    STATUS_ENTERED = "STATUS_ENTERED"
    MESSAGE_SENT = "MESSAGE_SENT"
    MESSAGE_RECEIVED = "MESSAGE_RECEIVED"
    ENROLLMENT_STAGE_CHANGED = "ENROLLMENT_STAGE_CHANGED"


class Workflow(Model):
    """A bucket of statuses. Deleting one only marks it deleted (``deleted_at``),
    so that status history keeps naming the statuses it passed through."""

    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    name = fields.CharField(max_length=200)
    position = fields.IntField()
    deleted_at = fields.DatetimeField(null=True)

    organization_id: int

    class Meta:
        table = "workflow"


class Status(Model):
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    workflow: fields.ForeignKeyRelation[Workflow] = fields.ForeignKeyField(
        "models.Workflow", on_delete=fields.CASCADE, related_name=False
    )
    name = fields.CharField(max_length=200)
    position = fields.IntField()
    system_status = fields.CharEnumField(SystemStatus, max_length=32)
    pipeline_percent = fields.IntField(default=0)
    max_assignment_seconds = fields.IntField(null=True)
    # Entering the status finishes the prospect's unfinished enrollments so (R2.5).
    enrollment_outcome: Stage | None = fields.CharEnumField(Stage, max_length=16, null=True)  # type: ignore[assignment]
    deleted_at = fields.DatetimeField(null=True)

    organization_id: int
    workflow_id: int

    class Meta:
        table = "status"


class ActionCategory(Model):
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    name = fields.CharField(max_length=200)

    organization_id: int

    class Meta:
        table = "action_category"


class Action(Model):
    """A disposition. ``operations`` is a list of operation dicts
    (see app.workflows.operations), validated whenever it is saved."""

    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    name = fields.CharField(max_length=200)
    category: fields.ForeignKeyNullableRelation[ActionCategory] = fields.ForeignKeyField(
        "models.ActionCategory", null=True, on_delete=fields.SET_NULL, related_name=False
    )
    interactions: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    operations: list[dict[str, object]] = fields.JSONField(default=list)  # type: ignore[assignment]
    position = fields.IntField(default=0)

    organization_id: int
    category_id: int | None

    class Meta:
        table = "action"


class ActionAvailability(Model):
    """The statuses an action is limited to. An action with none is available everywhere."""

    id = fields.IntField(primary_key=True)
    action: fields.ForeignKeyRelation[Action] = fields.ForeignKeyField(
        "models.Action", on_delete=fields.CASCADE, related_name=False
    )
    status: fields.ForeignKeyRelation[Status] = fields.ForeignKeyField(
        "models.Status", on_delete=fields.CASCADE, related_name=False
    )

    action_id: int
    status_id: int

    class Meta:
        table = "action_availability"
        unique_together = (("action", "status"),)


class AutomationRule(Model):
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    name = fields.CharField(max_length=200)
    enabled = fields.BooleanField(default=True)
    event = fields.CharEnumField(TriggerEvent, max_length=32)
    status: fields.ForeignKeyNullableRelation[Status] = fields.ForeignKeyField(
        "models.Status", null=True, on_delete=fields.CASCADE, related_name=False
    )
    # MESSAGE_SENT / MESSAGE_RECEIVED: the channel to match; ENROLLMENT_STAGE_CHANGED:
    # the stage entered. None matches any.
    channel: Channel | None = fields.CharEnumField(Channel, max_length=8, null=True)  # type: ignore[assignment]
    stage: Stage | None = fields.CharEnumField(Stage, max_length=16, null=True)  # type: ignore[assignment]
    operations: list[dict[str, object]] = fields.JSONField(default=list)  # type: ignore[assignment]
    # The ids of the statuses a prospect must be in, when the event happens, for the
    # rule to run (app.automation.rules); empty: any status. Live statuses of the
    # organization: deleting one a rule names is refused (app.workflows.service).
    only_in_status_ids: list[int] = fields.JSONField(default=list)  # type: ignore[assignment]

    organization_id: int
    status_id: int | None

    class Meta:
        table = "automation_rule"
