"""Query fields of mailboxes: ADMIN and MANAGER read the organization's, an AGENT its own."""

from __future__ import annotations

import strawberry

from app.messaging import mailboxes
from schema.context import Info
from schema.mailboxes.types import Mailbox
from schema.node import Node, NodeReader


async def _mailbox(info: Info, pk: int) -> Node | None:
    row = await mailboxes.visible(info.context.actor).get_or_none(id=pk)
    return Mailbox(row=row) if row else None


NODES: dict[str, NodeReader] = {"Mailbox": _mailbox}


@strawberry.type
class MailboxQueries:
    @strawberry.field(description="The organization's mailboxes (an AGENT sees only its own), oldest first.")
    async def mailboxes(self, info: Info) -> list[Mailbox]:
        return [Mailbox(row=r) for r in await mailboxes.visible(info.context.actor).order_by("id")]
