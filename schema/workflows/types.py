"""Workflow, status, action and automation rule types."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from app.workflows import models as workflows
from schema.accounts.types import User, load_user
from schema.context import Info
from schema.enums import (
    Channel,
    EnrollmentStage,
    Interaction,
    OperationType,
    SystemStatus,
    TriggerEvent,
)
from schema.node import Node, global_id, lazy_type

if TYPE_CHECKING:
    from schema.sequences.types import Sequence

# Types above this module (they import it): named here, resolved when first used.
_SEQUENCES = "schema.sequences.types"


@strawberry.type(description="A group of statuses (a 'bucket'): one major milestone of the sales process.")
class Workflow(Node):
    row: strawberry.Private[workflows.Workflow]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("Workflow", self.row.id)

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
        return global_id("Status", self.row.id)

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

    @strawberry.field(
        description=(
            "Entering this status finishes the prospect's active enrollments with this outcome; PAUSED pauses the"
            " running ones instead, and STARTED starts or resumes the waiting ones (not those of an inactive"
            " sequence). A status an ENROLLMENT_STAGE_CHANGED rule sets follows that stage change and moves no"
            " enrollment."
        )
    )
    def enrollment_outcome(self) -> EnrollmentStage | None:
        return self.row.enrollment_outcome

    @strawberry.field(description="Actions (dispositions) available while a prospect is in this status.")
    async def actions(self, info: Info) -> list[Action]:
        return [Action(row=a) for a in await info.context.loaders.actions_by_status.load(self.row.id)]


def status_of(row: workflows.Status | None) -> Status:
    """The Status of a row that must exist: a status referenced is never deleted
    from under what references it (statuses are soft-deleted)."""
    assert row is not None
    return Status(row=row)


async def load_status(info: Info, status_id: int) -> Status:
    return status_of(await info.context.loaders.status.load(status_id))


@strawberry.type
class ActionCategory(Node):
    row: strawberry.Private[workflows.ActionCategory]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("ActionCategory", self.row.id)

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
        return await load_user(info, self.data.get("user_id"))

    @strawberry.field
    def delay_seconds(self) -> int | None:
        value = self.data.get("delay_seconds")
        return None if value is None else int(value)

    @strawberry.field
    async def sequence(self, info: Info) -> Annotated[Sequence, strawberry.lazy(_SEQUENCES)] | None:
        sequence_type: type[Sequence] = lazy_type(_SEQUENCES, "Sequence")
        pk = self.data.get("sequence_id")
        row = None if pk is None else await info.context.loaders.sequence.load(pk)
        return sequence_type(row=row) if row is not None else None

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
        return global_id("Action", self.row.id)

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
        return global_id("AutomationRule", self.row.id)

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
        return None if self.row.status_id is None else await load_status(info, self.row.status_id)

    @strawberry.field(description="MESSAGE_SENT / MESSAGE_RECEIVED: the channel to match; null matches any.")
    def channel(self) -> Channel | None:
        return self.row.channel

    @strawberry.field(description="ENROLLMENT_STAGE_CHANGED: the new stage to match; null matches any.")
    def stage(self) -> EnrollmentStage | None:
        return self.row.stage

    @strawberry.field(
        description="The rule runs only for prospects whose status, when the event happens, is one of these; empty: any status."
    )
    async def only_in_statuses(self, info: Info) -> list[Status]:
        rows = await info.context.loaders.status.load_many(self.row.only_in_status_ids)
        return [Status(row=row) for row in rows if row is not None]

    @strawberry.field
    def operations(self) -> list[Operation]:
        return [Operation(data=op) for op in self.row.operations]
