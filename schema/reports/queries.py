"""Query fields of reports (contract part 40)."""

from __future__ import annotations

import strawberry

from app.errors import DomainError
from app.prospects import reports
from schema.accounts.types import User
from schema.context import Info, domain_to_public
from schema.node import optional_pk
from schema.reports.types import AgentLoad, PipelineReport, PipelineRow, SystemStatusCount
from schema.workflows.types import Status


@strawberry.type
class ReportQueries:
    @strawberry.field(description="Prospects per status of the workflow (of all workflows without one), weighted.")
    async def pipeline_report(self, info: Info, workflow_id: strawberry.ID | None = None) -> PipelineReport:
        try:
            pipeline = await reports.pipeline(
                actor=info.context.actor, workflow_id=optional_pk("Workflow", workflow_id)
            )
        except DomainError as error:
            raise domain_to_public(error) from error
        return PipelineReport(
            rows=[PipelineRow(status=Status(row=r.status), count=r.count, weighted=r.weighted) for r in pipeline.rows],
            total_prospects=pipeline.total_prospects,
            weighted_total=pipeline.weighted_total,
        )

    @strawberry.field(description="Prospects per system status.")
    async def system_status_counts(self, info: Info) -> list[SystemStatusCount]:
        counts = await reports.system_status_counts(info.context.actor)
        return [SystemStatusCount(system_status=system, count=count) for system, count in counts]

    @strawberry.field(description="Each active user's assigned prospects and open and overdue tasks.")
    async def agent_load(self, info: Info) -> list[AgentLoad]:
        return [
            AgentLoad(
                user=User(row=load.user),
                assigned=load.assigned,
                open_tasks=load.open_tasks,
                overdue_tasks=load.overdue_tasks,
            )
            for load in await reports.agent_load(info.context.actor)
        ]
