from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import strawberry

from app.errors import DomainError
from app.sequences import enrollments, service, templates
from app.sequences.models import Enrollment as EnrollmentRow
from app.sequences.windows import parse_window
from schema.context import Info
from schema.enums import EnrollmentStage, StepType
from schema.errors import UserError, guarded, guarded_bulk
from schema.node import pk, pks
from schema.sequences.types import Enrollment, Sequence, Weekday

STEP_DESCRIPTION = (
    "A step. `subject` (EMAIL only) and `body` are templates (Jinja2, sandboxed) over the prospect's variables: "
    + "; ".join(f"`{name}`: {what}" for name, what in templates.VARIABLES.items())
    + ". A value the prospect lacks, a custom field included, prints as nothing. Saving refuses (INVALID_INPUT) "
    "a template with an unknown variable or one that fails for a sample prospect, naming the line and variable; "
    "one that fails for a real prospect fails its step, the stage change's reason naming the variable "
    "(e.g. `template_undefined:custom.budget`)."
)


@strawberry.input(description=STEP_DESCRIPTION)
class SequenceStepInput:
    type: StepType
    delay_seconds: int
    subject: str | None = None
    body: str
    thread_with_previous: bool | None = strawberry.field(default=None, description="Default false.")


@strawberry.input
class SendWindowInput:
    days: list[Weekday]
    start: str
    end: str
    time_zone: str | None = None


def _step(step: SequenceStepInput) -> service.StepSpec:
    return service.StepSpec(
        type=step.type,
        delay_seconds=step.delay_seconds,
        subject=step.subject,
        body=step.body,
        thread_with_previous=bool(step.thread_with_previous),
    )


def _window(window: SendWindowInput | None) -> Any:
    if window is None:
        return None
    return parse_window([d.value for d in window.days], window.start, window.end, window.time_zone, ("send_window",))


@strawberry.input
class CreateSequenceInput:
    name: str
    stop_on_reply: bool | None = None
    unresponsive_after_seconds: int | None = None
    send_window: SendWindowInput | None = None
    steps: list[SequenceStepInput] | None = None
    active: bool | None = strawberry.field(
        default=None, description="Default false: enrollments wait in NOT_STARTED until the sequence is activated."
    )


@strawberry.type
class CreateSequencePayload:
    sequence: Sequence | None = None
    errors: list[UserError]


@strawberry.input
class UpdateSequenceInput:
    id: strawberry.ID
    name: str | None = None
    stop_on_reply: bool | None = None
    unresponsive_after_seconds: int | None = None
    send_window: SendWindowInput | None = None
    clear_send_window: bool | None = strawberry.field(default=None, description="true removes the send window.")


@strawberry.type
class UpdateSequencePayload:
    sequence: Sequence | None = None
    errors: list[UserError]


@strawberry.input
class SetSequenceActiveInput:
    id: strawberry.ID
    active: bool


@strawberry.type
class SetSequenceActivePayload:
    sequence: Sequence | None = None
    errors: list[UserError]


@strawberry.input(description="Inserts the step at `position` (default: last).")
class AddSequenceStepInput:
    sequence_id: strawberry.ID
    step: SequenceStepInput
    position: int | None = None


@strawberry.type
class AddSequenceStepPayload:
    sequence: Sequence | None = None
    errors: list[UserError]


@strawberry.input
class UpdateSequenceStepInput:
    id: strawberry.ID
    delay_seconds: int | None = None
    subject: str | None = None
    body: str | None = None
    position: int | None = None
    thread_with_previous: bool | None = None


@strawberry.type
class UpdateSequenceStepPayload:
    sequence: Sequence | None = None
    errors: list[UserError]


@strawberry.input
class RemoveSequenceStepInput:
    id: strawberry.ID


@strawberry.type
class RemoveSequenceStepPayload:
    sequence: Sequence | None = None
    errors: list[UserError]


@strawberry.input
class EnrollProspectsInput:
    sequence_id: strawberry.ID
    prospect_ids: list[strawberry.ID]
    activate: bool | None = strawberry.field(
        default=None, description="Default true: start at once when the sequence is active; false: wait in NOT_STARTED."
    )


