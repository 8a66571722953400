"""Suppression list mutations (contract part 50): adding (MANAGER and ADMIN) and
removing (ADMIN) entries."""

from __future__ import annotations

from typing import Any

import strawberry

from app.prospects import suppressions
from app.prospects.models import SuppressionReason
from schema.consent.types import Suppression
from schema.context import Info
from schema.enums import Channel
from schema.errors import UserError, guarded, guarded_bulk
from schema.node import global_id, pk


@strawberry.input
class SuppressionInput:
    channel: Channel
    address: str
    reason: SuppressionReason | None = strawberry.field(default=None, description="Default MANUAL.")


@strawberry.input(
    description=(
        "Adds addresses to the suppression list (an existing entry is kept as it is); "
        "finishes the enrollments they block."
    )
)
class AddSuppressionsInput:
    entries: list[SuppressionInput]


@strawberry.type
class AddSuppressionsPayload:
    suppressions: list[Suppression] = strawberry.field(default_factory=list)
    errors: list[UserError]


@strawberry.input(
    description="ADMIN: the person consented again. Removes the entry; prospects' own opt-out flags are left as they are."
)
class RemoveSuppressionInput:
    id: strawberry.ID


@strawberry.type
class RemoveSuppressionPayload:
    removed_id: strawberry.ID | None = None
    errors: list[UserError]


@strawberry.type
class ConsentMutations:
    @strawberry.mutation
    async def add_suppressions(self, info: Info, input: AddSuppressionsInput) -> AddSuppressionsPayload:
        async def run() -> tuple[list[Any], list[Any]]:
            wanted = [suppressions.Wanted(e.channel, e.address, e.reason) for e in input.entries]
            added = await suppressions.add(actor=info.context.actor, entries=wanted)
            return added.suppressions, added.errors

        return await guarded_bulk(info, AddSuppressionsPayload, "suppressions", run, lambda row: Suppression(row=row))

    @strawberry.mutation
    async def remove_suppression(self, info: Info, input: RemoveSuppressionInput) -> RemoveSuppressionPayload:
        async def run() -> dict[str, Any]:
            removed = await suppressions.remove_entry(
                actor=info.context.actor, suppression_id=pk("Suppression", input.id)
            )
            return {"removed_id": global_id("Suppression", removed)}

        return await guarded(info, RemoveSuppressionPayload, run, {"suppression_id": "id"})
