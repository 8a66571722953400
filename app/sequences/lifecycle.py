"""Enrollment changes that other domains start: enrolling prospects (one, or a
batch in a few statements), and finishing or pausing a prospect's enrollments
when its status, consent or channels change. Runs inside the caller's
transaction. Every stage change goes through ``record`` (one enrollment) or
``record_all`` (many that moved together), which fire the
ENROLLMENT_STAGE_CHANGED automation rules (app.automation.rules, whose
operations call back into this module)."""

from __future__ import annotations

from collections.abc import Container, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from app import bulk
from app.accounts.actor import Actor
from app.automation import rules  # a cycle, used at call time: rules run operations that go through here
from app.errors import AlreadyEnrolled, DoNotContact
from app.events import log
from app.messaging.models import Message, MessageState
from app.prospects.models import ChangeCause, Channel, Prospect
from app.sequences.events import stage_changed, stage_changed_row
from app.sequences.models import Enrollment, Sequence, SequenceStep, StageChange, StepType
from app.sequences.state import ALLOWED_FROM, UNFINISHED, Event, Facts, Stage, transition
from app.workflows.chain import Chain
from app.workflows.models import TriggerEvent

STEP_CHANNELS = {StepType.EMAIL: Channel.EMAIL, StepType.SMS: Channel.SMS, StepType.CALL: Channel.PHONE}


class Consent(Protocol):
    """What a prospect's consent is read from: a Prospect, or a row of its columns."""

    do_not_contact: bool
    opted_out_channels: list[str]


def blocked_channels(prospect: Consent) -> set[Channel]:
    """The channels Leadline may not use for this prospect (R3.3)."""
    if prospect.do_not_contact:
        return set(Channel)
    return {Channel(c) for c in prospect.opted_out_channels}


async def steps_of(sequence_id: int) -> list[SequenceStep]:
    """A sequence's steps in order (removed ones left out)."""
    return await SequenceStep.filter(sequence_id=sequence_id, deleted_at=None).order_by("position", "id")


async def record(
    enrollment: Enrollment,
    to: Stage,
    *,
    actor: Actor,
    cause: ChangeCause,
    reason: str,
    now: datetime,
    chain: Chain | None = None,
) -> None:
    """Saves the enrollment at stage ``to``, writes its StageChange and fires the
    ENROLLMENT_STAGE_CHANGED rules (R8; ``chain``: the rules that led here).
    Finishing an enrollment cancels its messages still queued (R6.4): they never go out."""
    before = enrollment.stage if enrollment.pk else None
    enrollment.stage = to
    if to not in UNFINISHED:
        enrollment.finished_at = now
        enrollment.due_at = None
        enrollment.active_key = None
        enrollment.paused_stage = enrollment.paused_due_at = None
        await Message.filter(enrollment_id=enrollment.id, state=MessageState.QUEUED).update(
            state=MessageState.CANCELLED, error="the enrollment finished before it was sent"
        )
    await enrollment.save()
    change = stage_change(enrollment, before, to, actor=actor, cause=cause, reason=reason, now=now)
    await change.save()
    await log.record([stage_changed(change, enrollment.prospect_id, enrollment.sequence_id)])
    await rules.events_happened(
        TriggerEvent.ENROLLMENT_STAGE_CHANGED, [(actor, enrollment.prospect_id, to)], chain=chain
    )


def stage_change(
    enrollment: Enrollment,
    before: Stage | None,
    to: Stage,
    *,
    actor: Actor,
    cause: ChangeCause,
    reason: str,
    now: datetime,
) -> StageChange:
    """The (unsaved) history row of one transition."""
    return StageChange(
        **stage_change_row(
            enrollment.organization_id, enrollment.id, before, to, actor=actor, cause=cause, reason=reason, now=now
        )
    )


def stage_change_row(
    organization_id: int,
    enrollment_id: int,
    before: Stage | None,
    to: Stage,
    *,
    actor: Actor,
    cause: ChangeCause,
    reason: str,
    now: datetime,
) -> dict[str, Any]:
    """``stage_change`` as a plain row (field name → value), for bulk inserts."""
    return {
        "organization_id": organization_id,
        "enrollment_id": enrollment_id,
        "from_stage": before,
        "to_stage": to,
        "cause": cause.value,
        "reason": reason,
        "actor_id": actor.user_id,
        "at": now,
    }


def active_key(prospect_id: int, sequence_id: int) -> str:
    """What an unfinished enrollment holds in its unique ``active_key``."""
    return f"{prospect_id}:{sequence_id}"


async def enrolled_keys(prospect_ids: Iterable[int], sequence_id: int) -> set[str]:
    """The active keys of those prospects' unfinished enrollments in the sequence (one read)."""
    keys = [active_key(pk, sequence_id) for pk in prospect_ids]
    return {row["active_key"] for row in await bulk.select_in(Enrollment, ["active_key"], "active_key", keys)}


def new_enrollment(
    prospect: Prospect,
    sequence: Sequence,
    steps: list[SequenceStep],
    *,
    actor: Actor,
    activate: bool | None,
    enrolled: Container[str],
    field: list[str] | None = None,
) -> Enrollment:
    """A locked prospect's enrollment, unsaved: DoNotContact, or AlreadyEnrolled when
    its active key is among ``enrolled`` (the sequence's unfinished enrollments)."""
    channels = {STEP_CHANNELS[s.type] for s in steps if s.type in STEP_CHANNELS}
    if blocked := sorted(channels & blocked_channels(prospect)):
        names = ", ".join(c.value for c in blocked)
        raise DoNotContact(f"The prospect may not be contacted by {names}.", field)
    key = active_key(prospect.id, sequence.id)
    if key in enrolled:
        raise AlreadyEnrolled("The prospect is already in this sequence.", field)
    start = transition(None, Event.ENROLL, Facts(active=sequence.active and activate is not False))
    now = actor.now()
    return Enrollment(
        organization_id=prospect.organization_id,
        prospect_id=prospect.id,
        sequence_id=sequence.id,
        stage=start,
        current_step_id=steps[0].id,
        enrolled_at=now,
        active_key=key,
        due_at=now + timedelta(seconds=steps[0].delay_seconds) if start is Stage.STARTED else None,
    )


