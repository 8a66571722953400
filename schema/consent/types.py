"""The suppression list's types (contract part 50)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.prospects import models
from app.prospects.models import SuppressionReason
from schema.accounts.types import User, load_user
from schema.context import Info
from schema.enums import Channel
from schema.node import Node, global_id
from schema.prospects.types import Prospect

strawberry.enum(SuppressionReason)


@strawberry.type(
    description="An address the organization must never contact on a channel, whichever prospect record carries it."
)
class Suppression(Node):
    row: strawberry.Private[models.Suppression]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("Suppression", self.row.id)

    @strawberry.field
    def channel(self) -> Channel:
        return self.row.channel

    @strawberry.field(description="Normalized: the lower-cased email address, or the E.164 number.")
    def address(self) -> str:
        return self.row.address

    @strawberry.field
    def reason(self) -> SuppressionReason:
        return self.row.reason

    @strawberry.field(description="The prospect whose event recorded it, while that prospect exists.")
    async def prospect(self, info: Info) -> Prospect | None:
        if self.row.prospect_id is None:
            return None
        row = await info.context.loaders.prospect.load(self.row.prospect_id)
        return Prospect(row=row) if row is not None else None

    @strawberry.field(description="The user who added it by hand.")
    async def created_by(self, info: Info) -> User | None:
        return await load_user(info, self.row.created_by_id)

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at
