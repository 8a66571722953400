"""Prospect, activity, status change and task types."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, cast

import strawberry
from strawberry.scalars import JSON

from app.prospects import distribution
from app.prospects import models as prospects
from schema.accounts.types import User, load_user
from schema.context import Info
from schema.enums import ChangeCause, Channel, ConversationState, Interaction, SystemStatus, TaskKind
from schema.loaders import fill, loaded
from schema.node import Node, global_id, lazy_type
from schema.pagination import Connection, loaded_page, node_fields
from schema.workflows.types import Action, Status, load_status, status_of

if TYPE_CHECKING:
    from schema.messaging.types import Message
    from schema.sequences.types import Enrollment, SequenceStep

# Types above this module (they import it): named here, resolved when first used.
_SEQUENCES = "schema.sequences.types"
_MESSAGING = "schema.messaging.types"


@strawberry.type
class Prospect(Node):
    row: strawberry.Private[prospects.Prospect]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("Prospect", self.row.id)

    @strawberry.field
    def first_name(self) -> str | None:
        return self.row.first_name

    @strawberry.field
    def last_name(self) -> str | None:
        return self.row.last_name

    @strawberry.field
    def email(self) -> str | None:
        return self.row.email

    @strawberry.field(
        description="The organization's own id for this person (a CRM id); unique within the organization."
    )
    def external_id(self) -> str | None:
        return self.row.external_id

    @strawberry.field(description="E.164.")
    def phone(self) -> str | None:
        return self.row.phone

    @strawberry.field
    def company(self) -> str | None:
        return self.row.company

    @strawberry.field
    def title(self) -> str | None:
        return self.row.title

    @strawberry.field(description="IANA zone; null means the organization's.")
    def time_zone(self) -> str | None:
        return self.row.time_zone

    @strawberry.field
    def custom_fields(self) -> JSON:
        return cast(JSON, self.row.custom_fields)

    # The fields a page's rows share (statuses, owners) or own (enrollments, tasks...)
    # answer at once when the page's resolver preloaded them (preload_prospects).
    @strawberry.field(graphql_type=Status)
    def status(self, info: Info) -> Status | Awaitable[Status]:
        return loaded(info.context.loaders.status, self.row.status_id, status_of)

    @strawberry.field(graphql_type=SystemStatus)
    def system_status(self, info: Info) -> SystemStatus | Awaitable[SystemStatus]:
        return loaded(info.context.loaders.status, self.row.status_id, lambda row: status_of(row).row.system_status)

    @strawberry.field(graphql_type=User | None)
    def owner(self, info: Info) -> User | Awaitable[User | None] | None:
        if self.row.owner_id is None:
            return None
        return loaded(info.context.loaders.user, self.row.owner_id, User.wrap)

    @strawberry.field
    def assigned_at(self) -> datetime | None:
        return self.row.assigned_at

    @strawberry.field(description="Not pullable before this time (the pull delay); null: at once.")
    def pullable_after(self) -> datetime | None:
        return self.row.pullable_after

    @strawberry.field(
        graphql_type=datetime | None,
        description="When another agent may pull it from its owner (max assignment time of its status); null: never.",
    )
    def reassignable_at(self, info: Info) -> datetime | Awaitable[datetime | None] | None:
        return loaded(
            info.context.loaders.status,
            self.row.status_id,
            lambda status: distribution.reassignable_at(self.row, status) if status is not None else None,
        )

    @strawberry.field
    def do_not_contact(self) -> bool:
        return self.row.do_not_contact

    @strawberry.field
    def opted_out_channels(self) -> list[Channel]:
        return [Channel(c) for c in self.row.opted_out_channels]

    @strawberry.field(
        graphql_type=list[Channel],
        description="Channels blocked for this prospect by any cause: do-not-contact, opt-outs, a suppressed address, a hard bounce.",
    )
    def blocked_channels(self, info: Info) -> list[Channel] | Awaitable[list[Channel]]:
        return loaded(
            info.context.loaders.blocked_channels, self.row, lambda blocked: [c for c in Channel if c in blocked]
        )

    @strawberry.field
    def unsubscribed_at(self) -> datetime | None:
        return self.row.unsubscribed_at

    @strawberry.field
    def contact_attempts(self) -> int:
        return self.row.contact_attempts

    @strawberry.field
    def last_contact_attempt_at(self) -> datetime | None:
        return self.row.last_contact_attempt_at

    @strawberry.field
    def contact_made_at(self) -> datetime | None:
        return self.row.contact_made_at

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    def updated_at(self) -> datetime:
        return self.row.updated_at

    @strawberry.field(graphql_type=Connection[Annotated["Activity", strawberry.lazy(__name__)]])
    def activities(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Activity] | Awaitable[Connection[Activity]]:
        return loaded_page(
            info.context.loaders.activities_by_prospect, self.row.id, first, after, lambda r: Activity(row=r)
        )

    @strawberry.field(graphql_type=Connection[Annotated["StatusChange", strawberry.lazy(__name__)]])
    def status_history(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[StatusChange] | Awaitable[Connection[StatusChange]]:
        return loaded_page(
            info.context.loaders.history_by_prospect, self.row.id, first, after, lambda r: StatusChange(row=r)
        )

    @strawberry.field(graphql_type=Connection[Annotated["Task", strawberry.lazy(__name__)]])
    def tasks(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Task] | Awaitable[Connection[Task]]:
        return loaded_page(info.context.loaders.tasks_by_prospect, self.row.id, first, after, lambda r: Task(row=r))

    @strawberry.field
    def conversation_state(self) -> ConversationState:
        return self.row.conversation_state

    @strawberry.field
    def last_message_at(self) -> datetime | None:
        return self.row.last_message_at

    @strawberry.field(graphql_type=Connection[Annotated["Message", strawberry.lazy(_MESSAGING)]])
    def messages(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Message] | Awaitable[Connection[Message]]:
        message_type: type[Message] = lazy_type(_MESSAGING, "Message")
        return loaded_page(
            info.context.loaders.messages_by_prospect, self.row.id, first, after, lambda r: message_type(row=r)
        )

    @strawberry.field(graphql_type=Connection[Annotated["Enrollment", strawberry.lazy(_SEQUENCES)]])
    def enrollments(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Enrollment] | Awaitable[Connection[Enrollment]]:
        enrollment_type: type[Enrollment] = lazy_type(_SEQUENCES, "Enrollment")
        return loaded_page(
            info.context.loaders.enrollments_by_prospect, self.row.id, first, after, lambda r: enrollment_type(row=r)
        )


async def preload_prospects(info: Info, rows: Sequence[prospects.Prospect]) -> None:
    """Loads what the selection asks of a page's prospects, one batch per kind, so
    that each prospect's fields answer at once (``loaded``)."""
    wanted = node_fields(info)
    loaders = info.context.loaders
    batches: list[Awaitable[None]] = []
    if wanted & {"status", "systemStatus", "reassignableAt"}:
        batches.append(fill(loaders.status, (row.status_id for row in rows)))
    if "owner" in wanted:
        batches.append(fill(loaders.user, (row.owner_id for row in rows if row.owner_id is not None)))
    if "blockedChannels" in wanted:
        batches.append(fill(loaders.blocked_channels, rows))
    for name, loader in (
        ("activities", loaders.activities_by_prospect),
        ("statusHistory", loaders.history_by_prospect),
        ("tasks", loaders.tasks_by_prospect),
        ("messages", loaders.messages_by_prospect),
        ("enrollments", loaders.enrollments_by_prospect),
    ):
        if name in wanted:
            batches.append(fill(loader, (row.id for row in rows)))
    await asyncio.gather(*batches)


