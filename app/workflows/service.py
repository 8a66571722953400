"""Configuration of the sales process: workflows, statuses, categories, actions, rules.

Only MANAGER and ADMIN change configuration (R1.3). Workflows and statuses are
deleted softly (``deleted_at``) so history keeps naming them; deleting one
that holds prospects is a CONFLICT unless they are moved in the same call
(R2.6), and so is deleting a status that an action or rule still moves to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from tortoise.models import Model
from tortoise.transactions import in_transaction

from app import caps, validation
from app.accounts.actor import Actor
from app.accounts.models import Organization
from app.errors import Conflict, Field, InvalidInput, NotFound
from app.prospects import effects
from app.prospects.models import ChangeCause, Channel, Prospect
from app.sequences.state import STATUS_OUTCOMES, Stage
from app.workflows import operations as ops
from app.workflows.chain import Chain
from app.workflows.models import (
    Action,
    ActionAvailability,
    ActionCategory,
    AutomationRule,
    Interaction,
    Status,
    SystemStatus,
    TriggerEvent,
    Workflow,
)

M = TypeVar("M", bound=Model)
UNCHANGED: Any = object()
"""A keyword left at UNCHANGED keeps the stored value."""


async def get_owned(actor: Actor, model: type[M], pk: int, field: Field, **extra: Any) -> M:
    """The organization's ``model`` row ``pk``; NotFound (at ``field``) for anything else."""
    row = await model.get_or_none(id=pk, organization_id=actor.organization_id, **extra)
    if row is None:
        raise NotFound(model.__name__, field)
    return row


async def get_status(actor: Actor, status_id: int, field: Field) -> Status:
    return await get_owned(actor, Status, status_id, field, deleted_at=None)


async def get_workflow(actor: Actor, workflow_id: int, field: Field) -> Workflow:
    return await get_owned(actor, Workflow, workflow_id, field, deleted_at=None)


async def _place(rows: list[Any], row: Any, position: int | None) -> None:
    """Puts ``row`` at index ``position`` (default: last) among ``rows`` and renumbers them 0…n-1."""
    others = [r for r in rows if r.id != row.id]
    index = len(others) if position is None else max(0, min(position, len(others)))
    others.insert(index, row)
    for number, item in enumerate(others):
        if item.position != number or item is row:
            item.position = number
            await item.save(update_fields=["position"])


def _position(value: int | None, field: Field) -> int | None:
    if value is not None and value < 0:
        raise InvalidInput("Position must be 0 or more.", field)
    return value


# ---- workflows ----


async def create_workflow(*, actor: Actor, name: str, position: int | None) -> Workflow:
    actor.require_manager()
    clean = validation.name(name, ("name",))
    _position(position, ("position",))
    async with in_transaction():
        await caps.room_for_workflow(actor.organization_id)
        siblings = await Workflow.filter(organization_id=actor.organization_id, deleted_at=None).order_by(
            "position", "id"
        )
        workflow = await Workflow.create(organization_id=actor.organization_id, name=clean, position=len(siblings))
        await _place([*siblings, workflow], workflow, position)
    return workflow


async def update_workflow(*, actor: Actor, workflow_id: int, name: str | None, position: int | None) -> Workflow:
    actor.require_manager()
    async with in_transaction():
        workflow = await get_workflow(actor, workflow_id, ("workflow_id",))
        if name is not None:
            workflow.name = validation.name(name, ("name",))
            await workflow.save(update_fields=["name"])
        if position is not None:
            _position(position, ("position",))
            siblings = await Workflow.filter(organization_id=actor.organization_id, deleted_at=None).order_by(
                "position", "id"
            )
            await _place(siblings, workflow, position)
    return workflow


async def delete_workflow(*, actor: Actor, workflow_id: int, move_to_status_id: int | None = None) -> int:
    """Deletes a workflow and its statuses; their prospects must be moved (CONFLICT otherwise)."""
    actor.require_manager()
    async with in_transaction():
        workflow = await get_workflow(actor, workflow_id, ("workflow_id",))
        statuses = await Status.filter(workflow_id=workflow.id, deleted_at=None)
        target = await _move_target(actor, move_to_status_id, exclude_workflow=workflow.id)
        for status in statuses:
            await _retire_status(actor, status, target)
        await Workflow.filter(id=workflow.id).update(deleted_at=actor.now())
        await _renumber(Workflow, organization_id=actor.organization_id)
    return workflow.id


# ---- statuses ----