async def enroll_one(
    prospect: Prospect,
    sequence: Sequence,
    steps: list[SequenceStep],
    *,
    actor: Actor,
    cause: ChangeCause,
    activate: bool | None,
    field: list[str] | None = None,
    chain: Chain | None = None,
) -> Enrollment:
    """Enrolls a locked prospect; DoNotContact / AlreadyEnrolled before any write."""
    enrolled = await enrolled_keys([prospect.id], sequence.id)
    enrollment = new_enrollment(
        prospect, sequence, steps, actor=actor, activate=activate, enrolled=enrolled, field=field
    )
    await enroll_all(sequence, [enrollment], actor=actor, cause=cause, chain=chain)
    return enrollment


async def enroll_all(
    sequence: Sequence,
    enrollments: list[Enrollment],
    *,
    actor: Actor,
    cause: ChangeCause,
    chain: Chain | None = None,
) -> None:
    """Saves new enrollments of ``sequence`` (from ``new_enrollment``, one start stage
    and time) with their history and events, in a few statements whatever their number."""
    if not enrollments:
        return
    await bulk.insert_returning_ids(enrollments)
    first = enrollments[0]
    await record_all(
        first.organization_id,
        sequence.id,
        [(e.id, e.prospect_id) for e in enrollments],
        None,
        first.stage,
        actor=actor,
        cause=cause,
        reason="enrolled",
        now=first.enrolled_at,
        chain=chain,
    )


async def record_all(
    organization_id: int,
    sequence_id: int,
    moved: list[tuple[int, int]],
    before: Stage | None,
    to: Stage,
    *,
    actor: Actor,
    cause: ChangeCause,
    reason: str,
    now: datetime,
    chain: Chain | None = None,
) -> None:
    """``record``'s history, events and ENROLLMENT_STAGE_CHANGED rules for many
    enrollments of one sequence that went from ``before`` to ``to`` together, given as
    (enrollment id, prospect id): one INSERT of stage changes, one of events."""
    changes = [
        stage_change_row(organization_id, enrollment_id, before, to, actor=actor, cause=cause, reason=reason, now=now)
        for enrollment_id, _ in moved
    ]
    change_ids = await bulk.insert_returning(StageChange, changes)
    await log.record(
        stage_changed_row(change | {"id": change_id}, prospect_id, sequence_id)
        for change, change_id, (_, prospect_id) in zip(changes, change_ids, moved, strict=True)
    )
    entered = [(actor, prospect_id, to) for _, prospect_id in moved]
    await rules.events_happened(TriggerEvent.ENROLLMENT_STAGE_CHANGED, entered, chain=chain)


async def apply(
    enrollment: Enrollment,
    event: Event,
    *,
    actor: Actor,
    cause: ChangeCause,
    reason: str,
    outcome: Stage | None = None,
    chain: Chain | None = None,
) -> None:
    """Moves a locked enrollment through ``event`` (any but ENROLL, ACTIVATE, JUMP,
    which carry more facts): checks the table first, then writes."""
    now = actor.now()
    if event is Event.PAUSE:
        to = transition(enrollment.stage, event)
        enrollment.paused_stage, enrollment.paused_due_at = enrollment.stage, enrollment.due_at
        enrollment.due_at = None
    elif event is Event.RESUME:
        to = transition(enrollment.stage, event, Facts(remembered=enrollment.paused_stage))
        due = enrollment.paused_due_at
        enrollment.due_at = max(due, now) if due is not None else None  # an overdue step is due now
        enrollment.paused_stage = enrollment.paused_due_at = None
    else:
        to = transition(enrollment.stage, event, Facts(outcome=outcome))
    await record(enrollment, to, actor=actor, cause=cause, reason=reason, now=now, chain=chain)


async def for_prospect(
    prospect_id: int,
    event: Event,
    *,
    actor: Actor,
    cause: ChangeCause,
    reason: str,
    outcome: Stage | None = None,
    channel: Channel | None = None,
    sequence_ids: set[int] | None = None,
    chain: Chain | None = None,
) -> list[Enrollment]:
    """Applies ``event`` to each of the prospect's unfinished enrollments that it
    applies to (only those whose sequence uses ``channel``, or is one of
    ``sequence_ids``, when given)."""
    enrollments = await Enrollment.filter(prospect_id=prospect_id, finished_at=None).select_for_update().order_by("id")
    if sequence_ids is not None:
        enrollments = [e for e in enrollments if e.sequence_id in sequence_ids]
    if channel is not None:
        types = [t for t, c in STEP_CHANNELS.items() if c is channel]
        steps = await SequenceStep.filter(
            sequence_id__in=[e.sequence_id for e in enrollments], type__in=types, deleted_at=None
        ).only("sequence_id")
        using = {step.sequence_id for step in steps}
        enrollments = [e for e in enrollments if e.sequence_id in using]
    changed = []
    for enrollment in enrollments:
        if enrollment.stage in ALLOWED_FROM[event]:
            await apply(enrollment, event, actor=actor, cause=cause, reason=reason, outcome=outcome, chain=chain)
            changed.append(enrollment)
    return changed
