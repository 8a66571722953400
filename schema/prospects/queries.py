"""Query fields of prospects: prospects and tasks, each as the viewer may see them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from tortoise.expressions import Subquery
from tortoise.models import Model

from app import validation
from app.errors import DomainError
from app.prospects import models as prospects
from app.prospects import service as prospect_service
from app.sequences import models as sequences
from schema.context import Info, domain_to_public
from schema.enums import ConversationState, EnrollmentStage, SystemStatus
from schema.node import Node, NodeReader, decode_ids
from schema.pagination import Connection, paginate
from schema.prospects.types import Activity, Prospect, StatusChange, Task


@strawberry.input
class ProspectFilter:
    status_ids: list[strawberry.ID] | None = None
    workflow_ids: list[strawberry.ID] | None = None
    system_statuses: list[SystemStatus] | None = None
    owner_ids: list[strawberry.ID] | None = None
    unassigned: bool | None = None
    do_not_contact: bool | None = None
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of name, email, phone or company."
    )
    conversation_states: list[ConversationState] | None = None
    sequence_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Has an enrollment in one of these sequences."
    )
    enrollment_stages: list[EnrollmentStage] | None = strawberry.field(
        default=None, description="Has an enrollment in one of these stages."
    )


def _search(text: str) -> str:
    try:
        return validation.search(text, ["filter", "search"])
    except DomainError as error:
        raise domain_to_public(error) from error


@strawberry.input
class TaskFilter:
    assignee_ids: list[strawberry.ID] | None = None
    open: bool | None = strawberry.field(default=None, description="true: only open tasks; false: only completed ones.")
    due_before: datetime | None = None


async def _prospect(info: Info, pk: int) -> Node | None:
    prospect = await prospect_service.visible(info.context.actor).get_or_none(id=pk)
    return Prospect(row=prospect) if prospect else None


def prospect_data(model: type[Model], wrap: type[Any]) -> NodeReader:
    """A node reader for a row of a prospect's, readable only while its prospect is
    visible to the viewer (R1.3)."""

    async def read(info: Info, pk: int) -> Node | None:
        actor = info.context.actor
        row = await model.get_or_none(id=pk, organization_id=actor.organization_id)
        visible = (
            row is not None and await prospect_service.visible(actor).filter(id=cast(Any, row).prospect_id).exists()
        )
        return wrap(row=row) if visible else None

    return read


NODES: dict[str, NodeReader] = {
    "Prospect": _prospect,
    "Activity": prospect_data(prospects.Activity, Activity),
    "StatusChange": prospect_data(prospects.StatusChange, StatusChange),
    "Task": prospect_data(prospects.Task, Task),
}


@strawberry.type
class ProspectQueries:
    @strawberry.field
    async def prospects(
        self, info: Info, filter: ProspectFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[Prospect]:
        query = prospect_service.visible(info.context.actor)
        if filter is not None:
            if (status_ids := decode_ids("Status", filter.status_ids)) is not None:
                query = query.filter(status_id__in=status_ids)
            if (workflow_ids := decode_ids("Workflow", filter.workflow_ids)) is not None:
                query = query.filter(status__workflow_id__in=workflow_ids)
            if filter.system_statuses is not None:
                query = query.filter(status__system_status__in=[s.value for s in filter.system_statuses])
            if (owner_ids := decode_ids("User", filter.owner_ids)) is not None:
                query = query.filter(owner_id__in=owner_ids)
            if filter.unassigned is not None:
                query = query.filter(owner_id__isnull=filter.unassigned)
            if filter.do_not_contact is not None:
                query = query.filter(do_not_contact=filter.do_not_contact)
            if filter.search:
                query = query.filter(search_text__contains=_search(filter.search))
            if filter.conversation_states is not None:
                query = query.filter(conversation_state__in=[c.value for c in filter.conversation_states])
            enrolled = sequences.Enrollment.filter(organization_id=info.context.actor.organization_id)
            if (sequence_ids := decode_ids("Sequence", filter.sequence_ids)) is not None:
                query = query.filter(
                    id__in=Subquery(enrolled.filter(sequence_id__in=sequence_ids).values("prospect_id"))
                )
            if filter.enrollment_stages is not None:
                stages = [s.value for s in filter.enrollment_stages]
                query = query.filter(id__in=Subquery(enrolled.filter(stage__in=stages).values("prospect_id")))
        return await paginate(query, first, after, lambda r: Prospect(row=r))

    @strawberry.field
    async def tasks(
        self, info: Info, filter: TaskFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[Task]:
        query = prospect_service.visible_tasks(info.context.actor)
        if filter is not None:
            if (assignee_ids := decode_ids("User", filter.assignee_ids)) is not None:
                query = query.filter(assignee_id__in=assignee_ids)
            if filter.open is not None:
                query = query.filter(completed_at__isnull=filter.open)
            if filter.due_before is not None:
                query = query.filter(due_at__lt=filter.due_before)
        return await paginate(query, first, after, lambda r: Task(row=r))
