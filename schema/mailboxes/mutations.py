"""Mailbox mutations (contract part 60), ADMIN and MANAGER."""

from __future__ import annotations

from typing import Any

import strawberry

from app.messaging import mailboxes
from schema.context import Info
from schema.errors import UserError, guarded
from schema.mailboxes.types import Mailbox
from schema.node import global_id, optional_pk, pk


@strawberry.input
class CreateMailboxInput:
    address: str
    display_name: str | None = None
    user_id: strawberry.ID | None = None
    daily_limit: int | None = strawberry.field(default=None, description="Default 200.")
    ramp_up_start: int | None = None
    ramp_up_per_day: int | None = None
    per_domain_hourly_limit: int | None = None
    time_zone: str | None = None
    smtp_url: str | None = strawberry.field(
        default=None,
        description="smtp://user:pass@host:port (smtps:// for TLS, ?starttls=1); null: the server's SMTP_URL. Stored encrypted, never returned.",
    )


@strawberry.input
class UpdateMailboxInput:
    id: strawberry.ID
    display_name: str | None = strawberry.UNSET
    user_id: strawberry.ID | None = strawberry.UNSET
    daily_limit: int | None = strawberry.UNSET
    ramp_up_start: int | None = strawberry.UNSET
    ramp_up_per_day: int | None = strawberry.UNSET
    per_domain_hourly_limit: int | None = strawberry.UNSET
    time_zone: str | None = strawberry.UNSET
    smtp_url: str | None = strawberry.UNSET
    active: bool | None = strawberry.UNSET


@strawberry.type
class MailboxPayload:
    mailbox: Mailbox | None = None
    errors: list[UserError]


@strawberry.input(
    description="Fails with CONFLICT while queued messages wait on it, unless they may move to the organization's shared mailbox."
)
class DeleteMailboxInput:
    id: strawberry.ID


@strawberry.type
class DeleteMailboxPayload:
    deleted_id: strawberry.ID | None = None
    errors: list[UserError]


def _given(value: Any) -> Any:
    return mailboxes.UNCHANGED if value is strawberry.UNSET else value


@strawberry.type
class MailboxMutations:
    @strawberry.mutation
    async def create_mailbox(self, info: Info, input: CreateMailboxInput) -> MailboxPayload:
        async def run() -> dict[str, Any]:
            mailbox = await mailboxes.create_mailbox(
                actor=info.context.actor,
                settings=info.context.settings,
                address=input.address,
                display_name=input.display_name,
                user_id=optional_pk("User", input.user_id),
                daily_limit=input.daily_limit,
                ramp_up_start=input.ramp_up_start,
                ramp_up_per_day=input.ramp_up_per_day,
                per_domain_hourly_limit=input.per_domain_hourly_limit,
                time_zone=input.time_zone,
                smtp_url=input.smtp_url,
            )
            return {"mailbox": Mailbox(row=mailbox)}

        return await guarded(info, MailboxPayload, run)

    @strawberry.mutation
    async def update_mailbox(self, info: Info, input: UpdateMailboxInput) -> MailboxPayload:
        async def run() -> dict[str, Any]:
            user_id = input.user_id
            mailbox = await mailboxes.update_mailbox(
                actor=info.context.actor,
                settings=info.context.settings,
                mailbox_id=pk("Mailbox", input.id),
                display_name=_given(input.display_name),
                user_id=_given(user_id if user_id in (None, strawberry.UNSET) else pk("User", user_id)),
                daily_limit=_given(input.daily_limit),
                ramp_up_start=_given(input.ramp_up_start),
                ramp_up_per_day=_given(input.ramp_up_per_day),
                per_domain_hourly_limit=_given(input.per_domain_hourly_limit),
                time_zone=_given(input.time_zone),
                smtp_url=_given(input.smtp_url),
                active=_given(input.active),
            )
            return {"mailbox": Mailbox(row=mailbox)}

        return await guarded(info, MailboxPayload, run)

    @strawberry.mutation
    async def delete_mailbox(self, info: Info, input: DeleteMailboxInput) -> DeleteMailboxPayload:
        async def run() -> dict[str, Any]:
            deleted = await mailboxes.delete_mailbox(actor=info.context.actor, mailbox_id=pk("Mailbox", input.id))
            return {"deleted_id": global_id("Mailbox", deleted)}

        return await guarded(info, DeleteMailboxPayload, run)
