"""Query fields: each reads through one organization-scoped query or loader."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from tortoise.expressions import Subquery
from tortoise.models import Model
from tortoise.queryset import QuerySet

from app import ids, validation
from app.accounts import models as accounts
from app.errors import DomainError
from app.events import read as event_read
from app.messaging import models as messages
from app.prospects import models as prospects
from app.prospects import service as prospect_service
from app.sequences import models as sequences
from app.workflows import models as workflows
from schema import types
from schema.context import Info, domain_to_public
from schema.enums import ConversationState, EnrollmentStage, SystemStatus
from schema.events import types as event_types
from schema.messaging import types as message_types
from schema.relay import Connection, Node, decode_ids, paginate
from schema.reports import types as report_types
from schema.sequences import types as sequence_types
from schema.webhooks import mutations as webhook_types


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
class EnrollmentFilter:
    sequence_ids: list[strawberry.ID] | None = None
    prospect_ids: list[strawberry.ID] | None = None
    stages: list[EnrollmentStage] | None = None
    finished: bool | None = None


@strawberry.input
class TaskFilter:
    assignee_ids: list[strawberry.ID] | None = None
    open: bool | None = strawberry.field(default=None, description="true: only open tasks; false: only completed ones.")
    due_before: datetime | None = None


# Node types whose rows any member of the organization may read: model, type, filters.
_CONFIGURATION: dict[str, tuple[type[Model], type[Any], dict[str, Any]]] = {
    "User": (accounts.User, types.User, {}),
    "Workflow": (workflows.Workflow, types.Workflow, {"deleted_at": None}),
    "Status": (workflows.Status, types.Status, {"deleted_at": None}),
    "ActionCategory": (workflows.ActionCategory, types.ActionCategory, {}),
    "Action": (workflows.Action, types.Action, {}),
    "AutomationRule": (workflows.AutomationRule, types.AutomationRule, {}),
    "Sequence": (sequences.Sequence, sequence_types.Sequence, {}),
    "SequenceStep": (sequences.SequenceStep, sequence_types.SequenceStep, {"deleted_at": None}),
}
# Node types readable only while their prospect is visible to the viewer (R1.3).
_PROSPECT_DATA: dict[str, tuple[type[Model], type[Any]]] = {
    "Activity": (prospects.Activity, types.Activity),
    "StatusChange": (prospects.StatusChange, types.StatusChange),
    "Task": (prospects.Task, types.Task),
    "Enrollment": (sequences.Enrollment, sequence_types.Enrollment),
    "Message": (messages.Message, message_types.Message),
}


async def _node(info: Info, global_id: str) -> Node | None:
    """The node for ``global_id`` if the viewer may read it; None for anything else."""
    decoded = ids.decode(global_id)
    if decoded is None:
        return None
    type_name, pk = decoded
    actor = info.context.actor
    org = actor.organization_id
    if type_name == "Organization":
        return types.Organization(row=await accounts.Organization.get(id=org)) if pk == org else None
    if type_name == "ApiToken":
        token = await accounts.ApiToken.get_or_none(id=pk, organization_id=org)
        return types.ApiToken(row=token) if token and actor.role is accounts.Role.ADMIN else None
    if type_name == "Prospect":
        prospect = await prospect_service.visible(actor).get_or_none(id=pk)
        return types.Prospect(row=prospect) if prospect else None
    if type_name in _CONFIGURATION:
        model, wrap, filters = _CONFIGURATION[type_name]
        row = await model.get_or_none(id=pk, organization_id=org, **filters)
        return wrap(row=row) if row else None
    if type_name in _PROSPECT_DATA:
        model, wrap = _PROSPECT_DATA[type_name]
        row = await model.get_or_none(id=pk, organization_id=org)
        visible = (
            row is not None and await prospect_service.visible(actor).filter(id=cast(Any, row).prospect_id).exists()
        )
        return wrap(row=row) if visible else None
    if type_name == "Event":
        event = await event_read.visible(actor).get_or_none(id=pk)
        return event_types.Event(row=event) if event else None
    if type_name in ("WebhookEndpoint", "WebhookDelivery"):
        return await webhook_types.node(info, type_name, pk)
    if type_name == "StageChange":
        change = await sequences.StageChange.get_or_none(id=pk, organization_id=org)
        enrollment = None if change is None else await _node(info, ids.encode("Enrollment", change.enrollment_id))
        return sequence_types.StageChange(row=change) if change and enrollment else None
    return None


@strawberry.type
class Query:
    @strawberry.field
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return await _node(info, id)

    @strawberry.field
    async def viewer(self, info: Info) -> types.User:
        user = await accounts.User.get(id=info.context.actor.user_id)
        return types.User(row=user)

    @strawberry.field
    async def organization(self, info: Info) -> types.Organization:
        return types.Organization(row=await accounts.Organization.get(id=info.context.actor.organization_id))

    @strawberry.field
    async def users(self, info: Info) -> list[types.User]:
        rows = await accounts.User.filter(organization_id=info.context.actor.organization_id).order_by("id")
        return [types.User(row=r) for r in rows]

    @strawberry.field(
        description="The organization's API tokens not revoked (ADMIN only; empty for other roles). "
        "A revoked token is still read by `node`."
    )
    async def api_tokens(self, info: Info) -> list[types.ApiToken]:
        actor = info.context.actor
        if actor.role is not accounts.Role.ADMIN:
            return []
        # Revoked tokens pile up without end; the ones in use are capped (app/caps.py).
        rows = await accounts.ApiToken.filter(organization_id=actor.organization_id, revoked_at=None).order_by("id")
        return [types.ApiToken(row=r) for r in rows]

    @strawberry.field
    async def workflows(self, info: Info) -> list[types.Workflow]:
        rows = await workflows.Workflow.filter(
            organization_id=info.context.actor.organization_id, deleted_at=None
        ).order_by("position", "id")
        return [types.Workflow(row=r) for r in rows]

    @strawberry.field
    async def action_categories(self, info: Info) -> list[types.ActionCategory]:
        rows = await workflows.ActionCategory.filter(organization_id=info.context.actor.organization_id).order_by("id")
        return [types.ActionCategory(row=r) for r in rows]

    @strawberry.field
    async def actions(self, info: Info) -> list[types.Action]:
        rows = await workflows.Action.filter(organization_id=info.context.actor.organization_id).order_by(
            "position", "id"
        )
        return [types.Action(row=r) for r in rows]

    @strawberry.field
    async def automation_rules(self, info: Info) -> list[types.AutomationRule]:
        rows = await workflows.AutomationRule.filter(organization_id=info.context.actor.organization_id).order_by("id")
        return [types.AutomationRule(row=r) for r in rows]

    @strawberry.field
    async def prospects(
        self, info: Info, filter: ProspectFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[types.Prospect]:
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
        return await paginate(query, first, after, lambda r: types.Prospect(row=r))

    @strawberry.field
    async def tasks(
        self, info: Info, filter: TaskFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[types.Task]:
        query = prospect_service.visible_tasks(info.context.actor)
        if filter is not None:
            if (assignee_ids := decode_ids("User", filter.assignee_ids)) is not None:
                query = query.filter(assignee_id__in=assignee_ids)
            if filter.open is not None:
                query = query.filter(completed_at__isnull=filter.open)
            if filter.due_before is not None:
                query = query.filter(due_at__lt=filter.due_before)
        return await paginate(query, first, after, lambda r: types.Task(row=r))

    @strawberry.field
    async def sequences(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[sequence_types.Sequence]:
        query = sequences.Sequence.filter(organization_id=info.context.actor.organization_id)
        return await paginate(query, first, after, lambda r: sequence_types.Sequence(row=r))

    @strawberry.field(description="The event log, oldest first; `after` takes an event cursor.")
    async def events(
        self,
        info: Info,
        filter: event_types.EventFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[event_types.Event]:
        return await event_types.page(info, filter, first, after)

    @strawberry.field(description="Prospects per status of the workflow (of all workflows without one), weighted.")
    async def pipeline_report(
        self, info: Info, workflow_id: strawberry.ID | None = None
    ) -> report_types.PipelineReport:
        return await report_types.pipeline_report(info, workflow_id)

    @strawberry.field(description="Prospects per system status.")
    async def system_status_counts(self, info: Info) -> list[report_types.SystemStatusCount]:
        return await report_types.system_status_counts(info)

    @strawberry.field(description="Each active user's assigned prospects and open and overdue tasks.")
    async def agent_load(self, info: Info) -> list[report_types.AgentLoad]:
        return await report_types.agent_load(info)

    @strawberry.field(description="The organization's webhook endpoints (ADMIN only; empty for other roles).")
    async def webhook_endpoints(self, info: Info) -> list[webhook_types.WebhookEndpoint]:
        return await webhook_types.endpoints(info)

    @strawberry.field
    async def enrollments(
        self, info: Info, filter: EnrollmentFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[sequence_types.Enrollment]:
        query = enrollments_query(info, filter)
        return await paginate(query, first, after, lambda r: sequence_types.Enrollment(row=r))


def enrollments_query(info: Info, filter: EnrollmentFilter | None) -> QuerySet[sequences.Enrollment]:
    """The viewer's enrollments (an AGENT's: those of prospects it may work), filtered."""
    actor = info.context.actor
    query = prospect_service.of_visible(actor, sequences.Enrollment.filter(organization_id=actor.organization_id))
    if filter is not None:
        if (sequence_ids := decode_ids("Sequence", filter.sequence_ids)) is not None:
            query = query.filter(sequence_id__in=sequence_ids)
        if (prospect_ids := decode_ids("Prospect", filter.prospect_ids)) is not None:
            query = query.filter(prospect_id__in=prospect_ids)
        if filter.stages is not None:
            query = query.filter(stage__in=[s.value for s in filter.stages])
        if filter.finished is not None:
            query = query.filter(finished_at__isnull=not filter.finished)
    return query
