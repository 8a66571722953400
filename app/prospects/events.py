"""The event payloads of prospects, their status changes, assignments and tasks (R10.1)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.events.log import event, gid
from app.events.models import EventType
from app.prospects.models import StatusChange, Suppression, Task


def api_name(field: str) -> str:
    """A model field's name as the API spells it: owner_id → ownerId."""
    head, *rest = field.split("_")
    return head + "".join(part.title() for part in rest)


def prospect_event(
    type_: EventType, organization_id: int, prospect_id: int, at: datetime, **facts: Any
) -> dict[str, Any]:
    return event(type_, organization_id, at, prospect_id, facts)


def assignment_changed(
    organization_id: int, prospect_id: int, at: datetime, before: int | None, after: int | None
) -> dict[str, Any]:
    return event(
        EventType.ASSIGNMENT_CHANGED,
        organization_id,
        at,
        prospect_id,
        {"fromUserId": gid("User", before), "toUserId": gid("User", after)},
    )


def status_changed(change: StatusChange) -> dict[str, Any]:
    data = {
        "statusChange": {
            "id": gid("StatusChange", change.id),
            "fromStatusId": gid("Status", change.from_status_id),
            "toStatusId": gid("Status", change.to_status_id),
            "cause": change.cause.value if hasattr(change.cause, "value") else str(change.cause),
        }
    }
    return event(
        EventType.STATUS_CHANGED,
        change.organization_id,
        change.at,
        change.prospect_id,
        data,
        status_change_id=change.id,
    )


def task_event(type_: EventType, task: Task, at: datetime) -> dict[str, Any]:
    data = {
        "task": {
            "id": gid("Task", task.id),
            "kind": task.kind.value,
            "dueAt": task.due_at.isoformat(),
            "assigneeId": gid("User", task.assignee_id),
            "completedAt": task.completed_at.isoformat() if task.completed_at else None,
        }
    }
    return event(type_, task.organization_id, at, task.prospect_id, data, task_id=task.id)


def suppression_removed(entry: Suppression, removed_by_id: int | None, at: datetime) -> dict[str, Any]:
    """The audit of an ADMIN taking an address off the suppression list: the one
    payload that names an address, since which address may be contacted again is
    the fact recorded (the entry belongs to the organization, not to a prospect)."""
    data = {
        "suppression": {
            "id": gid("Suppression", entry.id),
            "channel": entry.channel.value,
            "address": entry.address,
            "reason": entry.reason.value,
            "prospectId": gid("Prospect", entry.prospect_id),
            "removedById": gid("User", removed_by_id),
        }
    }
    return event(EventType.SUPPRESSION_REMOVED, entry.organization_id, at, None, data)
