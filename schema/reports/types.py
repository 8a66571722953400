"""Report types (contract part 40)."""

from __future__ import annotations

import strawberry

from schema.accounts.types import User
from schema.enums import SystemStatus
from schema.workflows.types import Status


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
