"""Enrollment changes: enrolling prospects (one, or a batch in a few statements),
the verbs that move enrollments (pause, resume, jump, finish, remove, time out,
fail, and start or resume a prospect's), and moving a prospect's enrollments when its status, consent or channels
change. Each verb checks the state table (``app.sequences.state``) for every
enrollment it is given, then saves them and records the moves through the one
writer of stage changes, ``app.sequences.stages.record``. Runs inside the
caller's transaction, on locked rows, and runs no automation: a caller fires
the ENROLLMENT_STAGE_CHANGED rules after, with the moves a function returns."""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from collections.abc import Sequence as Seq
from datetime import datetime, timedelta
from typing import Protocol

from tortoise import connections

from app import bulk
from app.accounts.actor import Actor
from app.errors import AlreadyEnrolled, DoNotContact, Field, InvalidTransition, NoAddress
from app.prospects import suppressions  # a cycle, used at call time: suppressing finishes enrollments
from app.prospects.models import ChangeCause, Channel, Prospect
from app.sequences import stages
from app.sequences.models import Enrollment, Sequence, SequenceStep, StepType
from app.sequences.stages import Move
from app.sequences.state import ALLOWED_FROM, FINISHED, SEQUENCE_INACTIVE, STARTS, Event, Facts, Stage, transition

STEP_CHANNELS = {StepType.EMAIL: Channel.EMAIL, StepType.SMS: Channel.SMS, StepType.CALL: Channel.PHONE}
MESSAGE_STEPS = (StepType.EMAIL, StepType.SMS)


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


def active_key(prospect_id: int, sequence_id: int) -> str:
    """What an unfinished enrollment holds in its unique ``active_key``."""
    return f"{prospect_id}:{sequence_id}"


async def enrolled_keys(prospect_ids: Iterable[int], sequence_id: int) -> set[str]:
    """The active keys of those prospects' unfinished enrollments in the sequence (one read)."""
    keys = [active_key(pk, sequence_id) for pk in prospect_ids]
    return {row["active_key"] for row in await bulk.select_in(Enrollment, ["active_key"], "active_key", keys)}


def channels_of(steps: Iterable[SequenceStep]) -> set[Channel]:
    """The channels a sequence's steps use."""
    return {STEP_CHANNELS[s.type] for s in steps if s.type in STEP_CHANNELS}


async def suppressed_addresses(prospects: Seq[Prospect], steps: list[SequenceStep]) -> set[tuple[Channel, str]]:
    """Those of the prospects' addresses, on the channels the steps use, that their
    organization's suppression list holds (one read for a batch of one organization)."""
    if not prospects:
        return set()
    channels = channels_of(steps)
    pairs = [(c, suppressions.address_of(p, c)) for p in prospects for c in channels]
    return await suppressions.suppressed(prospects[0].organization_id, pairs)


def new_enrollment(
    prospect: Prospect,
    sequence: Sequence,
    steps: list[SequenceStep],
    *,
    actor: Actor,
    activate: bool | None,
    enrolled: Container[str],
    suppressed: Container[tuple[Channel, str]],
    field: Field | None = None,
) -> Enrollment:
    """A locked prospect's enrollment, unsaved, or the refusal: DoNotContact when a
    channel the steps use is blocked for it (its flags) or its address on one is
    among ``suppressed`` (``suppressed_addresses``: whichever record it was
    suppressed for); NoAddress when it has no address for the first message step's
    channel (the step could only fail); AlreadyEnrolled when its active key is among
    ``enrolled`` (the sequence's unfinished enrollments). DoNotContact wins over
    NoAddress when both apply: adding an address would not lift it."""
    channels = channels_of(steps)
    blocked = channels & blocked_channels(prospect)
    blocked |= {c for c in channels if (c, suppressions.address_of(prospect, c)) in suppressed}
    if blocked:
        names = ", ".join(c.value for c in Channel if c in blocked)
        raise DoNotContact(f"The prospect may not be contacted by {names}.", field)
    first = next((STEP_CHANNELS[s.type] for s in steps if s.type in MESSAGE_STEPS), None)
    if first is not None and suppressions.address_of(prospect, first) is None:
        missing = "email address" if first is Channel.EMAIL else "phone number"
        raise NoAddress(f"The prospect has no {missing} for the sequence's first {first.value} step.", field)
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


