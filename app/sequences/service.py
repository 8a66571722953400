"""Sequences and their steps (SPEC R4.1, R4.5): configuration, MANAGER and ADMIN only.

Steps are numbered 1…n. Editing never re-runs a step: an enrollment points at
the step it runs next, by id, so inserting, moving or editing steps leaves it
where it was; removing its next step moves it on to the step that followed.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import Any

from tortoise.functions import Count
from tortoise.transactions import in_transaction

from app import validation
from app.accounts.actor import Actor
from app.errors import Field, InvalidInput
from app.messaging.models import Message
from app.prospects import service as prospects
from app.sequences import templates
from app.sequences.lifecycle import steps_of
from app.sequences.models import Enrollment, Sequence, SequenceStep, StepType
from app.sequences.windows import SendWindow
from app.workflows.service import get_owned

MAX_DELAY_SECONDS = 366 * 24 * 3600
MAX_STEPS = 50
UNCHANGED: Any = object()


@dataclass(frozen=True)
class StepSpec:
    type: StepType
    delay_seconds: int
    body: str
    subject: str | None = None
    thread_with_previous: bool = False


def clean_step(spec: StepSpec, field: Field) -> dict[str, Any]:
    """Validated column values of a step; templates checked (R4.1). Only an EMAIL
    step may follow the previous email in its thread; one with no earlier email
    sent when it runs (the first email step) starts a thread, with its subject."""
    validation.bounded_int(spec.delay_seconds, (*field, "delay_seconds"), low=0, high=MAX_DELAY_SECONDS)
    subject = spec.subject
    if spec.type is StepType.EMAIL:
        if not subject or not subject.strip():
            raise InvalidInput("An EMAIL step needs a subject.", (*field, "subject"))
        templates.check(subject, (*field, "subject"))
    elif subject is not None:
        raise InvalidInput(f"A {spec.type.value} step has no subject; it must be null.", (*field, "subject"))
    if spec.thread_with_previous and spec.type is not StepType.EMAIL:
        raise InvalidInput(
            f"Only an EMAIL step can follow the previous email in its thread, not a {spec.type.value} step.",
            (*field, "thread_with_previous"),
        )
    if not spec.body.strip():
        raise InvalidInput("The body must not be empty.", (*field, "body"))
    templates.check(spec.body, (*field, "body"))
    return {
        "type": spec.type,
        "delay_seconds": spec.delay_seconds,
        "subject": subject,
        "body": spec.body,
        "thread_with_previous": spec.thread_with_previous,
    }


async def get_sequence(actor: Actor, sequence_id: int, field: Seq[str | int]) -> Sequence:
    return await get_owned(actor, Sequence, sequence_id, tuple(field))


def _unresponsive(value: int, field: Field) -> int:
    return validation.bounded_int(value, field, low=1, high=MAX_DELAY_SECONDS)


async def create_sequence(
    *,
    actor: Actor,
    name: str,
    stop_on_reply: bool | None,
    unresponsive_after_seconds: int | None,
    send_window: SendWindow | None,
    steps: Seq[StepSpec],
    active: bool | None,
) -> Sequence:
    actor.require_manager()
    clean_name = validation.name(name, ("name",))
    if len(steps) > MAX_STEPS:
        raise InvalidInput(f"At most {MAX_STEPS} steps.", ("steps",))
    rows = [clean_step(step, ("steps", i)) for i, step in enumerate(steps)]
    unresponsive = _unresponsive(
        604800 if unresponsive_after_seconds is None else unresponsive_after_seconds,
        ("unresponsive_after_seconds",),
    )
    async with in_transaction():
        sequence = await Sequence.create(
            organization_id=actor.organization_id,
            name=clean_name,
            active=bool(active),
            stop_on_reply=True if stop_on_reply is None else stop_on_reply,
            unresponsive_after_seconds=unresponsive,
            send_window=send_window.to_json() if send_window else None,
            created_at=actor.now(),
        )
        for position, row in enumerate(rows, 1):
            await SequenceStep.create(
                organization_id=actor.organization_id, sequence_id=sequence.id, position=position, **row
            )
    return sequence


async def update_sequence(
    *,
    actor: Actor,
    sequence_id: int,
    name: str | None,
    stop_on_reply: bool | None,
    unresponsive_after_seconds: int | None,
    send_window: SendWindow | None,
    clear_send_window: bool | None,
) -> Sequence:
    actor.require_manager()
    sequence = await get_sequence(actor, sequence_id, ("sequence_id",))
    if send_window is not None and clear_send_window:
        raise InvalidInput("Give sendWindow or clearSendWindow, not both.", ("clear_send_window",))
    if name is not None:
        sequence.name = validation.name(name, ("name",))
    if stop_on_reply is not None:
        sequence.stop_on_reply = stop_on_reply
    if unresponsive_after_seconds is not None:
        sequence.unresponsive_after_seconds = _unresponsive(unresponsive_after_seconds, ("unresponsive_after_seconds",))
    if send_window is not None:
        sequence.send_window = send_window.to_json()
    if clear_send_window:
        sequence.send_window = None
    await sequence.save()
    return sequence


async def add_step(*, actor: Actor, sequence_id: int, step: StepSpec, position: int | None) -> Sequence:
    """Inserts a step at ``position`` (1-based; default last)."""
    actor.require_manager()
    row = clean_step(step, ("step",))
    async with in_transaction():
        sequence = await get_sequence(actor, sequence_id, ("sequence_id",))
        steps = await steps_of(sequence.id)
        if len(steps) >= MAX_STEPS:
            raise InvalidInput(f"At most {MAX_STEPS} steps.", ("step",))
        index = _index(position, len(steps) + 1)
        new = await SequenceStep.create(
            organization_id=actor.organization_id, sequence_id=sequence.id, position=0, **row
        )
        steps.insert(index, new)
        await _renumber(steps)
    return sequence


async def update_step(
    *,
    actor: Actor,
    step_id: int,
    delay_seconds: int | None,
    subject: str | None,
    body: str | None,
    position: int | None,
    thread_with_previous: bool | None = None,
) -> Sequence:
    actor.require_manager()
    async with in_transaction():
        step = await get_owned(actor, SequenceStep, step_id, ("step_id",), deleted_at=None)
        merged = StepSpec(
            type=step.type,
            delay_seconds=step.delay_seconds if delay_seconds is None else delay_seconds,
            subject=step.subject if subject is None else subject,
            body=step.body if body is None else body,
            thread_with_previous=step.thread_with_previous if thread_with_previous is None else thread_with_previous,
        )
        for key, value in clean_step(merged, ()).items():
            setattr(step, key, value)
        await step.save()
        if position is not None:
            steps = [s for s in await steps_of(step.sequence_id) if s.id != step.id]
            steps.insert(_index(position, len(steps) + 1), step)
            await _renumber(steps)
        return await Sequence.get(id=step.sequence_id)


async def remove_step(*, actor: Actor, step_id: int) -> Sequence:
    """Removes a step; enrollments about to run it move on to the step after it."""
    actor.require_manager()
    async with in_transaction():
        step = await get_owned(actor, SequenceStep, step_id, ("step_id",), deleted_at=None)
        steps = await steps_of(step.sequence_id)
        following = next((s for s in steps if s.position > step.position), None)
        await Enrollment.filter(current_step_id=step.id, finished_at=None).update(
            current_step_id=following.id if following else None
        )
        step.deleted_at = actor.now()
        await step.save(update_fields=["deleted_at"])
        await _renumber([s for s in steps if s.id != step.id])
        return await Sequence.get(id=step.sequence_id)


def _index(position: int | None, count: int) -> int:
    """A 1-based position (clamped to 1…count) as a list index."""
    if position is None:
        return count - 1
    if position < 1:
        raise InvalidInput("Positions start at 1.", ("position",))
    return min(position, count) - 1


async def _renumber(steps: list[SequenceStep]) -> None:
    for number, step in enumerate(steps, 1):
        if step.position != number:
            step.position = number
            await SequenceStep.filter(id=step.id).update(position=number)


@dataclass
class Stats:
    enrolled: int = 0
    by_stage: dict[str, int] | None = None
    sent: int = 0


async def stats(*, actor: Actor, sequence_ids: list[int]) -> dict[int, Stats]:
    """Per sequence: enrollments by stage and messages sent (bounced later or not),
    in two grouped queries; an AGENT's count only the prospects it may work."""
    result = {pk: Stats(by_stage={}) for pk in sequence_ids}
    rows = await (
        prospects.of_visible(actor, Enrollment.filter(sequence_id__in=sequence_ids))
        .annotate(count=Count("id"))
        .group_by("sequence_id", "stage")
        .values("sequence_id", "stage", "count")
    )
    for row in rows:
        entry = result[row["sequence_id"]]
        assert entry.by_stage is not None
        entry.by_stage[str(row["stage"])] = int(row["count"])
        entry.enrolled += int(row["count"])
    sent = await (
        prospects.of_visible(actor, Message.filter(enrollment__sequence_id__in=sequence_ids, sent_at__isnull=False))
        .annotate(count=Count("id"))
        .group_by("enrollment__sequence_id")
        .values("enrollment__sequence_id", "count")
    )
    for row in sent:
        result[row["enrollment__sequence_id"]].sent = int(row["count"])
    return result
