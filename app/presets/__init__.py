"""Presets (R9): ready-made configurations, kept as JSON data files beside this module.

A preset names its statuses (with their system status, pipeline %, max
assignment time and enrollment outcome), categories and actions (with their
interactions, the statuses they are available in, and their operations), and
automation rules (with their event and status, channel or stage filter, and
``only_in``: the statuses a prospect must be in for the rule to run);
operations and rules refer to statuses by name. ``default_status`` makes one
the status new prospects start in, unless the organization has a default
status already; ``stage_names`` names enrollment stages in the seed's words,
for the stages the organization has not named yet. Applying a preset creates
what the organization lacks (matched by name) and leaves what it has alone, so
applying it twice duplicates nothing.

Presets side by side: a rule without ``only_in`` (other than STATUS_ENTERED,
which names its own status) runs only for prospects in one of the preset's own
statuses, so one preset's rules never move a prospect that another preset's
statuses hold; each prospect follows the preset whose status it is in.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from tortoise.transactions import in_transaction

from app.accounts.actor import Actor
from app.accounts.models import Organization
from app.errors import InvalidInput
from app.prospects.models import Channel
from app.sequences import stage_names
from app.sequences.state import Stage
from app.workflows import service
from app.workflows.models import (
    Action,
    ActionCategory,
    AutomationRule,
    Interaction,
    Status,
    SystemStatus,
    TriggerEvent,
    Workflow,
)
from app.workflows.operations import OperationSpec, OperationType

HERE = Path(__file__).parent


@lru_cache
def load(name: str) -> dict[str, Any]:
    path = HERE / f"{name}.json"
    if name not in names():
        raise InvalidInput(f"Unknown preset {name!r}; known: {', '.join(names())}.", ("name",))
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.json"))


def describe() -> list[tuple[str, str]]:
    return [(n, load(n)["description"]) for n in names()]


async def apply(*, actor: Actor, name: str) -> list[Workflow]:
    """Loads preset ``name`` into the actor's organization; returns its workflows."""
    actor.require_manager()
    preset = load(name)
    async with in_transaction():
        organization = await Organization.get(id=actor.organization_id)
        workflows, statuses = await _workflows(actor, preset["workflows"])
        for category in preset.get("categories", []):
            await _category(actor, category, statuses)
        for action in preset.get("actions", []):
            await _action(actor, action, None, statuses)
        for rule in preset.get("rules", []):
            await _rule(actor, rule, statuses)
        if "default_status" in preset and organization.default_status_id is None:
            # New prospects start in it (seed 002's New Account), unless the organization
            # chose its default already (another preset's, or its own).
            await Organization.filter(id=actor.organization_id).update(
                default_status_id=statuses[preset["default_status"]].id
            )
        if "stage_names" in preset:
            org = await Organization.filter(id=actor.organization_id).select_for_update().get()
            names = stage_names.filled_in(org.stage_names, preset["stage_names"])
            if names != org.stage_names:
                await Organization.filter(id=org.id).update(stage_names=names)
    return workflows


async def _workflows(actor: Actor, specs: list[dict[str, Any]]) -> tuple[list[Workflow], dict[str, Status]]:
    org = actor.organization_id
    workflows = []
    statuses: dict[str, Status] = {}
    for spec in specs:
        workflow = await Workflow.get_or_none(organization_id=org, name=spec["name"], deleted_at=None)
        if workflow is None:
            workflow = await service.create_workflow(actor=actor, name=spec["name"], position=None)
        workflows.append(workflow)
        for status_spec in spec["statuses"]:
            status = await Status.get_or_none(workflow_id=workflow.id, name=status_spec["name"], deleted_at=None)
            if status is None:
                status = await service.create_status(
                    actor=actor,
                    workflow_id=workflow.id,
                    name=status_spec["name"],
                    system_status=SystemStatus(status_spec["system_status"]),
                    pipeline_percent=status_spec.get("pipeline_percent", 0),
                    max_assignment_seconds=status_spec.get("max_assignment_seconds"),
                    position=None,
                    enrollment_outcome=_stage(status_spec.get("enrollment_outcome")),
                )
            statuses[status_spec["name"]] = status
    return workflows, statuses


def _stage(name: str | None) -> Stage | None:
    return Stage(name) if name else None


def _operations(specs: list[dict[str, Any]], statuses: dict[str, Status]) -> list[OperationSpec]:
    return [
        OperationSpec(
            type=OperationType(op["type"]),
            status_id=statuses[op["status"]].id if "status" in op else None,
            delay_seconds=op.get("delay_seconds"),
            outcome=_stage(op.get("outcome")),
        )
        for op in specs
    ]


async def _category(actor: Actor, spec: dict[str, Any], statuses: dict[str, Status]) -> None:
    category = await ActionCategory.get_or_none(organization_id=actor.organization_id, name=spec["name"])
    if category is None:
        category = await service.create_category(actor=actor, name=spec["name"])
    for action in spec["actions"]:
        await _action(actor, action, category, statuses)


async def _action(
    actor: Actor, spec: dict[str, Any], category: ActionCategory | None, statuses: dict[str, Status]
) -> None:
    if await Action.filter(
        organization_id=actor.organization_id, name=spec["name"], category_id=category.id if category else None
    ).exists():
        return
    await service.create_action(
        actor=actor,
        fields=service.ActionFields(
            name=spec["name"],
            category_id=category.id if category else None,
            interactions=[Interaction(i) for i in spec.get("interactions", [])],
            available_in_status_ids=[statuses[s].id for s in spec.get("available_in", [])],
            operations=_operations(spec["operations"], statuses),
        ),
    )


async def _rule(actor: Actor, spec: dict[str, Any], statuses: dict[str, Status]) -> None:
    if await AutomationRule.filter(organization_id=actor.organization_id, name=spec["name"]).exists():
        return
    await service.create_rule(
        actor=actor,
        name=spec["name"],
        event=TriggerEvent(spec["event"]),
        status_id=statuses[spec["status"]].id if "status" in spec else None,
        operations=_operations(spec["operations"], statuses),
        enabled=spec.get("enabled", True),
        channel=Channel(spec["channel"]) if "channel" in spec else None,
        stage=_stage(spec.get("stage")),
        only_in_status_ids=_only_in(spec, statuses),
    )


def _only_in(spec: dict[str, Any], statuses: dict[str, Status]) -> list[int]:
    """The rule's ``only_in`` statuses; without it, every status of the preset (a
    STATUS_ENTERED rule, which names its status, none)."""
    if "only_in" in spec:
        return [statuses[name].id for name in spec["only_in"]]
    if spec["event"] == TriggerEvent.STATUS_ENTERED.value:
        return []
    return [status.id for status in statuses.values()]
