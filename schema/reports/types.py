"""Report types and queries (contract part 40)."""

from __future__ import annotations

import strawberry

from app.errors import DomainError
from app.prospects import reports
from schema.context import Info, domain_to_public
from schema.enums import SystemStatus
from schema.types import Status, User


@strawberry.type
class PipelineRow:
    status: Status
    count: int
    weighted: float = strawberry.field(description="count × pipelinePercent / 100.")  # noqa: RUF001


@strawberry.type
class PipelineReport:
    rows: list[PipelineRow]
    total_prospects: int
    weighted_total: float


@strawberry.type
class SystemStatusCount:
    system_status: SystemStatus
    count: int


@strawberry.type
class AgentLoad:
    user: User
    assigned: int
    open_tasks: int
    overdue_tasks: int


async def pipeline_report(info: Info, workflow_id: strawberry.ID | None) -> PipelineReport:
    try:
        pipeline = await reports.pipeline(info.context.actor, workflow_id)
    except DomainError as error:
        raise domain_to_public(error) from error
    return PipelineReport(
        rows=[PipelineRow(status=Status(row=r.status), count=r.count, weighted=r.weighted) for r in pipeline.rows],
        total_prospects=pipeline.total_prospects,
        weighted_total=pipeline.weighted_total,
    )


async def system_status_counts(info: Info) -> list[SystemStatusCount]:
    counts = await reports.system_status_counts(info.context.actor)
    return [SystemStatusCount(system_status=system, count=count) for system, count in counts]


async def agent_load(info: Info) -> list[AgentLoad]:
    return [
        AgentLoad(
            user=User(row=load.user),
            assigned=load.assigned,
            open_tasks=load.open_tasks,
            overdue_tasks=load.overdue_tasks,
        )
        for load in await reports.agent_load(info.context.actor)
    ]
