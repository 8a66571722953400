"""Running operations: the steps an action or an automation rule performs (R2, R8).

The stored form (``Action.operations``, ``AutomationRule.operations``, written by
``app.workflows.operations.validate``) is parsed once into typed operations,
one small class per ``OperationType`` (``KINDS``), each running itself on the
prospect. Every operation runs inside the caller's transaction, on a prospect
row the caller has locked; an exception rolls back every operation before it
(R2.2).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Self

from app.accounts.actor import Actor
from app.accounts.models import User
from app.automation import rules  # a cycle, used at call time: rules run these operations
from app.errors import AlreadyEnrolled, Conflict, DoNotContact, NoAddress
from app.events import log
from app.events.models import EventType
from app.messaging import compose
from app.prospects import consent, effects, rotation, suppressions, updates
from app.prospects.events import task_event
from app.prospects.models import ChangeCause, Channel, Prospect, Task, TaskKind
from app.sequences import lifecycle
from app.sequences.models import Sequence
from app.sequences.state import Event, Stage
from app.workflows.chain import Chain
from app.workflows.models import Status
from app.workflows.operations import OperationType


@dataclass(frozen=True)
class Run:
    """What the operations of one run share: the prospect (a row the caller has
    locked), who runs them, why, and the chain of rules that led here."""

    prospect: Prospect
    actor: Actor
    cause: ChangeCause
    chain: Chain
    # The time the person asked to be called back (``logActivity(callbackAt:)``):
    # a SCHEDULE_CALLBACK of this run is due then instead of after its delay.
    callback_at: datetime | None = None

    async def enrollments(self, event: Event, outcome: Stage | None = None) -> None:
        """Applies ``event`` to the prospect's unfinished enrollments."""
        moves = await lifecycle.for_prospect(
            self.prospect.id, event, actor=self.actor, cause=self.cause, reason="operation", outcome=outcome
        )
        await rules.stages_entered(moves, chain=self.chain)


class Operation(ABC):
    """One stored operation, parsed: ``parse`` reads its fields from the stored
    dict (an operation without fields takes none), ``run`` performs it."""

    @classmethod
    def parse(cls, stored: Mapping[str, Any]) -> Self:
        return cls()

    @abstractmethod
    async def run(self, on: Run) -> None: ...


@dataclass(frozen=True)
class SetStatus(Operation):
    status_id: int

    @classmethod
    def parse(cls, stored: Mapping[str, Any]) -> Self:
        return cls(stored["status_id"])

    async def run(self, on: Run) -> None:
        organization_id = on.prospect.organization_id
        status = await Status.get_or_none(id=self.status_id, organization_id=organization_id, deleted_at=None)
        if status is None:
            raise Conflict("The status this operation moves to no longer exists.")
        await effects.change_status([on.prospect], status, actor=on.actor, cause=on.cause, chain=on.chain)


@dataclass(frozen=True)
class MarkContactAttempted(Operation):
    async def run(self, on: Run) -> None:
        now = on.actor.now()
        on.prospect.contact_attempts += 1
        on.prospect.last_contact_attempt_at = now
        await updates.save_fields(on.prospect, now, "contact_attempts", "last_contact_attempt_at")


@dataclass(frozen=True)
class MarkContactMade(Operation):
    async def run(self, on: Run) -> None:
        if on.prospect.contact_made_at is None:
            on.prospect.contact_made_at = now = on.actor.now()
            await updates.save_fields(on.prospect, now, "contact_made_at")


@dataclass(frozen=True)
class ScheduleCallback(Operation):
    delay_seconds: int

    @classmethod
    def parse(cls, stored: Mapping[str, Any]) -> Self:
        return cls(stored["delay_seconds"])

    async def run(self, on: Run) -> None:
        now = on.actor.now()
        task = await Task.create(
            organization_id=on.prospect.organization_id,
            prospect_id=on.prospect.id,
            assignee_id=on.prospect.owner_id,
            kind=TaskKind.CALLBACK,
            due_at=on.callback_at or now + timedelta(seconds=self.delay_seconds),
            created_at=now,
        )
        await log.record([task_event(EventType.TASK_CREATED, task, now)])


@dataclass(frozen=True)
class MarkDoNotContact(Operation):
    async def run(self, on: Run) -> None:
        await consent.set_do_not_contact(on.prospect, True, actor=on.actor, cause=on.cause, chain=on.chain)


@dataclass(frozen=True)
class Assign(Operation):
    """Gives the prospect to a user, or (no user) to the next agent in the round robin."""

    user_id: int | None

    @classmethod
    def parse(cls, stored: Mapping[str, Any]) -> Self:
        return cls(stored.get("user_id"))

    async def run(self, on: Run) -> None:
        organization_id = on.prospect.organization_id
        user_id = self.user_id
        if user_id is None:
            [user_id] = await rotation.next_in_rotation(organization_id, 1)
        elif not await User.filter(id=user_id, organization_id=organization_id, active=True).exists():
            raise Conflict("The user this operation assigns to is no longer active.")
        await updates.assign(on.prospect, user_id, actor=on.actor)


