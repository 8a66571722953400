"""Query fields of workflows: workflows, action categories, actions, automation rules."""

from __future__ import annotations

from typing import Any

import strawberry
from tortoise.models import Model

from app.workflows import models as workflows
from schema.context import Info
from schema.node import Node, NodeReader
from schema.workflows.types import Action, ActionCategory, AutomationRule, Status, Workflow


def _configuration(model: type[Model], wrap: type[Any], **filters: Any) -> NodeReader:
    """A node reader for a configuration row, which any member of the organization may read."""

    async def read(info: Info, pk: int) -> Node | None:
        row = await model.get_or_none(id=pk, organization_id=info.context.actor.organization_id, **filters)
        return wrap(row=row) if row else None

    return read


NODES: dict[str, NodeReader] = {
    "Workflow": _configuration(workflows.Workflow, Workflow, deleted_at=None),
    "Status": _configuration(workflows.Status, Status, deleted_at=None),
    "ActionCategory": _configuration(workflows.ActionCategory, ActionCategory),
    "Action": _configuration(workflows.Action, Action),
    "AutomationRule": _configuration(workflows.AutomationRule, AutomationRule),
}


@strawberry.type
class WorkflowQueries:
    @strawberry.field
    async def workflows(self, info: Info) -> list[Workflow]:
        rows = await workflows.Workflow.filter(
            organization_id=info.context.actor.organization_id, deleted_at=None
        ).order_by("position", "id")
        return [Workflow(row=r) for r in rows]

    @strawberry.field
    async def action_categories(self, info: Info) -> list[ActionCategory]:
        rows = await workflows.ActionCategory.filter(organization_id=info.context.actor.organization_id).order_by("id")
        return [ActionCategory(row=r) for r in rows]

    @strawberry.field
    async def actions(self, info: Info) -> list[Action]:
        rows = await workflows.Action.filter(organization_id=info.context.actor.organization_id).order_by(
            "position", "id"
        )
        return [Action(row=r) for r in rows]

    @strawberry.field
    async def automation_rules(self, info: Info) -> list[AutomationRule]:
        rows = await workflows.AutomationRule.filter(organization_id=info.context.actor.organization_id).order_by("id")
        return [AutomationRule(row=r) for r in rows]
