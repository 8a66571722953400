"""Distribution mutations (contract part 40): push, return, pull, pull from another agent."""

from __future__ import annotations

from typing import Any

import strawberry

from app.prospects import distribution
from schema.context import Info
from schema.enums import SystemStatus
from schema.errors import UserError, guarded, guarded_bulk
from schema.node import optional_pk, pk, pks
from schema.prospects import types


@strawberry.input(description="Assigns to userId; with no userId, distributes round robin over active agents.")
class AssignProspectsInput:
    ids: list[strawberry.ID]
    user_id: strawberry.ID | None = None


@strawberry.type
class ProspectsPayload:
    prospects: list[types.Prospect] = strawberry.field(default_factory=list)
    errors: list[UserError]


@strawberry.input
class UnassignProspectsInput:
    ids: list[strawberry.ID]


@strawberry.input(
    description="Gives the viewer the next `count` unassigned, pullable prospects (oldest first), "
    "optionally limited to system statuses."
)
class PullProspectsInput:
    count: int
    system_statuses: list[SystemStatus] | None = None


@strawberry.input(
    description="Takes one prospect from another agent; NOT_PULLABLE unless the organization allows it "
    "and its reassignableAt has passed."
)
class PullProspectInput:
    id: strawberry.ID


_IDS = {"prospect_ids": "ids"}


def _wrap(row: Any) -> types.Prospect:
    return types.Prospect(row=row)


@strawberry.type
class DistributionMutations:
    @strawberry.mutation
    async def assign_prospects(self, info: Info, input: AssignProspectsInput) -> ProspectsPayload:
        return await guarded_bulk(
            info,
            ProspectsPayload,
            "prospects",
            lambda: distribution.assign_prospects(
                actor=info.context.actor,
                prospect_ids=pks("Prospect", input.ids),
                user_id=optional_pk("User", input.user_id),
            ),
            _wrap,
            _IDS,
        )

    @strawberry.mutation
    async def unassign_prospects(self, info: Info, input: UnassignProspectsInput) -> ProspectsPayload:
        return await guarded_bulk(
            info,
            ProspectsPayload,
            "prospects",
            lambda: distribution.unassign_prospects(actor=info.context.actor, prospect_ids=pks("Prospect", input.ids)),
            _wrap,
            _IDS,
        )

    @strawberry.mutation
    async def pull_prospects(self, info: Info, input: PullProspectsInput) -> ProspectsPayload:
        async def run() -> dict[str, Any]:
            rows = await distribution.pull_prospects(
                actor=info.context.actor, count=input.count, system_statuses=input.system_statuses
            )
            return {"prospects": [_wrap(row) for row in rows]}

        return await guarded(info, ProspectsPayload, run)

    @strawberry.mutation
    async def pull_prospect(self, info: Info, input: PullProspectInput) -> ProspectsPayload:
        async def run() -> dict[str, Any]:
            prospect = await distribution.pull_prospect(actor=info.context.actor, prospect_id=pk("Prospect", input.id))
            return {"prospects": [_wrap(prospect)]}

        return await guarded(info, ProspectsPayload, run, {"prospect_id": "id"})