@dataclass(frozen=True)
class Unassign(Operation):
    async def run(self, on: Run) -> None:
        await updates.assign(on.prospect, None, actor=on.actor)


@dataclass(frozen=True)
class EnrollInSequence(Operation):
    """A prospect already in the sequence, blocked on one of its channels (its own
    flags or a suppressed address) or without an address for its first message
    step is left as it is (the operation is a no-op for it, not a failure)."""

    sequence_id: int

    @classmethod
    def parse(cls, stored: Mapping[str, Any]) -> Self:
        return cls(stored["sequence_id"])

    async def run(self, on: Run) -> None:
        sequence = await Sequence.get_or_none(id=self.sequence_id, organization_id=on.prospect.organization_id)
        if sequence is None:
            raise Conflict("The sequence this operation enrolls in no longer exists.")
        steps = await lifecycle.steps_of(sequence.id)
        if not steps:
            return
        with contextlib.suppress(DoNotContact, NoAddress, AlreadyEnrolled):
            moves = await lifecycle.enroll_one(
                on.prospect, sequence, steps, actor=on.actor, cause=on.cause, activate=None
            )
            await rules.stages_entered(moves, chain=on.chain)


@dataclass(frozen=True)
class FinishEnrollments(Operation):
    outcome: Stage

    @classmethod
    def parse(cls, stored: Mapping[str, Any]) -> Self:
        return cls(Stage(stored["outcome"]))

    async def run(self, on: Run) -> None:
        await on.enrollments(Event.FINISH, self.outcome)


@dataclass(frozen=True)
class PauseEnrollments(Operation):
    async def run(self, on: Run) -> None:
        await on.enrollments(Event.PAUSE)


@dataclass(frozen=True)
class ResumeEnrollments(Operation):
    async def run(self, on: Run) -> None:
        await on.enrollments(Event.RESUME)


@dataclass(frozen=True)
class SendMessage(Operation):
    """A prospect whose channel is blocked (its own flags) or whose address on it is
    suppressed, whichever record it was suppressed for, gets no message: the
    operation is a no-op for it, as enrolling is, since the send gate would cancel
    the message anyway."""

    channel: Channel
    subject: str | None
    body: str

    @classmethod
    def parse(cls, stored: Mapping[str, Any]) -> Self:
        return cls(Channel(stored["channel"]), stored.get("subject"), stored["body"])

    async def run(self, on: Run) -> None:
        if self.channel in lifecycle.blocked_channels(on.prospect):
            return
        address = suppressions.address_of(on.prospect, self.channel)
        if await suppressions.suppressed(on.prospect.organization_id, [(self.channel, address)]):
            return
        await compose.queue_message(on.prospect, self.channel, self.subject, self.body, now=on.actor.now())


KINDS: dict[OperationType, type[Operation]] = {
    OperationType.SET_STATUS: SetStatus,
    OperationType.MARK_CONTACT_ATTEMPTED: MarkContactAttempted,
    OperationType.MARK_CONTACT_MADE: MarkContactMade,
    OperationType.SCHEDULE_CALLBACK: ScheduleCallback,
    OperationType.MARK_DO_NOT_CONTACT: MarkDoNotContact,
    OperationType.ASSIGN: Assign,
    OperationType.UNASSIGN: Unassign,
    OperationType.ENROLL_IN_SEQUENCE: EnrollInSequence,
    OperationType.FINISH_ENROLLMENTS: FinishEnrollments,
    OperationType.PAUSE_ENROLLMENTS: PauseEnrollments,
    OperationType.RESUME_ENROLLMENTS: ResumeEnrollments,
    OperationType.SEND_MESSAGE: SendMessage,
}
"""The class of each stored operation type."""


def parse(stored: Iterable[Mapping[str, Any]]) -> list[Operation]:
    """Typed operations from their stored form."""
    return [KINDS[OperationType(op["type"])].parse(op) for op in stored]


def schedules_callback(operations: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the stored operations schedule a callback (take a ``callback_at``)."""
    return any(isinstance(operation, ScheduleCallback) for operation in parse(operations))


async def run_operations(
    prospect: Prospect,
    operations: Iterable[Mapping[str, Any]],
    *,
    actor: Actor,
    cause: ChangeCause,
    chain: Chain,
    callback_at: datetime | None = None,
) -> None:
    """Runs stored operations in order on a locked prospect row; a callback they
    schedule is due at ``callback_at`` when given, else after its delay."""
    on = Run(prospect, actor, cause, chain, callback_at)
    for operation in parse(operations):
        await operation.run(on)
