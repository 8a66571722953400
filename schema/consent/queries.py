"""Query fields of the suppression list: MANAGER and ADMIN (an AGENT reads none)."""

from __future__ import annotations

import strawberry

from app.errors import DomainError
from app.prospects import suppressions
from app.prospects.models import SuppressionReason
from schema.consent.types import Suppression
from schema.context import Info, domain_to_public
from schema.enums import Channel
from schema.node import Node, NodeReader
from schema.pagination import Connection, paginate


@strawberry.input
class SuppressionFilter:
    channel: Channel | None = None
    address: str | None = strawberry.field(default=None, description="Exact address, normalized the same way.")
    reasons: list[SuppressionReason] | None = None


async def _suppression(info: Info, pk: int) -> Node | None:
    row = await (await suppressions.listed(info.context.actor)).get_or_none(id=pk)
    return Suppression(row=row) if row else None


NODES: dict[str, NodeReader] = {"Suppression": _suppression}


@strawberry.type
class ConsentQueries:
    @strawberry.field(description="MANAGER and ADMIN; newest first.")
    async def suppressions(
        self, info: Info, first: int | None = None, after: str | None = None, filter: SuppressionFilter | None = None
    ) -> Connection[Suppression]:
        given = filter or SuppressionFilter()
        try:
            query = await suppressions.listed(
                info.context.actor, channel=given.channel, address=given.address, reasons=given.reasons
            )
        except DomainError as error:
            raise domain_to_public(error, under=("filter",)) from error
        return await paginate(query, first, after, lambda r: Suppression(row=r), descending=True)
