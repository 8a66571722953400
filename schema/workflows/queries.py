"""Query fields of workflows: workflows, action categories, actions, automation rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from tortoise.queryset import QuerySet

from app.workflows import read
from schema.context import Info
from schema.node import Node, NodeReader
from schema.workflows.types import Action, ActionCategory, AutomationRule, Status, Workflow


def _configuration(rows: Callable[[int], QuerySet[Any]], wrap: type[Any]) -> NodeReader:
    """A node reader for a configuration row, which any member of the organization may read."""

    async def read_node(info: Info, pk: int) -> Node | None:
        row = await rows(info.context.actor.organization_id).get_or_none(id=pk)
        return wrap(row=row) if row else None

    return read_node


NODES: dict[str, NodeReader] = {
    "Workflow": _configuration(read.workflows, Workflow),
    "Status": _configuration(read.statuses, Status),
    "ActionCategory": _configuration(read.categories, ActionCategory),
    "Action": _configuration(read.actions, Action),
    "AutomationRule": _configuration(read.rules, AutomationRule),
}


@strawberry.type
class WorkflowQueries:
    @strawberry.field
    async def workflows(self, info: Info) -> list[Workflow]:
        rows = await read.workflows(info.context.actor.organization_id).order_by("position", "id")
        return [Workflow(row=r) for r in rows]

    @strawberry.field
    async def action_categories(self, info: Info) -> list[ActionCategory]:
        rows = await read.categories(info.context.actor.organization_id).order_by("id")
        return [ActionCategory(row=r) for r in rows]

    @strawberry.field
    async def actions(self, info: Info) -> list[Action]:
        rows = await read.actions(info.context.actor.organization_id).order_by("position", "id")
        return [Action(row=r) for r in rows]

    @strawberry.field
    async def automation_rules(self, info: Info) -> list[AutomationRule]:
        rows = await read.rules(info.context.actor.organization_id).order_by("id")
        return [AutomationRule(row=r) for r in rows]