async def lock_active(sequence: Sequence) -> None:
    """Reads the sequence's ``active`` again, on PostgreSQL under a shared lock on
    its row that holds until the transaction ends: enrolling at once (STARTED) and
    the sequence's deactivation, which pauses its running enrollments, wait for
    each other, so no enrollment of an inactive sequence starts (SQLite runs one
    writer at a time)."""
    db = connections.get("default")
    sql = 'SELECT "active" FROM "sequence" WHERE "id" = {}'
    if db.capabilities.dialect == "postgres":
        rows = await db.execute_query_dict(sql.format("$1") + " FOR SHARE", [sequence.id])
    else:
        rows = await db.execute_query_dict(sql.format("?"), [sequence.id])
    sequence.active = bool(rows[0]["active"])


async def active_sequences(sequence_ids: Iterable[int]) -> set[int]:
    """Those of the sequences that are active (one read)."""
    if not (ids := set(sequence_ids)):
        return set()
    active = await Sequence.filter(id__in=ids, active=True).values_list("id", flat=True)
    return {int(pk) for pk in active}  # type: ignore[call-overload]


async def enroll_one(
    prospect: Prospect,
    sequence: Sequence,
    steps: list[SequenceStep],
    *,
    actor: Actor,
    cause: ChangeCause,
    activate: bool | None,
    field: Field | None = None,
) -> list[Move]:
    """Enrolls a locked prospect; DoNotContact / NoAddress / AlreadyEnrolled before any write."""
    await lock_active(sequence)
    enrolled = await enrolled_keys([prospect.id], sequence.id)
    suppressed = await suppressed_addresses([prospect], steps)
    enrollment = new_enrollment(
        prospect,
        sequence,
        steps,
        actor=actor,
        activate=activate,
        enrolled=enrolled,
        suppressed=suppressed,
        field=field,
    )
    return await enroll_all(sequence, [enrollment], actor=actor, cause=cause)


async def enroll_all(
    sequence: Sequence, enrollments: list[Enrollment], *, actor: Actor, cause: ChangeCause
) -> list[Move]:
    """Saves new enrollments of ``sequence`` (from ``new_enrollment``, one start stage
    and time) with their history and events, in a few statements whatever their number."""
    if not enrollments:
        return []
    await bulk.insert_returning_ids(enrollments)
    moves = [Move(actor, e.id, e.prospect_id, sequence.id, None, e.stage) for e in enrollments]
    await stages.record(moves, cause=cause, reason="enrolled", now=enrollments[0].enrolled_at)
    return moves


# ---- the verbs: each checks the state table for every enrollment, then writes ----


async def pause(
    enrollments: Seq[Enrollment],
    *,
    actor: Actor,
    cause: ChangeCause,
    reason: str,
    until: datetime | None = None,
) -> list[Move]:
    """RUNNING → PAUSED, remembering the stage and due time that ``resume`` restores,
    and ``reason`` (``state.SEQUENCE_INACTIVE``: what reactivating the sequence
    resumes); with ``until``, a pause the scheduler ends then (``resumes_at``)."""
    return await _move(enrollments, Event.PAUSE, actor=actor, cause=cause, reason=reason, until=until)


async def pause_again(enrollments: Seq[Enrollment], *, until: datetime, reason: str) -> None:
    """PAUSED enrollments end their pause at ``until`` instead, for ``reason`` (what
    their resumption's cause is read from): no stage changes, so nothing is recorded."""
    for enrollment in enrollments:
        if enrollment.stage is not Stage.PAUSED:
            raise InvalidTransition(f"Cannot pause again an enrollment that is {enrollment.stage.value}.")
        enrollment.resumes_at, enrollment.paused_reason = until, reason
    await bulk.update_each(enrollments, ("resumes_at", "paused_reason"), connections.get("default"))


async def pause_prospect_until(
    prospect_id: int, until: datetime, *, actor: Actor, cause: ChangeCause, reason: str
) -> list[Move]:
    """Pauses the prospect's running enrollments until ``until``; those it paused
    so before (paused for the same ``reason``) end their pause then instead. Others
    paused stay as they are: someone's pause with no end is not given one."""
    enrollments = await Enrollment.filter(prospect_id=prospect_id, finished_at=None).select_for_update().order_by("id")
    again = [e for e in enrollments if e.stage is Stage.PAUSED and e.paused_reason == reason]
    await pause_again(again, until=until, reason=reason)
    running = [e for e in enrollments if e.stage in ALLOWED_FROM[Event.PAUSE]]
    return await pause(running, actor=actor, cause=cause, reason=reason, until=until)


