"""The Message type (contract part 20)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.messaging import models
from schema.context import Info
from schema.enums import BounceType, Channel, Direction, MessageState
from schema.mailboxes.types import Mailbox, load_mailbox
from schema.node import Node, global_id
from schema.prospects.types import Prospect, load_prospect
from schema.sequences.types import Enrollment, SequenceStep


@strawberry.type
class Message(Node):
    row: strawberry.Private[models.Message]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return global_id("Message", self.row.id)

    @strawberry.field
    async def prospect(self, info: Info) -> Prospect:
        return await load_prospect(info, self.row.prospect_id)

    @strawberry.field
    async def enrollment(self, info: Info) -> Enrollment | None:
        if self.row.enrollment_id is None:
            return None
        row = await info.context.loaders.enrollment.load(self.row.enrollment_id)
        return Enrollment(row=row) if row is not None else None

    @strawberry.field
    async def step(self, info: Info) -> SequenceStep | None:
        if self.row.step_id is None:
            return None
        row = await info.context.loaders.step.load(self.row.step_id)
        return SequenceStep(row=row) if row is not None else None

    @strawberry.field(description="The message it answers or follows in the same thread.")
    async def in_reply_to(self, info: Info) -> Message | None:
        if self.row.in_reply_to_id is None:
            return None
        row = await info.context.loaders.message.load(self.row.in_reply_to_id)
        return Message(row=row) if row is not None else None

    @strawberry.field(description="The mailbox it went out from (EMAIL).")
    async def mailbox(self, info: Info) -> Mailbox | None:
        return await load_mailbox(info, self.row.mailbox_id)

    @strawberry.field
    def channel(self) -> Channel:
        return self.row.channel

    @strawberry.field
    def direction(self) -> Direction:
        return self.row.direction

    @strawberry.field
    def state(self) -> MessageState:
        return self.row.state

    @strawberry.field
    def subject(self) -> str | None:
        return self.row.subject

    @strawberry.field
    def body(self) -> str:
        return self.row.body

    @strawberry.field(description="Provider id: SMTP Message-ID or SMS provider message id.")
    def external_id(self) -> str | None:
        return self.row.external_id

    @strawberry.field
    def attempts(self) -> int:
        return self.row.attempts

    @strawberry.field
    def error(self) -> str | None:
        return self.row.error

    @strawberry.field
    def bounce_type(self) -> BounceType | None:
        return self.row.bounce_type

    @strawberry.field
    def auto_reply(self) -> bool:
        return self.row.auto_reply

    @strawberry.field(description="For an auto-reply: when the sender says they are back, read from its text.")
    def returns_at(self) -> datetime | None:
        return self.row.returns_at

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    def sent_at(self) -> datetime | None:
        return self.row.sent_at

    @strawberry.field
    def received_at(self) -> datetime | None:
        return self.row.received_at

    @strawberry.field(description="Held back by its mailbox's limits until then; null when not held.")
    def deferred_until(self) -> datetime | None:
        return self.row.deferred_until