async def preload_tasks(info: Info, rows: Sequence[prospects.Task]) -> None:
    """Loads what the selection asks of a page's tasks, one batch per kind, so that
    each task's prospect, assignee, enrollment and step answer at once."""
    wanted = node_fields(info)
    loaders = info.context.loaders
    batches: list[Awaitable[None]] = []
    if "prospect" in wanted:
        batches.append(fill(loaders.prospect, (row.prospect_id for row in rows)))
    if "assignee" in wanted:
        batches.append(fill(loaders.user, (row.assignee_id for row in rows if row.assignee_id is not None)))
    if "enrollment" in wanted:
        batches.append(fill(loaders.enrollment, (row.enrollment_id for row in rows if row.enrollment_id is not None)))
    if "step" in wanted:
        batches.append(fill(loaders.step, (row.step_id for row in rows if row.step_id is not None)))
    await asyncio.gather(*batches)


def _prospect(row: prospects.Prospect | None) -> Prospect:
    assert row is not None  # a task's, activity's or change's prospect is never deleted from under it
    return Prospect(row=row)


async def load_prospect(info: Info, prospect_id: int) -> Prospect:
    return _prospect(await info.context.loaders.prospect.load(prospect_id))


@strawberry.type(description="A logged interaction; applying its action runs the action's operations.")
class Activity(Node):
    row: strawberry.Private[prospects.Activity]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("Activity", self.row.id)

    @strawberry.field
    async def prospect(self, info: Info) -> Prospect:
        return await load_prospect(info, self.row.prospect_id)

    @strawberry.field
    async def action(self, info: Info) -> Action | None:
        if self.row.action_id is None:
            return None
        row = await info.context.loaders.action.load(self.row.action_id)
        return Action(row=row) if row is not None else None

    @strawberry.field
    def interaction(self) -> Interaction:
        return Interaction(self.row.interaction)

    @strawberry.field
    def note(self) -> str | None:
        return self.row.note

    @strawberry.field
    async def actor(self, info: Info) -> User | None:
        return await load_user(info, self.row.actor_id)

    @strawberry.field
    def at(self) -> datetime:
        return self.row.at


