"""Where an action is available (SPEC R2.2, R2.3): an action limited to some statuses may be
logged only for a prospect in one of them; an action limited to none, in any."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence

from app.workflows.models import Action, ActionAvailability, Status, Workflow


def is_available(limited_to: Collection[int], status_id: int) -> bool:
    """The rule, over the ids of the statuses the action is limited to."""
    return not limited_to or status_id in limited_to


async def action_available(action: Action, status_id: int) -> bool:
    links = await ActionAvailability.filter(action_id=action.id).values_list("status_id")
    return is_available({pk for (pk,) in links}, status_id)


async def available_actions(organization_id: int | None, status_ids: Sequence[int]) -> list[list[Action]]:
    """The organization's actions available in each status, by position."""
    actions = await Action.filter(organization_id=organization_id).order_by("position", "id")
    limits: dict[int, set[int]] = defaultdict(set)
    for action_id, status_id in await ActionAvailability.filter(action__organization_id=organization_id).values_list(
        "action_id", "status_id"
    ):
        limits[action_id].add(status_id)
    return [[a for a in actions if is_available(limits.get(a.id, ()), pk)] for pk in status_ids]


async def limiting_statuses(organization_id: int | None, action_ids: Sequence[int]) -> list[tuple[int, Status]]:
    """(action id, status) for each live status each action is limited to, by position."""
    links = (
        await ActionAvailability.filter(action_id__in=action_ids, status__deleted_at=None)
        .select_related("status")
        .order_by("status__position")
    )
    return [(link.action_id, link.status) for link in links if link.status.organization_id == organization_id]


async def not_available_message(action: Action, status_id: int) -> str:
    """Why ``action`` cannot be logged for a prospect in ``status_id``: the status it
    is in and those the action is available in, each with its workflow (presets side
    by side may name statuses alike)."""
    status = await Status.get(id=status_id)
    where = [status for _, status in await limiting_statuses(action.organization_id, [action.id])]
    workflows = {w.id: w.name for w in await Workflow.filter(id__in={s.workflow_id for s in [status, *where]})}

    def named(s: Status) -> str:
        return f"{s.name!r} ({workflows[s.workflow_id]})"

    return (
        f"{action.name!r} is not available in the prospect's status {named(status)}; "
        f"it is available in {', '.join(named(s) for s in where)}."
    )