async def create_status(
    *,
    actor: Actor,
    workflow_id: int,
    name: str,
    system_status: SystemStatus,
    pipeline_percent: int | None,
    max_assignment_seconds: int | None,
    position: int | None,
    enrollment_outcome: Stage | None = None,
) -> Status:
    actor.require_manager()
    clean = validation.name(name, ("name",))
    percent = validation.bounded_int(pipeline_percent or 0, ("pipeline_percent",), low=0, high=100)
    _max_assignment(max_assignment_seconds)
    _position(position, ("position",))
    _outcome(enrollment_outcome)
    async with in_transaction():
        workflow = await get_workflow(actor, workflow_id, ("workflow_id",))
        await caps.room_for_status(actor.organization_id, workflow.id, ("workflow_id",))
        siblings = await Status.filter(workflow_id=workflow.id, deleted_at=None).order_by("position", "id")
        status = await Status.create(
            organization_id=actor.organization_id,
            workflow_id=workflow.id,
            name=clean,
            position=len(siblings),
            system_status=system_status,
            pipeline_percent=percent,
            max_assignment_seconds=max_assignment_seconds,
            enrollment_outcome=enrollment_outcome,
        )
        await _place([*siblings, status], status, position)
        org = await Organization.get(id=actor.organization_id)
        if org.default_status_id is None:
            org.default_status_id = status.id
            await org.save(update_fields=["default_status_id"])
    return status


def _outcome(value: Stage | None) -> None:
    if value is not None and value not in STATUS_OUTCOMES:
        names = ", ".join(sorted(STATUS_OUTCOMES))
        raise InvalidInput(f"An enrollment outcome is one of {names}.", ("enrollment_outcome",))


def _max_assignment(value: int | None) -> None:
    if value is not None:
        validation.bounded_int(value, ("max_assignment_seconds",), low=1, high=10 * 366 * 24 * 3600)


async def update_status(
    *,
    actor: Actor,
    status_id: int,
    name: str | None = None,
    workflow_id: int | None = None,
    system_status: SystemStatus | None = None,
    pipeline_percent: int | None = None,
    max_assignment_seconds: int | None = UNCHANGED,
    position: int | None = None,
    enrollment_outcome: Stage | None = UNCHANGED,
) -> Status:
    actor.require_manager()
    async with in_transaction():
        status = await get_status(actor, status_id, ("status_id",))
        if name is not None:
            status.name = validation.name(name, ("name",))
        if system_status is not None:
            status.system_status = system_status
        if pipeline_percent is not None:
            status.pipeline_percent = validation.bounded_int(pipeline_percent, ("pipeline_percent",), low=0, high=100)
        if max_assignment_seconds is not UNCHANGED:
            _max_assignment(max_assignment_seconds)
            status.max_assignment_seconds = max_assignment_seconds
        if enrollment_outcome is not UNCHANGED:
            _outcome(enrollment_outcome)
            status.enrollment_outcome = enrollment_outcome
        _position(position, ("position",))
        moved_from = None
        if workflow_id is not None:
            workflow = await get_workflow(actor, workflow_id, ("workflow_id",))
            if workflow.id != status.workflow_id:
                await caps.room_for_status(actor.organization_id, workflow.id, ("workflow_id",))
                moved_from, status.workflow_id = status.workflow_id, workflow.id
        await status.save()
        if moved_from is not None or position is not None:
            siblings = await Status.filter(workflow_id=status.workflow_id, deleted_at=None).order_by("position", "id")
            await _place(siblings, status, position)
        if moved_from is not None:
            await _renumber(Status, workflow_id=moved_from)
    return status


async def _renumber(model: type[Workflow] | type[Status], **scope: object) -> None:
    """Positions 0…n-1 again among the live rows of ``scope`` (after one left)."""
    rows: list[Any] = await model.filter(deleted_at=None, **scope).order_by("position", "id")
    for number, row in enumerate(rows):
        if row.position != number:
            await model.filter(id=row.id).update(position=number)


async def delete_status(*, actor: Actor, status_id: int, move_to_status_id: int | None) -> int:
    actor.require_manager()
    async with in_transaction():
        status = await get_status(actor, status_id, ("status_id",))
        target = await _move_target(actor, move_to_status_id, exclude_status=status.id)
        await _retire_status(actor, status, target)
        await _renumber(Status, workflow_id=status.workflow_id)
    return status.id


async def _move_target(
    actor: Actor,
    move_to_status_id: int | None,
    *,
    exclude_status: int | None = None,
    exclude_workflow: int | None = None,
) -> Status | None:
    if move_to_status_id is None:
        return None
    target = await get_status(actor, move_to_status_id, ("move_to_status_id",))
    if target.id == exclude_status or target.workflow_id == exclude_workflow:
        raise InvalidInput("Prospects cannot be moved into what is being deleted.", ("move_to_status_id",))
    return target


