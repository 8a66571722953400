"""Reports (SPEC R11): the pipeline weighted by each status's pipeline %, counts
by system status, and each active user's load. Each is a fixed number of
grouped SQL queries, whatever the number of prospects; an AGENT's reports count
only the prospects it may work."""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.functions import Count

from app.accounts.actor import Actor
from app.accounts.models import User
from app.errors import NotFound
from app.prospects import service as prospects
from app.prospects.models import Task
from app.workflows.models import Status, SystemStatus


@dataclass(frozen=True)
class PipelineRow:
    status: Status
    count: int

    @property
    def weighted(self) -> float:
        return self.count * self.status.pipeline_percent / 100


@dataclass(frozen=True)
class Pipeline:
    rows: list[PipelineRow]

    @property
    def total_prospects(self) -> int:
        return sum(row.count for row in self.rows)

    @property
    def weighted_total(self) -> float:
        return sum(row.weighted for row in self.rows)


async def _counts_by(actor: Actor, column: str, **filters: object) -> dict[object, int]:
    rows = (
        await prospects.visible(actor)
        .filter(**filters)
        .annotate(count=Count("id"))
        .group_by(column)
        .values_list(column, "count")
    )
    return {key: int(count) for key, count in rows}


async def pipeline(*, actor: Actor, workflow_id: int | None) -> Pipeline:
    """Every status of the workflow (of every workflow without one), in order, with
    its prospects and their weighted value: two queries."""
    statuses = Status.filter(organization_id=actor.organization_id, deleted_at=None)
    if workflow_id is not None:
        statuses = statuses.filter(workflow_id=workflow_id)
    rows = await statuses.order_by("workflow_id", "position", "id")
    if workflow_id is not None and not rows:
        raise NotFound("Workflow", ("workflow_id",))
    counts = await _counts_by(actor, "status_id", status_id__in=[s.id for s in rows])
    return Pipeline([PipelineRow(status, counts.get(status.id, 0)) for status in rows])


async def system_status_counts(actor: Actor) -> list[tuple[SystemStatus, int]]:
    """Every system status with its prospects (zero included): one query."""
    counts = await _counts_by(actor, "status__system_status")
    return [(system, counts.get(system.value, 0)) for system in SystemStatus]


@dataclass(frozen=True)
class Load:
    user: User
    assigned: int
    open_tasks: int
    overdue_tasks: int


async def agent_load(actor: Actor) -> list[Load]:
    """Each active user's assigned prospects, open tasks and overdue open tasks
    (an AGENT sees its own row): four queries."""
    users = User.filter(organization_id=actor.organization_id, active=True)
    if actor.is_agent:
        users = users.filter(id=actor.user_id)
    rows = await users.order_by("id")
    assigned = await _counts_by(actor, "owner_id", owner_id__in=[u.id for u in rows])
    open_tasks = Task.filter(
        organization_id=actor.organization_id, completed_at=None, assignee_id__in=[u.id for u in rows]
    )
    tasks = dict(
        await open_tasks.annotate(count=Count("id")).group_by("assignee_id").values_list("assignee_id", "count")
    )
    overdue = dict(
        await open_tasks.filter(due_at__lt=actor.now())
        .annotate(count=Count("id"))
        .group_by("assignee_id")
        .values_list("assignee_id", "count")
    )
    return [
        Load(user, assigned.get(user.id, 0), int(tasks.get(user.id, 0)), int(overdue.get(user.id, 0))) for user in rows
    ]
