"""The Mailbox type (contract part 60)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.messaging import models
from schema.accounts.types import User, load_user
from schema.context import Info
from schema.node import Node, global_id


@strawberry.type(
    description="A sender identity: the address a rep's (or the team's) emails come from, with its sending limits."
)
class Mailbox(Node):
    row: strawberry.Private[models.Mailbox]
    organization_time_zone: strawberry.Private[str | None] = None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("Mailbox", self.row.id)

    @strawberry.field(
        description='The From address; with displayName it goes out as "Name <address>". Unique across all organizations.'
    )
    def address(self) -> str:
        return self.row.address

    @strawberry.field
    def display_name(self) -> str | None:
        return self.row.display_name

    @strawberry.field(description="The user whose prospects' emails it sends; null: the organization's shared mailbox.")
    async def user(self, info: Info) -> User | None:
        return await load_user(info, self.row.user_id)

    @strawberry.field(description="Most emails it sends in one day, midnight to midnight in timeZone.")
    def daily_limit(self) -> int:
        return self.row.daily_limit

    @strawberry.field(
        description="Warm-up: the limit on its first sending day, growing by rampUpPerDay a day up to dailyLimit; null: dailyLimit from the start."
    )
    def ramp_up_start(self) -> int | None:
        return self.row.ramp_up_start

    @strawberry.field
    def ramp_up_per_day(self) -> int | None:
        return self.row.ramp_up_per_day

    @strawberry.field(description="At most this many emails an hour to one recipient domain; null: no such cap.")
    def per_domain_hourly_limit(self) -> int | None:
        return self.row.per_domain_hourly_limit

    @strawberry.field(description="IANA zone of its day; default the organization's.")
    async def time_zone(self, info: Info) -> str:
        if self.row.time_zone is not None:
            return self.row.time_zone
        organization = await info.context.loaders.organization.load(self.row.organization_id)
        return organization.time_zone if organization is not None else "UTC"

    @strawberry.field(description="Today's limit with warm-up applied, what it sent today, and what is left.")
    async def limit_today(self, info: Info) -> int:
        return (await info.context.loaders.mailbox_usage.load(self.row.id)).limit_today

    @strawberry.field
    async def sent_today(self, info: Info) -> int:
        return (await info.context.loaders.mailbox_usage.load(self.row.id)).sent_today

    @strawberry.field
    async def remaining_today(self, info: Info) -> int:
        return (await info.context.loaders.mailbox_usage.load(self.row.id)).remaining_today

    @strawberry.field(description="Whether it has its own SMTP server (smtpUrl is never shown).")
    def has_own_smtp(self) -> bool:
        return self.row.smtp_url_sealed is not None

    @strawberry.field
    def active(self) -> bool:
        return self.row.active

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at


async def load_mailbox(info: Info, mailbox_id: int | None) -> Mailbox | None:
    if mailbox_id is None:
        return None
    row = await info.context.loaders.mailbox.load(mailbox_id)
    return Mailbox(row=row) if row is not None else None