async def _retire_status(actor: Actor, status: Status, move_to: Status | None) -> None:
    """Soft-deletes ``status`` after moving its prospects (and the default) to ``move_to``."""
    org = await Organization.get(id=actor.organization_id)
    holding = Prospect.filter(status_id=status.id)
    held = await holding.exists()
    is_default = org.default_status_id == status.id
    if move_to is None and (held or is_default):
        reason = "holds prospects" if held else "is the organization's default status"
        raise Conflict(f"Status {status.name!r} {reason}; give moveToStatusId to move them.", ("status_id",))
    users = [
        f"action {a.name!r}"
        for a in await Action.filter(organization_id=actor.organization_id)
        if status.id in ops.referenced_status_ids(a.operations)
    ] + [
        f"rule {r.name!r}"
        for r in await AutomationRule.filter(organization_id=actor.organization_id)
        if status.id in ops.referenced_status_ids(r.operations)
        or r.status_id == status.id
        or status.id in r.only_in_status_ids
    ]
    if users:
        raise Conflict(f"Status {status.name!r} is used by {', '.join(users)}; change those first.", ("status_id",))
    if move_to is not None and held:
        # Moved as setProspectStatus moves a prospect (locked in id order, like every
        # other status change): STATUS_CHANGED events, the outcome, STATUS_ENTERED rules.
        moving = await holding.select_for_update().order_by("id")
        await effects.change_status(moving, move_to, actor=actor, cause=ChangeCause.USER, chain=Chain())
    if is_default and move_to is not None:
        await Organization.filter(id=org.id).update(default_status_id=move_to.id)
    await ActionAvailability.filter(status_id=status.id).delete()
    await Status.filter(id=status.id).update(deleted_at=actor.now())


# ---- action categories and actions ----


async def create_category(*, actor: Actor, name: str) -> ActionCategory:
    actor.require_manager()
    clean = validation.name(name, ("name",))
    async with in_transaction():
        await caps.room_for_category(actor.organization_id)
        return await ActionCategory.create(organization_id=actor.organization_id, name=clean)


@dataclass
class ActionFields:
    name: str | None = None
    category_id: int | None = UNCHANGED
    interactions: Sequence[Interaction] | None = None
    available_in_status_ids: Sequence[int] | None = None
    operations: Sequence[ops.OperationSpec] | None = None


async def create_action(*, actor: Actor, fields: ActionFields) -> Action:
    actor.require_manager()
    if fields.name is None or fields.operations is None:
        raise InvalidInput("name and operations are required.", ())
    async with in_transaction():
        await caps.room_for_action(actor.organization_id)
        action = Action(organization_id=actor.organization_id)
        await _apply_action_fields(actor, action, fields)
    return action


async def update_action(*, actor: Actor, action_id: int, fields: ActionFields) -> Action:
    actor.require_manager()
    async with in_transaction():
        action = await get_owned(actor, Action, action_id, ("action_id",))
        await _apply_action_fields(actor, action, fields)
    return action


async def _apply_action_fields(actor: Actor, action: Action, fields: ActionFields) -> None:
    if fields.name is not None:
        action.name = validation.name(fields.name, ("name",))
    if fields.category_id is not UNCHANGED:
        action.category_id = (
            None
            if fields.category_id is None
            else (await get_owned(actor, ActionCategory, fields.category_id, ("category_id",))).id
        )
    if fields.interactions is not None:
        action.interactions = sorted({i.value for i in fields.interactions})
    if fields.operations is not None:
        action.operations = await ops.validate(actor, fields.operations, ("operations",))
    status_pks = None
    if fields.available_in_status_ids is not None:
        status_pks = []
        for index, status_id in enumerate(fields.available_in_status_ids):
            status = await get_status(actor, status_id, ("available_in_status_ids", index))
            status_pks.append(status.id)
    await action.save()
    if status_pks is not None:
        await ActionAvailability.filter(action_id=action.id).delete()
        await ActionAvailability.bulk_create(
            [ActionAvailability(action_id=action.id, status_id=pk) for pk in dict.fromkeys(status_pks)]
        )


async def delete_action(*, actor: Actor, action_id: int) -> int:
    actor.require_manager()
    action = await get_owned(actor, Action, action_id, ("action_id",))
    await action.delete()
    return action.id


# ---- automation rules ----