@strawberry.type(
    description="Valid prospects are enrolled; the others are reported by index (DO_NOT_CONTACT, ALREADY_ENROLLED, NOT_FOUND)."
)
class EnrollProspectsPayload:
    enrollments: list[Enrollment] = strawberry.field(default_factory=list)
    errors: list[UserError]


@strawberry.input(
    description="Every enrollment mutation below takes many ids; ids that cannot make the change are reported by index and the rest proceed."
)
class EnrollmentIdsInput:
    ids: list[strawberry.ID]


@strawberry.type
class EnrollmentsPayload:
    enrollments: list[Enrollment] = strawberry.field(default_factory=list)
    errors: list[UserError]


@strawberry.input(
    description="Pauses running enrollments until a time; they resume by themselves then (an overdue step becomes due)."
)
class PauseEnrollmentsUntilInput:
    ids: list[strawberry.ID]
    until: datetime


@strawberry.input
class JumpEnrollmentsInput:
    ids: list[strawberry.ID]
    position: int = strawberry.field(
        description="1-based position of the step to run next, at once (within the send window)."
    )


@strawberry.input
class FinishEnrollmentsInput:
    ids: list[strawberry.ID]
    outcome: EnrollmentStage = strawberry.field(
        description="One of REPLIED, SUCCESS, NOT_INTERESTED, UNRESPONSIVE, BOUNCED, OPTED_OUT, UNSUBSCRIBED."
    )


Bulk = Callable[[], Awaitable[tuple[list[EnrollmentRow], list[DomainError]]]]


ENROLLMENT_IDS = {"enrollment_ids": "ids"}
"""The enrollment mutations' input names their enrollments ``ids``."""


async def _bulk(info: Info, run: Bulk) -> EnrollmentsPayload:
    return await guarded_bulk(info, EnrollmentsPayload, "enrollments", run, _enrollment, ENROLLMENT_IDS)


def _enrollment(row: EnrollmentRow) -> Enrollment:
    return Enrollment(row=row)


def _sequence(row: Any) -> dict[str, Any]:
    return {"sequence": Sequence(row=row)}


