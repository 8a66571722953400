"""Enrollments (SPEC R4.2): enroll prospects and move enrollments through the state
machine of app.sequences.state. Every change writes a StageChange with its cause
and reason slug. Bulk calls process every id they can and report the others by
index: one transaction a call, and an id that fails changes nothing (every
check comes before any write).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from collections.abc import Sequence as Seq
from datetime import datetime, timedelta

from tortoise.transactions import in_transaction

from app import ids
from app.accounts.actor import Actor
from app.errors import DomainError, InvalidInput, NotFound
from app.prospects import service as prospects
from app.prospects.models import ChangeCause, Channel, Prospect
from app.sequences.models import Enrollment, Sequence, SequenceStep, StageChange, StepType
from app.sequences.service import get_sequence, live_steps
from app.sequences.state import Event, Facts, Stage, transition

MAX_BATCH = 1000
STEP_CHANNELS = {StepType.EMAIL: Channel.EMAIL, StepType.SMS: Channel.SMS, StepType.CALL: Channel.PHONE}


class DoNotContact(DomainError):
    code = "DO_NOT_CONTACT"


class AlreadyEnrolled(DomainError):
    code = "ALREADY_ENROLLED"


def blocked_channels(prospect: Prospect) -> set[Channel]:
    """The channels Leadline may not use for this prospect (R3.3)."""
    if prospect.do_not_contact:
        return set(Channel)
    return {Channel(c) for c in prospect.opted_out_channels}


async def record(
    enrollment: Enrollment,
    to: Stage,
    *,
    actor: Actor,
    cause: ChangeCause,
    reason: str,
    now: datetime,
) -> None:
    """Saves the enrollment at stage ``to`` and writes its StageChange."""
    before = enrollment.stage if enrollment.pk else None
    enrollment.stage = to
    if to not in (Stage.NOT_STARTED, Stage.STARTED, Stage.APPROACHING, Stage.PAUSED):
        enrollment.finished_at = now
        enrollment.due_at = None
        enrollment.active_key = None
    await enrollment.save()
    await StageChange.create(
        organization_id=enrollment.organization_id,
        enrollment_id=enrollment.id,
        from_stage=before,
        to_stage=to,
        cause=cause.value,
        reason=reason,
        actor_id=actor.user_id,
        at=now,
    )


async def enroll(
    *,
    actor: Actor,
    sequence_id: str,
    prospect_ids: Seq[str],
    activate: bool | None,
) -> tuple[list[Enrollment], list[DomainError]]:
    """Enrolls each prospect; NOT_FOUND, DO_NOT_CONTACT and ALREADY_ENROLLED are
    reported by index. Starts at once when the sequence is active (unless
    ``activate`` is false)."""
    if len(prospect_ids) > MAX_BATCH:
        raise InvalidInput(f"At most {MAX_BATCH} ids per call.", ["input", "prospectIds"])
    sequence = await get_sequence(actor, sequence_id, ["input", "sequenceId"])
    steps = await live_steps(sequence.id)
    if not steps:
        raise InvalidInput("The sequence has no steps.", ["input", "sequenceId"])
    channels = {STEP_CHANNELS[s.type] for s in steps if s.type in STEP_CHANNELS}
    start = transition(None, Event.ENROLL, Facts(active=sequence.active and activate is not False))
    created: list[Enrollment] = []
    errors: list[DomainError] = []
    async with in_transaction():
        for index, global_id in enumerate(prospect_ids):
            field = ["input", "prospectIds", str(index)]
            try:
                prospect = await prospects.get_prospect(actor, global_id, field, lock=True)
                if blocked := sorted(channels & blocked_channels(prospect)):
                    names = ", ".join(c.value for c in blocked)
                    raise DoNotContact(f"The prospect may not be contacted by {names}.", field)
                key = f"{prospect.id}:{sequence.id}"
                if await Enrollment.filter(active_key=key).exists():
                    raise AlreadyEnrolled("The prospect is already in this sequence.", field)
                now = actor.now()
                enrollment = Enrollment(
                    organization_id=actor.organization_id,
                    prospect_id=prospect.id,
                    sequence_id=sequence.id,
                    stage=start,
                    current_step_id=steps[0].id,
                    enrolled_at=now,
                    active_key=key,
                    due_at=now + timedelta(seconds=steps[0].delay_seconds) if start is Stage.STARTED else None,
                )
                await record(enrollment, start, actor=actor, cause=ChangeCause.USER, reason="enrolled", now=now)
                created.append(enrollment)
            except DomainError as error:
                errors.append(error)
    return created, errors


async def _each(
    actor: Actor,
    enrollment_ids: Seq[str],
    change: Callable[[Enrollment], Awaitable[None]],
) -> tuple[list[Enrollment], list[DomainError]]:
    """Runs ``change`` on each visible enrollment (locked); errors by index."""
    if len(enrollment_ids) > MAX_BATCH:
        raise InvalidInput(f"At most {MAX_BATCH} ids per call.", ["input", "ids"])
    changed: list[Enrollment] = []
    errors: list[DomainError] = []
    async with in_transaction():
        for index, global_id in enumerate(enrollment_ids):
            field = ["input", "ids", str(index)]
            try:
                enrollment = await get_enrollment(actor, global_id, field, lock=True)
                try:
                    await change(enrollment)
                except DomainError as error:
                    if error.field is None:
                        error.at(*field)
                    raise
                changed.append(enrollment)
            except DomainError as error:
                errors.append(error)
    return changed, errors


async def get_enrollment(actor: Actor, global_id: str, field: list[str], *, lock: bool = False) -> Enrollment:
    pk = ids.decode_as("Enrollment", global_id)
    query = Enrollment.filter(id=pk, organization_id=actor.organization_id)
    if lock:
        query = query.select_for_update()
    enrollment = None if pk is None else await query.first()
    if enrollment is None or not await prospects.visible(actor).filter(id=enrollment.prospect_id).exists():
        raise NotFound("Enrollment", field)
    return enrollment


async def activate(*, actor: Actor, enrollment_ids: Seq[str]) -> tuple[list[Enrollment], list[DomainError]]:
    async def change(enrollment: Enrollment) -> None:
        await start(enrollment, actor=actor, cause=ChangeCause.USER, reason="activated")

    return await _each(actor, enrollment_ids, change)


async def start(enrollment: Enrollment, *, actor: Actor, cause: ChangeCause, reason: str) -> None:
    """NOT_STARTED → STARTED: the next step becomes due after its delay."""
    to = transition(enrollment.stage, Event.ACTIVATE)
    now = actor.now()
    step = await SequenceStep.get_or_none(id=enrollment.current_step_id) if enrollment.current_step_id else None
    enrollment.due_at = now + timedelta(seconds=step.delay_seconds if step else 0)
    await record(enrollment, to, actor=actor, cause=cause, reason=reason, now=now)


async def pause(*, actor: Actor, enrollment_ids: Seq[str]) -> tuple[list[Enrollment], list[DomainError]]:
    async def change(enrollment: Enrollment) -> None:
        to = transition(enrollment.stage, Event.PAUSE)
        enrollment.paused_stage, enrollment.paused_due_at = enrollment.stage, enrollment.due_at
        enrollment.due_at = None
        await record(enrollment, to, actor=actor, cause=ChangeCause.USER, reason="paused", now=actor.now())

    return await _each(actor, enrollment_ids, change)


async def resume(*, actor: Actor, enrollment_ids: Seq[str]) -> tuple[list[Enrollment], list[DomainError]]:
    async def change(enrollment: Enrollment) -> None:
        to = transition(enrollment.stage, Event.RESUME, Facts(remembered=enrollment.paused_stage))
        now = actor.now()
        due = enrollment.paused_due_at
        enrollment.due_at = max(due, now) if due is not None else None  # an overdue step is due now
        enrollment.paused_stage = enrollment.paused_due_at = None
        await record(enrollment, to, actor=actor, cause=ChangeCause.USER, reason="resumed", now=now)

    return await _each(actor, enrollment_ids, change)


async def jump(
    *,
    actor: Actor,
    enrollment_ids: Seq[str],
    position: int,
) -> tuple[list[Enrollment], list[DomainError]]:
    """The step at ``position`` (1-based) runs next, at once."""

    async def change(enrollment: Enrollment) -> None:
        steps = await live_steps(enrollment.sequence_id)
        if not 1 <= position <= len(steps):
            raise InvalidInput(f"position must be between 1 and {len(steps)}.", ["input", "position"])
        to = transition(enrollment.stage, Event.JUMP, Facts(has_run_a_step=enrollment.last_step_at is not None))
        now = actor.now()
        enrollment.current_step_id = steps[position - 1].id
        enrollment.due_at = now
        enrollment.paused_stage = enrollment.paused_due_at = None
        await record(enrollment, to, actor=actor, cause=ChangeCause.USER, reason="jumped", now=now)

    return await _each(actor, enrollment_ids, change)


async def finish(
    *,
    actor: Actor,
    enrollment_ids: Seq[str],
    outcome: Stage,
) -> tuple[list[Enrollment], list[DomainError]]:
    async def change(enrollment: Enrollment) -> None:
        await finish_one(enrollment, outcome, actor=actor, cause=ChangeCause.USER, reason="manual")

    return await _each(actor, enrollment_ids, change)


async def finish_one(enrollment: Enrollment, outcome: Stage, *, actor: Actor, cause: ChangeCause, reason: str) -> None:
    to = transition(enrollment.stage, Event.FINISH, Facts(outcome=outcome))
    await record(enrollment, to, actor=actor, cause=cause, reason=reason, now=actor.now())


async def remove(*, actor: Actor, enrollment_ids: Seq[str]) -> tuple[list[Enrollment], list[DomainError]]:
    async def change(enrollment: Enrollment) -> None:
        to = transition(enrollment.stage, Event.REMOVE)
        await record(enrollment, to, actor=actor, cause=ChangeCause.USER, reason="removed", now=actor.now())

    return await _each(actor, enrollment_ids, change)


async def set_sequence_active(*, actor: Actor, sequence_id: str, active: bool) -> Sequence:
    """Activating a sequence starts its NOT_STARTED enrollments (R4.2)."""
    actor.require_manager()
    async with in_transaction():
        sequence = await get_sequence(actor, sequence_id, ["input", "id"])
        sequence.active = active
        await sequence.save(update_fields=["active"])
        if active:
            waiting = await Enrollment.filter(sequence_id=sequence.id, stage=Stage.NOT_STARTED).select_for_update()
            for enrollment in waiting:
                await start(enrollment, actor=actor, cause=ChangeCause.USER, reason="sequence_activated")
    return sequence