async def resume(enrollments: Seq[Enrollment], *, actor: Actor, cause: ChangeCause, reason: str) -> list[Move]:
    """PAUSED → the stage it paused in; a step that fell due meanwhile is due now.
    Refused (InvalidTransition) in an inactive sequence, as ``jump`` is."""
    return await _move(enrollments, Event.RESUME, actor=actor, cause=cause, reason=reason)


async def jump(
    enrollments: Seq[Enrollment], step_id: int, *, actor: Actor, cause: ChangeCause, reason: str
) -> list[Move]:
    """The step ``step_id`` runs next, at once (STARTED, or APPROACHING once a step has run)."""
    return await _move(enrollments, Event.JUMP, actor=actor, cause=cause, reason=reason, step_id=step_id)


async def finish(
    enrollments: Seq[Enrollment], outcome: Stage, *, actor: Actor, cause: ChangeCause, reason: str
) -> list[Move]:
    """Finishes the enrollments at ``outcome`` (one of OUTCOMES)."""
    return await _move(enrollments, Event.FINISH, actor=actor, cause=cause, reason=reason, outcome=outcome)


async def remove(enrollments: Seq[Enrollment], *, actor: Actor, cause: ChangeCause, reason: str) -> list[Move]:
    """Finishes the enrollments REMOVED."""
    return await _move(enrollments, Event.REMOVE, actor=actor, cause=cause, reason=reason)


async def time_out(enrollments: Seq[Enrollment], *, actor: Actor, cause: ChangeCause, reason: str) -> list[Move]:
    """APPROACHING past the unresponsive deadline → UNRESPONSIVE."""
    return await _move(enrollments, Event.TIMEOUT, actor=actor, cause=cause, reason=reason)


async def fail(
    enrollments: Seq[Enrollment], outcome: Stage, *, actor: Actor, cause: ChangeCause, reason: str
) -> list[Move]:
    """A step that cannot be sent finishes its enrollment FAILED, BOUNCED or OPTED_OUT."""
    return await _move(enrollments, Event.STEP_FAILED, actor=actor, cause=cause, reason=reason, outcome=outcome)


async def step_ran(enrollments: Seq[Enrollment], *, actor: Actor, cause: ChangeCause, reason: str) -> list[Move]:
    """STARTED → APPROACHING once its first step ran (the scheduler's task steps;
    its message steps go in the pass's batch)."""
    return await _move(enrollments, Event.STEP_RAN, actor=actor, cause=cause, reason=reason)


async def start_or_resume(prospect_id: int, *, actor: Actor, cause: ChangeCause, reason: str) -> list[Move]:
    """Sets the prospect's enrollments going again (a status whose outcome is
    STARTED): each NOT_STARTED one starts, its step due after its delay, and each
    PAUSED one resumes the stage it paused in. Those of an inactive sequence stay as
    they are: nothing of it may be sent, and activating the sequence sets them going."""
    waiting = (
        await Enrollment.filter(prospect_id=prospect_id, stage__in=[Stage.NOT_STARTED, Stage.PAUSED])
        .select_for_update()
        .order_by("id")
    )
    running = await active_sequences(e.sequence_id for e in waiting)
    going = [e for e in waiting if e.sequence_id in running]
    to_start = [e for e in going if e.stage is Stage.NOT_STARTED]
    steps = sorted({e.current_step_id for e in to_start if e.current_step_id is not None})
    delays = dict(await SequenceStep.filter(id__in=steps).values_list("id", "delay_seconds")) if steps else {}
    started = await _move(to_start, Event.ACTIVATE, actor=actor, cause=cause, reason=reason, delays=delays)
    paused = [e for e in going if e.stage is Stage.PAUSED]
    return started + await _move(paused, Event.RESUME, actor=actor, cause=cause, reason=reason)


SAVED = (
    "stage",
    "due_at",
    "finished_at",
    "active_key",
    "paused_stage",
    "paused_due_at",
    "paused_reason",
    "resumes_at",
    "current_step_id",
)
"""The enrollment columns a move may change."""


