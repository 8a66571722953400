"""Query fields of prospects: prospects and tasks, each as the viewer may see them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from tortoise.models import Model

from app import validation
from app.errors import DomainError
from app.prospects import models as prospects
from app.prospects import read
from schema.context import Info, domain_to_public
from schema.enums import ConversationState, EnrollmentStage, SystemStatus
from schema.node import Node, NodeReader, decode_ids
from schema.pagination import Connection, paginate
from schema.prospects.types import Activity, Prospect, StatusChange, Task, preload_prospects, preload_tasks


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
    external_ids: list[str] | None = None


def _search(text: str) -> str:
    try:
        return validation.search(text, ("search",))
    except DomainError as error:
        raise domain_to_public(error, under=("filter",)) from error


def _external_ids(values: list[str] | None) -> list[str] | None:
    try:
        return None if values is None else read.external_ids(values, ("external_ids",))
    except DomainError as error:
        raise domain_to_public(error, under=("filter",)) from error


@strawberry.input
class TaskFilter:
    assignee_ids: list[strawberry.ID] | None = None
    open: bool | None = strawberry.field(default=None, description="true: only open tasks; false: only completed ones.")
    due_before: datetime | None = None


async def _prospect(info: Info, pk: int) -> Node | None:
    row = await read.prospects(info.context.actor).get_or_none(id=pk)
    return Prospect(row=row) if row else None


def prospect_data(model: type[Model], wrap: type[Any]) -> NodeReader:
    """A node reader for a row of a prospect's, readable only while its prospect is
    visible to the viewer (R1.3)."""

    async def read_node(info: Info, pk: int) -> Node | None:
        row = await read.of_prospects(info.context.actor, model).get_or_none(id=pk)
        return wrap(row=row) if row else None

    return read_node


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
        given = filter or ProspectFilter()
        query = read.prospects(
            info.context.actor,
            status_ids=decode_ids("Status", given.status_ids),
            workflow_ids=decode_ids("Workflow", given.workflow_ids),
            system_statuses=given.system_statuses,
            owner_ids=decode_ids("User", given.owner_ids),
            unassigned=given.unassigned,
            do_not_contact=given.do_not_contact,
            search=_search(given.search) if given.search else None,
            conversation_states=given.conversation_states,
            sequence_ids=decode_ids("Sequence", given.sequence_ids),
            enrollment_stages=given.enrollment_stages,
            external_ids=_external_ids(given.external_ids),
        )
        page = await paginate(query, first, after, lambda r: Prospect(row=r))
        await preload_prospects(info, [edge.node.row for edge in page.edges])
        return page

    @strawberry.field
    async def tasks(
        self, info: Info, filter: TaskFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[Task]:
        given = filter or TaskFilter()
        query = read.tasks(
            info.context.actor,
            assignee_ids=decode_ids("User", given.assignee_ids),
            is_open=given.open,
            due_before=given.due_before,
        )
        page = await paginate(query, first, after, lambda r: Task(row=r))
        await preload_tasks(info, [edge.node.row for edge in page.edges])
        return page