@strawberry.type
class SequenceMutations:
    @strawberry.mutation
    async def create_sequence(self, info: Info, input: CreateSequenceInput) -> CreateSequencePayload:
        async def run() -> dict[str, Any]:
            return _sequence(
                await service.create_sequence(
                    actor=info.context.actor,
                    name=input.name,
                    stop_on_reply=input.stop_on_reply,
                    unresponsive_after_seconds=input.unresponsive_after_seconds,
                    send_window=_window(input.send_window),
                    steps=[_step(s) for s in input.steps or []],
                    active=input.active,
                )
            )

        return await guarded(info, CreateSequencePayload, run)

    @strawberry.mutation
    async def update_sequence(self, info: Info, input: UpdateSequenceInput) -> UpdateSequencePayload:
        async def run() -> dict[str, Any]:
            return _sequence(
                await service.update_sequence(
                    actor=info.context.actor,
                    sequence_id=pk("Sequence", input.id),
                    name=input.name,
                    stop_on_reply=input.stop_on_reply,
                    unresponsive_after_seconds=input.unresponsive_after_seconds,
                    send_window=_window(input.send_window),
                    clear_send_window=input.clear_send_window,
                )
            )

        return await guarded(info, UpdateSequencePayload, run, {"sequence_id": "id"})

    @strawberry.mutation
    async def set_sequence_active(self, info: Info, input: SetSequenceActiveInput) -> SetSequenceActivePayload:
        async def run() -> dict[str, Any]:
            return _sequence(
                await enrollments.set_sequence_active(
                    actor=info.context.actor, sequence_id=pk("Sequence", input.id), active=input.active
                )
            )

        return await guarded(info, SetSequenceActivePayload, run, {"sequence_id": "id"})

    @strawberry.mutation
    async def add_sequence_step(self, info: Info, input: AddSequenceStepInput) -> AddSequenceStepPayload:
        async def run() -> dict[str, Any]:
            return _sequence(
                await service.add_step(
                    actor=info.context.actor,
                    sequence_id=pk("Sequence", input.sequence_id),
                    step=_step(input.step),
                    position=input.position,
                )
            )

        return await guarded(info, AddSequenceStepPayload, run)

    @strawberry.mutation
    async def update_sequence_step(self, info: Info, input: UpdateSequenceStepInput) -> UpdateSequenceStepPayload:
        async def run() -> dict[str, Any]:
            return _sequence(
                await service.update_step(
                    actor=info.context.actor,
                    step_id=pk("SequenceStep", input.id),
                    delay_seconds=input.delay_seconds,
                    subject=input.subject,
                    body=input.body,
                    position=input.position,
                    thread_with_previous=input.thread_with_previous,
                )
            )

        return await guarded(info, UpdateSequenceStepPayload, run, {"step_id": "id"})

    @strawberry.mutation
    async def remove_sequence_step(self, info: Info, input: RemoveSequenceStepInput) -> RemoveSequenceStepPayload:
        async def run() -> dict[str, Any]:
            return _sequence(await service.remove_step(actor=info.context.actor, step_id=pk("SequenceStep", input.id)))

        return await guarded(info, RemoveSequenceStepPayload, run, {"step_id": "id"})

    @strawberry.mutation
    async def enroll_prospects(self, info: Info, input: EnrollProspectsInput) -> EnrollProspectsPayload:
        return await guarded_bulk(
            info,
            EnrollProspectsPayload,
            "enrollments",
            lambda: enrollments.enroll(
                actor=info.context.actor,
                sequence_id=pk("Sequence", input.sequence_id),
                prospect_ids=pks("Prospect", input.prospect_ids),
                activate=input.activate,
            ),
            _enrollment,
        )

    @strawberry.mutation
    async def activate_enrollments(self, info: Info, input: EnrollmentIdsInput) -> EnrollmentsPayload:
        return await _bulk(
            info, lambda: enrollments.activate(actor=info.context.actor, enrollment_ids=pks("Enrollment", input.ids))
        )

    @strawberry.mutation
    async def pause_enrollments(self, info: Info, input: EnrollmentIdsInput) -> EnrollmentsPayload:
        return await _bulk(
            info, lambda: enrollments.pause(actor=info.context.actor, enrollment_ids=pks("Enrollment", input.ids))
        )

    @strawberry.mutation
    async def pause_enrollments_until(self, info: Info, input: PauseEnrollmentsUntilInput) -> EnrollmentsPayload:
        return await _bulk(
            info,
            lambda: enrollments.pause_until(
                actor=info.context.actor, enrollment_ids=pks("Enrollment", input.ids), until=input.until
            ),
        )

    @strawberry.mutation
    async def resume_enrollments(self, info: Info, input: EnrollmentIdsInput) -> EnrollmentsPayload:
        return await _bulk(
            info, lambda: enrollments.resume(actor=info.context.actor, enrollment_ids=pks("Enrollment", input.ids))
        )

    @strawberry.mutation
    async def jump_enrollments(self, info: Info, input: JumpEnrollmentsInput) -> EnrollmentsPayload:
        return await _bulk(
            info,
            lambda: enrollments.jump(
                actor=info.context.actor, enrollment_ids=pks("Enrollment", input.ids), position=input.position
            ),
        )

    @strawberry.mutation
    async def finish_enrollments(self, info: Info, input: FinishEnrollmentsInput) -> EnrollmentsPayload:
        return await _bulk(
            info,
            lambda: enrollments.finish(
                actor=info.context.actor, enrollment_ids=pks("Enrollment", input.ids), outcome=input.outcome
            ),
        )

    @strawberry.mutation
    async def remove_enrollments(self, info: Info, input: EnrollmentIdsInput) -> EnrollmentsPayload:
        return await _bulk(
            info, lambda: enrollments.remove(actor=info.context.actor, enrollment_ids=pks("Enrollment", input.ids))
        )
