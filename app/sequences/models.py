from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from app.sequences.state import Stage


class StepType(StrEnum):
    EMAIL = "EMAIL"
    SMS = "SMS"
    CALL = "CALL"
    TASK = "TASK"


class Sequence(Model):
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    name = fields.CharField(max_length=200)
    active = fields.BooleanField(default=False)
    stop_on_reply = fields.BooleanField(default=True)
    unresponsive_after_seconds = fields.IntField(default=604800)
    send_window: dict[str, object] | None = fields.JSONField(null=True)  # type: ignore[assignment]
    created_at = fields.DatetimeField()

    organization_id: int

    class Meta:
        table = "sequence"


class SequenceStep(Model):
    """One step. Removing a step only marks it removed (``deleted_at``): the
    messages and tasks it made keep pointing at it."""

    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    sequence: fields.ForeignKeyRelation[Sequence] = fields.ForeignKeyField(
        "models.Sequence", on_delete=fields.CASCADE, related_name=False
    )
    position = fields.IntField()
    type = fields.CharEnumField(StepType, max_length=8)
    delay_seconds = fields.IntField(default=0)
    subject = fields.TextField(null=True)
    body = fields.TextField()
    # EMAIL: goes out as a reply in the thread of the enrollment's previous email.
    thread_with_previous = fields.BooleanField(default=False, db_default=False)
    deleted_at = fields.DatetimeField(null=True)

    organization_id: int
    sequence_id: int

    class Meta:
        table = "sequence_step"


class Enrollment(Model):
    """A prospect in a sequence. ``active_key`` is set while unfinished, and unique:
    a prospect has at most one unfinished enrollment per sequence."""

    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    prospect: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Prospect", on_delete=fields.CASCADE, related_name=False
    )
    sequence: fields.ForeignKeyRelation[Sequence] = fields.ForeignKeyField(
        "models.Sequence", on_delete=fields.CASCADE, related_name=False
    )
    stage = fields.CharEnumField(Stage, max_length=16)
    # PAUSED remembers the stage and the due time it paused, and why (its stage
    # change's reason: ``sequence_inactive`` is resumed by reactivating the sequence).
    paused_stage: Stage | None = fields.CharEnumField(Stage, max_length=16, null=True)  # type: ignore[assignment]
    paused_due_at = fields.DatetimeField(null=True)
    paused_reason = fields.CharField(max_length=64, null=True)
    # A pause that ends by itself: the scheduler resumes it then (set only while PAUSED).
    resumes_at = fields.DatetimeField(null=True)
    # The step that runs next (None when none is left).
    current_step: fields.ForeignKeyNullableRelation[SequenceStep] = fields.ForeignKeyField(
        "models.SequenceStep", null=True, on_delete=fields.SET_NULL, related_name=False
    )
    # When the scheduler has work for it: the next step, or the unresponsive deadline.
    due_at = fields.DatetimeField(null=True)
    last_step_at = fields.DatetimeField(null=True)
    # A CALL or TASK step ran: the enrollment waits until this task is completed.
    waiting_task_id = fields.IntField(null=True)
    last_email_at = fields.DatetimeField(null=True)
    enrolled_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)
    active_key = fields.CharField(max_length=64, null=True, unique=True)

    organization_id: int
    prospect_id: int
    sequence_id: int
    current_step_id: int | None

    class Meta:
        table = "enrollment"
        # The scheduler's index on due_at is partial (only rows with a due time: a
        # finished enrollment leaves it), made in migration 0006 with raw SQL; so is
        # its index on resumes_at (only pauses that end by themselves), 0027.
        # A prospect's enrollments; the organization's in id order (the page), 0029.
        indexes = (("organization_id", "sequence_id"), ("prospect_id",), ("organization_id", "id"))


class StageChange(Model):
    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    enrollment: fields.ForeignKeyRelation[Enrollment] = fields.ForeignKeyField(
        "models.Enrollment", on_delete=fields.CASCADE, related_name=False
    )
    from_stage = fields.CharEnumField(Stage, max_length=16, null=True)
    to_stage = fields.CharEnumField(Stage, max_length=16)
    cause = fields.CharField(max_length=16)
    reason = fields.CharField(max_length=64, null=True)
    actor: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.User", null=True, on_delete=fields.SET_NULL, related_name=False
    )
    at = fields.DatetimeField()

    organization_id: int
    enrollment_id: int
    actor_id: int | None

    class Meta:
        table = "stage_change"
        indexes = (("enrollment_id",),)  # an enrollment's history
