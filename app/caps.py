"""How much configuration an organization may have (SPEC R15).

The API lists configuration whole (no pages), so these caps are the lengths the
query cost limit (schema/cost.py) counts such lists at: without them an
organization could hold more rows than the cost assumes, and one cheap-looking
query could return millions of objects. They are several times what a sales
team uses (the largest preset has 4 workflows, 8 statuses in a workflow, 10 in
all, 8 actions and 9 rules) and small enough that reading the whole
configuration (each status with its actions, each action with its statuses)
costs under a fifth of the default budget.

Each ``room_for_…`` raises CONFLICT, naming the field, when adding one more would
pass a cap. Call it inside the transaction that adds the row: it locks the
organization's row, so that concurrent additions count one after another.
"""

from __future__ import annotations

from typing import Any

from tortoise.models import Model

from app.accounts.models import ApiToken, Organization, User
from app.errors import Conflict, Field
from app.workflows.models import Action, ActionCategory, AutomationRule, Status, Workflow

MAX_WORKFLOWS = 50
MAX_STATUSES_PER_WORKFLOW = 50
MAX_STATUSES = 250
"""Live statuses in all workflows, hence also the most an action is available in."""
MAX_CATEGORIES = 50
MAX_ACTIONS = 250
"""Hence also the most actions in a category or available in a status."""
MAX_RULES = 250
MAX_USERS = 5_000
"""Users are never deleted, so deactivated ones count too."""
MAX_ACTIVE_TOKENS = 10_000
"""Tokens not revoked: two for each user at the most users."""


async def _ensure_room(
    organization_id: int, model: type[Model], cap: int, refusal: str, field: Field, **scope: Any
) -> None:
    await Organization.filter(id=organization_id).select_for_update().get()
    if await model.filter(organization_id=organization_id, **scope).count() >= cap:
        raise Conflict(refusal, field)


async def room_for_workflow(organization_id: int) -> None:
    await _ensure_room(
        organization_id,
        Workflow,
        MAX_WORKFLOWS,
        f"An organization has at most {MAX_WORKFLOWS} workflows; delete one first.",
        (),
        deleted_at=None,
    )


async def room_for_status(organization_id: int, workflow_id: int, field: Field) -> None:
    """Room in workflow ``workflow_id`` (the input at ``field``) and in the organization."""
    await _ensure_room(
        organization_id,
        Status,
        MAX_STATUSES_PER_WORKFLOW,
        f"A workflow has at most {MAX_STATUSES_PER_WORKFLOW} statuses; delete one or use another workflow.",
        field,
        workflow_id=workflow_id,
        deleted_at=None,
    )
    await _ensure_room(
        organization_id,
        Status,
        MAX_STATUSES,
        f"An organization has at most {MAX_STATUSES} statuses; delete one first.",
        (),
        deleted_at=None,
    )


async def room_for_category(organization_id: int) -> None:
    await _ensure_room(
        organization_id,
        ActionCategory,
        MAX_CATEGORIES,
        f"An organization has at most {MAX_CATEGORIES} action categories.",
        (),
    )


async def room_for_action(organization_id: int) -> None:
    await _ensure_room(
        organization_id,
        Action,
        MAX_ACTIONS,
        f"An organization has at most {MAX_ACTIONS} actions; delete one first.",
        (),
    )


async def room_for_rule(organization_id: int) -> None:
    await _ensure_room(
        organization_id,
        AutomationRule,
        MAX_RULES,
        f"An organization has at most {MAX_RULES} automation rules; delete one first.",
        (),
    )


async def room_for_user(organization_id: int) -> None:
    await _ensure_room(organization_id, User, MAX_USERS, f"An organization has at most {MAX_USERS:,} users.", ())


async def room_for_token(organization_id: int) -> None:
    await _ensure_room(
        organization_id,
        ApiToken,
        MAX_ACTIVE_TOKENS,
        f"An organization has at most {MAX_ACTIVE_TOKENS:,} API tokens not revoked; revoke one first.",
        (),
        revoked_at=None,
    )