@strawberry.type
class StatusChange(Node):
    row: strawberry.Private[prospects.StatusChange]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("StatusChange", self.row.id)

    @strawberry.field
    async def prospect(self, info: Info) -> Prospect:
        return await load_prospect(info, self.row.prospect_id)

    @strawberry.field(name="from")
    async def from_(self, info: Info) -> Status | None:
        return None if self.row.from_status_id is None else await load_status(info, self.row.from_status_id)

    @strawberry.field
    async def to(self, info: Info) -> Status:
        return await load_status(info, self.row.to_status_id)

    @strawberry.field
    def cause(self) -> ChangeCause:
        return self.row.cause

    @strawberry.field
    async def actor(self, info: Info) -> User | None:
        return await load_user(info, self.row.actor_id)

    @strawberry.field(description="The note given with the change, if any.")
    def note(self) -> str | None:
        return self.row.note

    @strawberry.field
    def at(self) -> datetime:
        return self.row.at


@strawberry.type(
    description="A to-do for a user about a prospect: a call to make, a scheduled callback, anything else."
)
class Task(Node):
    row: strawberry.Private[prospects.Task]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("Task", self.row.id)

    # Answered at once when the tasks page preloaded them (preload_tasks).
    @strawberry.field(graphql_type=Prospect)
    def prospect(self, info: Info) -> Prospect | Awaitable[Prospect]:
        return loaded(info.context.loaders.prospect, self.row.prospect_id, _prospect)

    @strawberry.field(graphql_type=User | None)
    def assignee(self, info: Info) -> User | Awaitable[User | None] | None:
        if self.row.assignee_id is None:
            return None
        return loaded(info.context.loaders.user, self.row.assignee_id, User.wrap)

    @strawberry.field
    def kind(self) -> TaskKind:
        return self.row.kind

    @strawberry.field
    def due_at(self) -> datetime:
        return self.row.due_at

    @strawberry.field
    def completed_at(self) -> datetime | None:
        return self.row.completed_at

    @strawberry.field
    def note(self) -> str | None:
        return self.row.note

    @strawberry.field(graphql_type=Annotated["Enrollment", strawberry.lazy(_SEQUENCES)] | None)
    def enrollment(self, info: Info) -> Enrollment | Awaitable[Enrollment | None] | None:
        if self.row.enrollment_id is None:
            return None
        enrollment_type: type[Enrollment] = lazy_type(_SEQUENCES, "Enrollment")
        return loaded(
            info.context.loaders.enrollment,
            self.row.enrollment_id,
            lambda row: enrollment_type(row=row) if row is not None else None,
        )

    @strawberry.field(graphql_type=Annotated["SequenceStep", strawberry.lazy(_SEQUENCES)] | None)
    def step(self, info: Info) -> SequenceStep | Awaitable[SequenceStep | None] | None:
        if self.row.step_id is None:
            return None
        step_type: type[SequenceStep] = lazy_type(_SEQUENCES, "SequenceStep")
        return loaded(
            info.context.loaders.step, self.row.step_id, lambda row: step_type(row=row) if row is not None else None
        )

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at