async def create_rule(
    *,
    actor: Actor,
    name: str,
    event: TriggerEvent,
    status_id: int | None,
    operations: Sequence[ops.OperationSpec],
    enabled: bool | None,
    channel: Channel | None = None,
    stage: Stage | None = None,
    only_in_status_ids: Sequence[int] = (),
) -> AutomationRule:
    actor.require_manager()
    rule = AutomationRule(
        organization_id=actor.organization_id, event=event, enabled=True if enabled is None else enabled
    )
    rule.name = validation.name(name, ("name",))
    rule.status_id = await _rule_status(actor, event, status_id)
    rule.channel, rule.stage = _rule_filters(event, channel, stage)
    rule.only_in_status_ids = await _only_in(actor, event, only_in_status_ids)
    rule.operations = await ops.validate(actor, operations, ("operations",))
    async with in_transaction():
        await caps.room_for_rule(actor.organization_id)
        await rule.save()
    return rule


async def _rule_status(actor: Actor, event: TriggerEvent, status_id: int | None) -> int | None:
    if event is TriggerEvent.STATUS_ENTERED:
        if status_id is None:
            raise InvalidInput("STATUS_ENTERED rules require statusId.", ("status_id",))
        return (await get_status(actor, status_id, ("status_id",))).id
    if status_id is not None:
        raise InvalidInput(f"{event.value} rules take no statusId.", ("status_id",))
    return None


async def _only_in(actor: Actor, event: TriggerEvent, status_ids: Sequence[int]) -> list[int]:
    """The statuses a rule is limited to: live statuses of the organization, each once,
    in the order given. A STATUS_ENTERED rule takes none: its statusId is the status
    the prospect is in when its event happens."""
    if not status_ids:
        return []
    field = ("only_in_status_ids",)
    rows = Status.filter(id__in=set(status_ids), organization_id=actor.organization_id, deleted_at=None)
    live = {row.id for row in await rows.only("id")}
    for index, status_id in enumerate(status_ids):
        if status_id not in live:  # before any other check: a foreign id is never found
            raise NotFound("Status", (*field, index))
    if event is TriggerEvent.STATUS_ENTERED:
        raise InvalidInput("STATUS_ENTERED rules take no onlyInStatusIds: statusId is the status entered.", field)
    return list(dict.fromkeys(status_ids))


def _rule_filters(
    event: TriggerEvent, channel: Channel | None, stage: Stage | None
) -> tuple[Channel | None, Stage | None]:
    """A channel only for message events (and only a messaging channel), a stage only
    for ENROLLMENT_STAGE_CHANGED."""
    if channel is not None:
        if event not in (TriggerEvent.MESSAGE_SENT, TriggerEvent.MESSAGE_RECEIVED):
            raise InvalidInput(f"{event.value} rules take no channel.", ("channel",))
        if channel not in (Channel.EMAIL, Channel.SMS):
            raise InvalidInput("Messages go by EMAIL or SMS.", ("channel",))
    if stage is not None and event is not TriggerEvent.ENROLLMENT_STAGE_CHANGED:
        raise InvalidInput(f"{event.value} rules take no stage.", ("stage",))
    return channel, stage


async def update_rule(
    *,
    actor: Actor,
    rule_id: int,
    name: str | None,
    enabled: bool | None,
    status_id: int | None,
    operations: Sequence[ops.OperationSpec] | None,
    channel: Channel | None = UNCHANGED,
    stage: Stage | None = UNCHANGED,
    only_in_status_ids: Sequence[int] | None = None,
) -> AutomationRule:
    """Changes what is given; ``channel`` and ``stage`` set to None remove the filter,
    ``only_in_status_ids`` set to [] the status condition."""
    actor.require_manager()
    rule = await get_owned(actor, AutomationRule, rule_id, ("rule_id",))
    rule.channel, rule.stage = _rule_filters(
        rule.event,
        rule.channel if channel is UNCHANGED else channel,
        rule.stage if stage is UNCHANGED else stage,
    )
    if name is not None:
        rule.name = validation.name(name, ("name",))
    if enabled is not None:
        rule.enabled = enabled
    if status_id is not None:
        rule.status_id = await _rule_status(actor, rule.event, status_id)
    if only_in_status_ids is not None:
        rule.only_in_status_ids = await _only_in(actor, rule.event, only_in_status_ids)
    if operations is not None:
        rule.operations = await ops.validate(actor, operations, ("operations",))
    await rule.save()
    return rule


async def delete_rule(*, actor: Actor, rule_id: int) -> int:
    actor.require_manager()
    rule = await get_owned(actor, AutomationRule, rule_id, ("rule_id",))
    await rule.delete()
    return rule.id
