"""Enrollments (SPEC R4.2): enroll prospects and move enrollments through the state
machine of app.sequences.state, with the verbs of app.sequences.lifecycle. Every
change writes a StageChange with its cause and reason slug (app.sequences.stages)
and then fires the ENROLLMENT_STAGE_CHANGED rules. Bulk calls process every id
they can and report the others by index: one transaction a call, and an id that
fails changes nothing (every check comes before any write).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from collections.abc import Sequence as Seq
from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from app import bulk
from app.accounts.actor import Actor
from app.automation import rules
from app.errors import DomainError, Field, InvalidInput, NotFound
from app.prospects import service as prospects
from app.prospects.models import ChangeCause
from app.sequences import lifecycle, stages
from app.sequences.lifecycle import steps_of
from app.sequences.models import Enrollment, Sequence, SequenceStep
from app.sequences.service import get_sequence
from app.sequences.stages import Move
from app.sequences.state import RUNNING, SEQUENCE_INACTIVE, Event, Facts, Stage, transition

MAX_BATCH = 1000


async def enroll(
    *,
    actor: Actor,
    sequence_id: int,
    prospect_ids: Seq[int],
    activate: bool | None,
) -> tuple[list[Enrollment], list[DomainError]]:
    """Enrolls each prospect; NOT_FOUND, DO_NOT_CONTACT (its flags, or an address the
    suppression list holds), NO_ADDRESS and ALREADY_ENROLLED are reported by index.
    Starts at once when the sequence is active (unless ``activate`` is false)."""
    if len(prospect_ids) > MAX_BATCH:
        raise InvalidInput(f"At most {MAX_BATCH} ids per call.", ("prospect_ids",))
    sequence = await get_sequence(actor, sequence_id, ("sequence_id",))
    steps = await steps_of(sequence.id)
    if not steps:
        raise InvalidInput("The sequence has no steps.", ("sequence_id",))
    created: list[Enrollment] = []
    errors: list[DomainError] = []
    async with in_transaction():
        # The prospects locked in id order (two calls never wait for each other in a
        # cycle), which of them the sequence has already and which of their addresses
        # are suppressed: three reads for the batch.
        wanted = sorted(set(prospect_ids))
        locked = (
            await prospects.visible(actor).filter(id__in=wanted).order_by("id").select_for_update() if wanted else []
        )
        found = {prospect.id: prospect for prospect in locked}
        await lifecycle.lock_active(sequence)  # whether they start: as it is now, and stays until commit
        enrolled = await lifecycle.enrolled_keys(found, sequence.id)
        suppressed = await lifecycle.suppressed_addresses(locked, steps)
        for index, pk in enumerate(prospect_ids):
            field = ("prospect_ids", index)
            try:
                prospect = found.get(pk)
                if prospect is None:
                    raise NotFound("Prospect", field)
                enrollment = lifecycle.new_enrollment(
                    prospect,
                    sequence,
                    steps,
                    actor=actor,
                    activate=activate,
                    enrolled=enrolled,
                    suppressed=suppressed,
                    field=field,
                )
            except DomainError as error:
                errors.append(error)
                continue
            enrolled.add(lifecycle.active_key(prospect.id, sequence.id))  # a repeat later in the call
            created.append(enrollment)
        moves = await lifecycle.enroll_all(sequence, created, actor=actor, cause=ChangeCause.USER)
        await rules.stages_entered(moves)
    return created, errors


async def _each(
    actor: Actor,
    enrollment_ids: Seq[int],
    change: Callable[[Enrollment], Awaitable[list[Move]]],
) -> tuple[list[Enrollment], list[DomainError]]:
    """Runs ``change`` on each visible enrollment (locked), then the rules of the
    stage changes it made; errors by index."""
    if len(enrollment_ids) > MAX_BATCH:
        raise InvalidInput(f"At most {MAX_BATCH} ids per call.", ("enrollment_ids",))
    changed: list[Enrollment] = []
    errors: list[DomainError] = []
    async with in_transaction():
        for index, pk in enumerate(enrollment_ids):
            field = ("enrollment_ids", index)
            try:
                enrollment = await get_enrollment(actor, pk, field, lock=True)
                try:
                    moves = await change(enrollment)
                except DomainError as error:
                    if error.field is None:  # a refusal of this enrollment, not of an argument
                        error.field = field
                    raise
                await rules.stages_entered(moves)
                changed.append(enrollment)
            except DomainError as error:
                errors.append(error)
    return changed, errors


async def get_enrollment(actor: Actor, enrollment_id: int, field: Field, *, lock: bool = False) -> Enrollment:
    query = Enrollment.filter(id=enrollment_id, organization_id=actor.organization_id)
    if lock:
        query = query.select_for_update()
    enrollment = await query.first()
    if enrollment is None or not await prospects.visible(actor).filter(id=enrollment.prospect_id).exists():
        raise NotFound("Enrollment", field)
    return enrollment


async def activate(*, actor: Actor, enrollment_ids: Seq[int]) -> tuple[list[Enrollment], list[DomainError]]:
    async def change(enrollment: Enrollment) -> list[Move]:
        return await start(enrollment, actor=actor, cause=ChangeCause.USER, reason="activated")

    return await _each(actor, enrollment_ids, change)


async def start(enrollment: Enrollment, *, actor: Actor, cause: ChangeCause, reason: str) -> list[Move]:
    """NOT_STARTED → STARTED: the next step becomes due after its delay. InvalidTransition
    unless NOT_STARTED, or when the sequence is inactive (it is activated first)."""
    active = bool(await lifecycle.active_sequences([enrollment.sequence_id]))
    to = transition(enrollment.stage, Event.ACTIVATE, Facts(active=active))
    started, moves = await start_all(
        enrollment.organization_id,
        enrollment.sequence_id,
        [(enrollment.id, enrollment.prospect_id, enrollment.current_step_id)],
        actor=actor,
        cause=cause,
        reason=reason,
    )
    if enrollment.id in started:
        enrollment.stage, enrollment.due_at = to, started[enrollment.id]
    return moves


async def start_all(
    organization_id: int,
    sequence_id: int,
    waiting: list[tuple[int, int, int | None]],
    *,
    actor: Actor,
    cause: ChangeCause,
    reason: str,
) -> tuple[dict[int, datetime], list[Move]]:
    """Starts those of a sequence's enrollments, given as (id, prospect id, current
    step id), that are still NOT_STARTED, in a few statements whatever their number
    (one compare-and-set per distinct first step, one INSERT of stage changes, one
    of events) and with rows, not models. The started ones' due times, by id, and
    their moves."""
    now = actor.now()
    to = transition(Stage.NOT_STARTED, Event.ACTIVATE)
    by_step: dict[int | None, list[int]] = {}
    prospect_of: dict[int, int] = {}
    for enrollment_id, prospect_id, step_id in waiting:
        by_step.setdefault(step_id, []).append(enrollment_id)
        prospect_of[enrollment_id] = prospect_id
    delays = dict(
        await SequenceStep.filter(id__in=[pk for pk in by_step if pk is not None]).values_list("id", "delay_seconds")
    )
    started: dict[int, datetime] = {}
    for step_id, group in by_step.items():
        due = now + timedelta(seconds=int(delays.get(step_id) or 0))
        changed = await bulk.compare_and_set(
            Enrollment, group, expect={"stage": Stage.NOT_STARTED}, values={"stage": to, "due_at": due}
        )
        started |= dict.fromkeys(changed, due)
    moves = [Move(actor, pk, prospect_of[pk], sequence_id, Stage.NOT_STARTED, to) for pk in started]
    await stages.record(moves, cause=cause, reason=reason, now=now)
    return started, moves


async def pause(*, actor: Actor, enrollment_ids: Seq[int]) -> tuple[list[Enrollment], list[DomainError]]:
    async def change(enrollment: Enrollment) -> list[Move]:
        return await lifecycle.pause([enrollment], actor=actor, cause=ChangeCause.USER, reason="paused")

    return await _each(actor, enrollment_ids, change)


PAUSE_HORIZON = timedelta(days=366)
"""How far ahead a pause may end."""
PAUSED_UNTIL = "paused_until"
"""The reason of a pause until a time that someone set (its resumption's cause is USER)."""


async def pause_until(
    *, actor: Actor, enrollment_ids: Seq[int], until: datetime
) -> tuple[list[Enrollment], list[DomainError]]:
    """Pauses running enrollments until ``until`` (the scheduler resumes them then,
    ``app.sequences.pauses``); a paused one ends its pause then instead, whatever
    paused it. ``until`` is in the future and at most PAUSE_HORIZON ahead (a time
    without an offset is UTC, as every DateTime the API is given)."""
    now = actor.now()
    until = until.astimezone(UTC) if until.tzinfo is not None else until.replace(tzinfo=UTC)
    if until <= now:
        raise InvalidInput(f"until {until.isoformat()} is not in the future (it is now {now.isoformat()}).", ("until",))
    if until > now + PAUSE_HORIZON:
        raise InvalidInput(f"until may be at most {PAUSE_HORIZON.days} days ahead.", ("until",))

    async def change(enrollment: Enrollment) -> list[Move]:
        if enrollment.stage is Stage.PAUSED:
            await lifecycle.pause_again([enrollment], until=until, reason=PAUSED_UNTIL)
            return []
        return await lifecycle.pause(
            [enrollment], actor=actor, cause=ChangeCause.USER, reason=PAUSED_UNTIL, until=until
        )

    return await _each(actor, enrollment_ids, change)


async def resume(*, actor: Actor, enrollment_ids: Seq[int]) -> tuple[list[Enrollment], list[DomainError]]:
    async def change(enrollment: Enrollment) -> list[Move]:
        return await lifecycle.resume([enrollment], actor=actor, cause=ChangeCause.USER, reason="resumed")

    return await _each(actor, enrollment_ids, change)


async def jump(
    *,
    actor: Actor,
    enrollment_ids: Seq[int],
    position: int,
) -> tuple[list[Enrollment], list[DomainError]]:
    """The step at ``position`` (1-based) runs next, at once."""

    async def change(enrollment: Enrollment) -> list[Move]:
        steps = await steps_of(enrollment.sequence_id)
        if not 1 <= position <= len(steps):
            raise InvalidInput(f"position must be between 1 and {len(steps)}.", ("position",))
        step_id = steps[position - 1].id
        return await lifecycle.jump([enrollment], step_id, actor=actor, cause=ChangeCause.USER, reason="jumped")

    return await _each(actor, enrollment_ids, change)


async def finish(
    *,
    actor: Actor,
    enrollment_ids: Seq[int],
    outcome: Stage,
) -> tuple[list[Enrollment], list[DomainError]]:
    async def change(enrollment: Enrollment) -> list[Move]:
        return await lifecycle.finish([enrollment], outcome, actor=actor, cause=ChangeCause.USER, reason="manual")

    return await _each(actor, enrollment_ids, change)


async def remove(*, actor: Actor, enrollment_ids: Seq[int]) -> tuple[list[Enrollment], list[DomainError]]:
    async def change(enrollment: Enrollment) -> list[Move]:
        return await lifecycle.remove([enrollment], actor=actor, cause=ChangeCause.USER, reason="removed")

    return await _each(actor, enrollment_ids, change)


async def set_sequence_active(*, actor: Actor, sequence_id: int, active: bool) -> Sequence:
    """Activating a sequence starts its NOT_STARTED enrollments (R4.2) and resumes
    those its deactivation paused; deactivating it pauses its running ones (reason
    ``sequence_inactive``), so that no enrollment of an inactive sequence is STARTED
    or APPROACHING (R14). Deactivating an inactive sequence again pauses any that
    still run (enrollments from before deactivation paused)."""
    actor.require_manager()
    async with in_transaction():
        sequence = await get_sequence(actor, sequence_id, ("sequence_id",))
        unfinished = Enrollment.filter(sequence_id=sequence.id, finished_at=None)
        if not active:
            # Every unfinished enrollment locked first (PostgreSQL; SQLite runs one
            # writer at a time): a resume, jump or activation in flight, or the
            # scheduler's claim of a due step, commits before they are read again
            # below, and one that comes after finds the sequence inactive. Rows,
            # not values_list: Tortoise drops FOR UPDATE from a values query.
            await unfinished.order_by("id").select_for_update().only("id")
        sequence.active = active
        await sequence.save(update_fields=["active"])  # waits for enrolling in flight (lifecycle.lock_active)
        if active:
            paused = unfinished.filter(stage=Stage.PAUSED, paused_reason=SEQUENCE_INACTIVE)
            moves = await lifecycle.resume(
                await paused.order_by("id").select_for_update(),
                actor=actor,
                cause=ChangeCause.USER,
                reason="sequence_activated",
            )
            waiting = unfinished.filter(stage=Stage.NOT_STARTED)
            _, started = await start_all(
                sequence.organization_id,
                sequence.id,
                await waiting.values_list("id", "prospect_id", "current_step_id"),
                actor=actor,
                cause=ChangeCause.USER,
                reason="sequence_activated",
            )
            moves += started
        else:
            running = unfinished.filter(stage__in=list(RUNNING)).order_by("id").select_for_update()
            moves = await lifecycle.pause(await running, actor=actor, cause=ChangeCause.USER, reason=SEQUENCE_INACTIVE)
        await rules.stages_entered(moves)
    return sequence