async def _move(
    enrollments: Seq[Enrollment],
    event: Event,
    *,
    actor: Actor,
    cause: ChangeCause,
    reason: str,
    outcome: Stage | None = None,
    step_id: int | None = None,
    delays: Mapping[int, int] | None = None,
    until: datetime | None = None,
) -> list[Move]:
    """Moves locked enrollments through ``event`` (any but ENROLL; ACTIVATE with
    the ``delays`` of their current steps, by step id; PAUSE ``until`` a time or
    not): the table is checked for
    every one before any is written (the events that set an enrollment running,
    STARTS, only in an active sequence), then the rows are saved in one statement
    and the moves recorded together."""
    now = actor.now()
    active = await active_sequences(e.sequence_id for e in enrollments) if event in STARTS else None
    targets = [
        transition(e.stage, event, _facts(e, outcome, active is None or e.sequence_id in active)) for e in enrollments
    ]
    moves = []
    for enrollment, to in zip(enrollments, targets, strict=True):
        moves.append(Move(actor, enrollment.id, enrollment.prospect_id, enrollment.sequence_id, enrollment.stage, to))
        _enter(enrollment, to, event, now, step_id, reason, delays or {}, until)
    await bulk.update_each(enrollments, SAVED, connections.get("default"))
    await stages.record(moves, cause=cause, reason=reason, now=now)
    return moves


def _facts(enrollment: Enrollment, outcome: Stage | None, active: bool) -> Facts:
    return Facts(
        active=active,
        remembered=enrollment.paused_stage,
        has_run_a_step=enrollment.last_step_at is not None,
        outcome=outcome,
    )


def _enter(
    enrollment: Enrollment,
    to: Stage,
    event: Event,
    now: datetime,
    step_id: int | None,
    reason: str,
    delays: Mapping[int, int],
    until: datetime | None,
) -> None:
    """Sets what entering ``to`` through ``event`` changes on the enrollment row."""
    if event is Event.ACTIVATE:  # its current step due after its delay, as enrollments.start_all
        step = enrollment.current_step_id
        enrollment.due_at = now + timedelta(seconds=delays.get(step, 0) if step is not None else 0)
    elif event is Event.PAUSE:
        enrollment.paused_stage, enrollment.paused_due_at = enrollment.stage, enrollment.due_at
        enrollment.paused_reason, enrollment.resumes_at = reason, until
        enrollment.due_at = None
    elif event is Event.RESUME:
        due = enrollment.paused_due_at
        enrollment.due_at = max(due, now) if due is not None else None  # an overdue step is due now
        _unpause(enrollment)
    elif event is Event.JUMP:
        assert step_id is not None
        enrollment.current_step_id, enrollment.due_at = step_id, now
        _unpause(enrollment)
    if to in FINISHED:
        enrollment.finished_at = now
        enrollment.due_at = None
        enrollment.active_key = None
        _unpause(enrollment)
    enrollment.stage = to


def _unpause(enrollment: Enrollment) -> None:
    """Forgets what a pause remembered, and when it was to end."""
    enrollment.paused_stage = enrollment.paused_due_at = enrollment.paused_reason = None
    enrollment.resumes_at = None


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
) -> list[Move]:
    """Moves through ``event`` each of the prospect's unfinished enrollments that it
    applies to (only those whose sequence uses ``channel``, or is one of
    ``sequence_ids``, when given): a status's outcome, consent, a reply, an operation.
    An event that sets enrollments running (STARTS) leaves those of inactive
    sequences as they are. PAUSE also makes the pauses of a sequence's deactivation
    (``SEQUENCE_INACTIVE``) pauses for ``reason``: paused on purpose now, they stay
    paused when the sequence is activated again."""
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
    applying = [e for e in enrollments if e.stage in ALLOWED_FROM[event]]
    if event is Event.PAUSE:
        held = [e.id for e in enrollments if e.stage is Stage.PAUSED and e.paused_reason == SEQUENCE_INACTIVE]
        if held:
            await Enrollment.filter(id__in=held).update(paused_reason=reason)
    if event in STARTS:
        active = await active_sequences(e.sequence_id for e in applying)
        applying = [e for e in applying if e.sequence_id in active]
    return await _move(applying, event, actor=actor, cause=cause, reason=reason, outcome=outcome)
