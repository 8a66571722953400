"""A mailbox's limits today, for the ``Mailbox`` type (contract part 60): the
numbers its sends are held to (app.messaging.limits), read for all the mailboxes
of a response at once through the request's ``mailbox_usage`` loader."""

from __future__ import annotations

import strawberry

from app.messaging import models
from schema.context import Info


@strawberry.type
class MailboxLimits:
    """The fields ``Mailbox`` takes from its limits; ``row`` is the mailbox."""

    row: strawberry.Private[models.Mailbox]

    @strawberry.field(description="Today's limit with warm-up applied, what it sent today, and what is left.")
    async def limit_today(self, info: Info) -> int:
        return (await info.context.loaders.mailbox_usage.load(self.row.id)).limit_today

    @strawberry.field
    async def sent_today(self, info: Info) -> int:
        return (await info.context.loaders.mailbox_usage.load(self.row.id)).sent_today

    @strawberry.field
    async def remaining_today(self, info: Info) -> int:
        return (await info.context.loaders.mailbox_usage.load(self.row.id)).remaining_today
