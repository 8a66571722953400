"""Object types. Each wraps one ORM row (``row``, private) and resolves its
relations through the request's DataLoaders."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON

from app import ids
from app.accounts import models as accounts
from app.prospects import distribution
from app.prospects import models as prospects
from app.workflows import models as workflows
from schema.context import Info
from schema.enums import (
    ChangeCause,
    Channel,
    ConversationState,
    EnrollmentStage,
    Interaction,
    OperationType,
    Role,
    SystemStatus,
    TaskKind,
    TriggerEvent,
)
from schema.relay import Connection, Node, paginate_loaded

if TYPE_CHECKING:
    from schema.messaging.types import Message
    from schema.sequences.types import Enrollment, Sequence, SequenceStep


def _gid(type_name: str, pk: int) -> strawberry.ID:
    return strawberry.ID(ids.encode(type_name, pk))


@strawberry.type
class Organization(Node):
    row: strawberry.Private[accounts.Organization]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return _gid("Organization", self.row.id)

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    def time_zone(self) -> str:
        return self.row.time_zone

    @strawberry.field(description="Region for reading national phone numbers (ISO 3166 alpha-2).")
    def phone_region(self) -> str:
        return self.row.phone_region

    @strawberry.field
    async def default_status(self, info: Info) -> Status | None:
        if self.row.default_status_id is None:
            return None
        return Status.wrap(await info.context.loaders.status.load(self.row.default_status_id))

    @strawberry.field
    def pull_from_other_agents(self) -> bool:
        return self.row.pull_from_other_agents

    @strawberry.field
    def email_from(self) -> str | None:
        return self.row.email_from

    @strawberry.field
    def sms_from(self) -> str | None:
        return self.row.sms_from

    @strawberry.field
    def postal_address(self) -> str | None:
        return self.row.postal_address


@strawberry.type
class User(Node):
    row: strawberry.Private[accounts.User]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return _gid("User", self.row.id)

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    def email(self) -> str:
        return self.row.email

    @strawberry.field
    def role(self) -> Role:
        return self.row.role

    @strawberry.field
    def active(self) -> bool:
        return self.row.active

    @staticmethod
    def wrap(row: accounts.User | None) -> User | None:
        return User(row=row) if row is not None else None


async def _user(info: Info, user_id: int | None) -> User | None:
    return None if user_id is None else User.wrap(await info.context.loaders.user.load(user_id))


@strawberry.type
class ApiToken(Node):
    row: strawberry.Private[accounts.ApiToken]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return _gid("ApiToken", self.row.id)

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    async def user(self, info: Info) -> User:
        user = await _user(info, self.row.user_id)
        assert user is not None
        return user

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    def last_used_at(self) -> datetime | None:
        return self.row.last_used_at

    @strawberry.field
    def revoked_at(self) -> datetime | None:
        return self.row.revoked_at


@strawberry.type(description="A group of statuses (a 'bucket'): one major milestone of the sales process.")
class Workflow(Node):
    row: strawberry.Private[workflows.Workflow]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return _gid("Workflow", self.row.id)

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field(description="Index among the organization's workflows, from 0.")
    def position(self) -> int:
        return self.row.position

    @strawberry.field
    async def statuses(self, info: Info) -> list[Status]:
        return [Status(row=s) for s in await info.context.loaders.statuses_by_workflow.load(self.row.id)]


@strawberry.type
class Status(Node):
    row: strawberry.Private[workflows.Status]

    @staticmethod
    def wrap(row: workflows.Status | None) -> Status | None:
        return Status(row=row) if row is not None else None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return _gid("Status", self.row.id)

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    async def workflow(self, info: Info) -> Workflow:
        row = await info.context.loaders.workflow.load(self.row.workflow_id)
        assert row is not None
        return Workflow(row=row)

    @strawberry.field(description="Index within its workflow, from 0.")
    def position(self) -> int:
        return self.row.position

    @strawberry.field
    def system_status(self) -> SystemStatus:
        return self.row.system_status

    @strawberry.field(description="Likelihood of a sale for a prospect in this status, 0 to 100.")
    def pipeline_percent(self) -> int:
        return self.row.pipeline_percent

    @strawberry.field(
        description="After this long with one owner in this status, another agent may pull the prospect. Null: no limit."
    )
    def max_assignment_seconds(self) -> int | None:
        return self.row.max_assignment_seconds

    @strawberry.field(description="Entering this status finishes the prospect's active enrollments with this outcome.")
    def enrollment_outcome(self) -> EnrollmentStage | None:
        return self.row.enrollment_outcome

    @strawberry.field(description="Actions (dispositions) available while a prospect is in this status.")
    async def actions(self, info: Info) -> list[Action]:
        return [Action(row=a) for a in await info.context.loaders.actions_by_status.load(self.row.id)]


async def _status(info: Info, status_id: int) -> Status:
    status = Status.wrap(await info.context.loaders.status.load(status_id))
    assert status is not None
    return status


@strawberry.type
class ActionCategory(Node):
    row: strawberry.Private[workflows.ActionCategory]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return _gid("ActionCategory", self.row.id)

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    async def actions(self, info: Info) -> list[Action]:
        return [Action(row=a) for a in await info.context.loaders.actions_by_category.load(self.row.id)]


@strawberry.type
class Operation:
    data: strawberry.Private[dict[str, Any]]

    @strawberry.field
    def type(self) -> OperationType:
        return OperationType(self.data["type"])

    @strawberry.field
    async def status(self, info: Info) -> Status | None:
        pk = self.data.get("status_id")
        return None if pk is None else Status.wrap(await info.context.loaders.status.load(pk))

    @strawberry.field
    async def user(self, info: Info) -> User | None:
        return await _user(info, self.data.get("user_id"))

    @strawberry.field
    def delay_seconds(self) -> int | None:
        value = self.data.get("delay_seconds")
        return None if value is None else int(value)

    @strawberry.field
    async def sequence(self, info: Info) -> Annotated[Sequence, strawberry.lazy("schema.sequences.types")] | None:
        from schema.sequences.types import Sequence

        pk = self.data.get("sequence_id")
        row = None if pk is None else await info.context.loaders.sequence.load(pk)
        return Sequence(row=row) if row is not None else None

    @strawberry.field
    def outcome(self) -> EnrollmentStage | None:
        value = self.data.get("outcome")
        return None if value is None else EnrollmentStage(value)

    @strawberry.field
    def channel(self) -> Channel | None:
        value = self.data.get("channel")
        return None if value is None else Channel(value)

    @strawberry.field
    def subject(self) -> str | None:
        value = self.data.get("subject")
        return None if value is None else str(value)

    @strawberry.field
    def body(self) -> str | None:
        value = self.data.get("body")
        return None if value is None else str(value)


@strawberry.type(description="A disposition: what can happen to a prospect, and the operations it performs.")
class Action(Node):
    row: strawberry.Private[workflows.Action]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return _gid("Action", self.row.id)

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    async def category(self, info: Info) -> ActionCategory | None:
        if self.row.category_id is None:
            return None
        row = await info.context.loaders.category.load(self.row.category_id)
        return ActionCategory(row=row) if row else None

    @strawberry.field(description="Interactions this action may be logged with; empty means any.")
    def interactions(self) -> list[Interaction]:
        return [Interaction(i) for i in self.row.interactions]

    @strawberry.field(description="Statuses in which this action is available; empty means every status.")
    async def available_in(self, info: Info) -> list[Status]:
        return [Status(row=s) for _, s in await info.context.loaders.available_in.load(self.row.id)]

    @strawberry.field
    def operations(self) -> list[Operation]:
        return [Operation(data=op) for op in self.row.operations]


@strawberry.type(description="Operations run automatically when an event happens.")
class AutomationRule(Node):
    row: strawberry.Private[workflows.AutomationRule]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return _gid("AutomationRule", self.row.id)

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    def enabled(self) -> bool:
        return self.row.enabled

    @strawberry.field
    def event(self) -> TriggerEvent:
        return self.row.event

    @strawberry.field(description="Only for STATUS_ENTERED: the status to match.")
    async def status(self, info: Info) -> Status | None:
        return None if self.row.status_id is None else await _status(info, self.row.status_id)

    @strawberry.field(description="MESSAGE_SENT / MESSAGE_RECEIVED: the channel to match; null matches any.")
    def channel(self) -> Channel | None:
        return self.row.channel

    @strawberry.field(description="ENROLLMENT_STAGE_CHANGED: the new stage to match; null matches any.")
    def stage(self) -> EnrollmentStage | None:
        return self.row.stage

    @strawberry.field
    def operations(self) -> list[Operation]:
        return [Operation(data=op) for op in self.row.operations]


@strawberry.type
class Prospect(Node):
    row: strawberry.Private[prospects.Prospect]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return _gid("Prospect", self.row.id)

    @strawberry.field
    def first_name(self) -> str | None:
        return self.row.first_name

    @strawberry.field
    def last_name(self) -> str | None:
        return self.row.last_name

    @strawberry.field
    def email(self) -> str | None:
        return self.row.email

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

    @strawberry.field
    async def status(self, info: Info) -> Status:
        return await _status(info, self.row.status_id)

    @strawberry.field
    async def system_status(self, info: Info) -> SystemStatus:
        return (await _status(info, self.row.status_id)).row.system_status

    @strawberry.field
    async def owner(self, info: Info) -> User | None:
        return await _user(info, self.row.owner_id)

    @strawberry.field
    def assigned_at(self) -> datetime | None:
        return self.row.assigned_at

    @strawberry.field(description="Not pullable before this time (the pull delay); null: at once.")
    def pullable_after(self) -> datetime | None:
        return self.row.pullable_after

    @strawberry.field(
        description="When another agent may pull it from its owner (max assignment time of its status); null: never."
    )
    async def reassignable_at(self, info: Info) -> datetime | None:
        status = await info.context.loaders.status.load(self.row.status_id)
        return distribution.reassignable_at(self.row, status) if status is not None else None

    @strawberry.field
    def do_not_contact(self) -> bool:
        return self.row.do_not_contact

    @strawberry.field
    def opted_out_channels(self) -> list[Channel]:
        return [Channel(c) for c in self.row.opted_out_channels]

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

    @strawberry.field
    async def activities(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[Activity]:
        rows = await info.context.loaders.activities_by_prospect.load(self.row.id)
        return paginate_loaded(rows, first, after, lambda r: Activity(row=r))

    @strawberry.field
    async def status_history(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[StatusChange]:
        rows = await info.context.loaders.history_by_prospect.load(self.row.id)
        return paginate_loaded(rows, first, after, lambda r: StatusChange(row=r))

    @strawberry.field
    async def tasks(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[Task]:
        rows = await info.context.loaders.tasks_by_prospect.load(self.row.id)
        return paginate_loaded(rows, first, after, lambda r: Task(row=r))

    @strawberry.field
    def conversation_state(self) -> ConversationState:
        return self.row.conversation_state

    @strawberry.field
    def last_message_at(self) -> datetime | None:
        return self.row.last_message_at

    @strawberry.field
    async def messages(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Annotated[Message, strawberry.lazy("schema.messaging.types")]]:
        from schema.messaging.types import Message

        rows = await info.context.loaders.messages_by_prospect.load(self.row.id)
        return paginate_loaded(rows, first, after, lambda r: Message(row=r))

    @strawberry.field
    async def enrollments(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Annotated[Enrollment, strawberry.lazy("schema.sequences.types")]]:
        from schema.sequences.types import Enrollment

        rows = await info.context.loaders.enrollments_by_prospect.load(self.row.id)
        return paginate_loaded(rows, first, after, lambda r: Enrollment(row=r))


async def _prospect(info: Info, prospect_id: int) -> Prospect:
    row = await info.context.loaders.prospect.load(prospect_id)
    assert row is not None
    return Prospect(row=row)


@strawberry.type(description="A logged interaction; applying its action runs the action's operations.")
class Activity(Node):
    row: strawberry.Private[prospects.Activity]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return _gid("Activity", self.row.id)

    @strawberry.field
    async def prospect(self, info: Info) -> Prospect:
        return await _prospect(info, self.row.prospect_id)

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
        return await _user(info, self.row.actor_id)

    @strawberry.field
    def at(self) -> datetime:
        return self.row.at


@strawberry.type
class StatusChange(Node):
    row: strawberry.Private[prospects.StatusChange]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return _gid("StatusChange", self.row.id)

    @strawberry.field
    async def prospect(self, info: Info) -> Prospect:
        return await _prospect(info, self.row.prospect_id)

    @strawberry.field(name="from")
    async def from_(self, info: Info) -> Status | None:
        return None if self.row.from_status_id is None else await _status(info, self.row.from_status_id)

    @strawberry.field
    async def to(self, info: Info) -> Status:
        return await _status(info, self.row.to_status_id)

    @strawberry.field
    def cause(self) -> ChangeCause:
        return self.row.cause

    @strawberry.field
    async def actor(self, info: Info) -> User | None:
        return await _user(info, self.row.actor_id)

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
        return _gid("Task", self.row.id)

    @strawberry.field
    async def prospect(self, info: Info) -> Prospect:
        return await _prospect(info, self.row.prospect_id)

    @strawberry.field
    async def assignee(self, info: Info) -> User | None:
        return await _user(info, self.row.assignee_id)

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

    @strawberry.field
    async def enrollment(self, info: Info) -> Annotated[Enrollment, strawberry.lazy("schema.sequences.types")] | None:
        from schema.sequences.types import Enrollment

        row = (
            None
            if self.row.enrollment_id is None
            else await info.context.loaders.enrollment.load(self.row.enrollment_id)
        )
        return Enrollment(row=row) if row is not None else None

    @strawberry.field
    async def step(self, info: Info) -> Annotated[SequenceStep, strawberry.lazy("schema.sequences.types")] | None:
        from schema.sequences.types import SequenceStep

        row = None if self.row.step_id is None else await info.context.loaders.step.load(self.row.step_id)
        return SequenceStep(row=row) if row is not None else None

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at
