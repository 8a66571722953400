from __future__ import annotations

from typing import Any

import strawberry

from app.messaging import inbound, replies
from schema.context import Info
from schema.enums import BounceType, Channel
from schema.errors import UserError, guarded
from schema.messaging.types import Message
from schema.node import optional_pk, pk
from schema.prospects.types import Prospect


@strawberry.input(description="For integrations that receive messages themselves.")
class RecordInboundMessageInput:
    channel: Channel
    from_: str = strawberry.field(name="from", description="Email address or E.164 number of the sender.")
    body: str
    subject: str | None = None
    in_reply_to: str | None = strawberry.field(default=None, description="Message-ID this replies to (email).")
    auto_reply: bool | None = None


@strawberry.type
class RecordInboundMessagePayload:
    message: Message | None = None
    prospect: Prospect | None = None
    errors: list[UserError]


@strawberry.input
class RecordBounceInput:
    message_id: strawberry.ID | None = strawberry.field(
        default=None, description="Either messageId (a Message id) or email."
    )
    email: str | None = None
    type: BounceType
    reason: str | None = None


@strawberry.type
class RecordBouncePayload:
    message: Message | None = None
    prospect: Prospect | None = None
    errors: list[UserError]


@strawberry.input(
    description="Sends one message to a prospect now, through the send gate and, for EMAIL, the sender's mailbox and its limits. With inReplyToId, an EMAIL goes in that message's thread."
)
class SendMessageInput:
    prospect_id: strawberry.ID
    channel: Channel
    subject: str | None = None
    body: str
    in_reply_to_id: strawberry.ID | None = None


@strawberry.type
class SendMessagePayload:
    message: Message | None = None
    errors: list[UserError]


@strawberry.type
class MessageMutations:
    @strawberry.mutation
    async def send_message(self, info: Info, input: SendMessageInput) -> SendMessagePayload:
        async def run() -> dict[str, Any]:
            message = await replies.send_message(
                actor=info.context.actor,
                redis=info.context.state.redis,
                prospect_id=pk("Prospect", input.prospect_id),
                channel=input.channel,
                subject=input.subject,
                body=input.body,
                in_reply_to_id=optional_pk("Message", input.in_reply_to_id),
            )
            return {"message": Message(row=message)}

        return await guarded(info, SendMessagePayload, run)

    @strawberry.mutation
    async def record_inbound_message(self, info: Info, input: RecordInboundMessageInput) -> RecordInboundMessagePayload:
        async def run() -> dict[str, Any]:
            recorded = await inbound.record_inbound(
                actor=info.context.actor,
                channel=input.channel,
                sender=input.from_,
                body=input.body,
                subject=input.subject,
                in_reply_to=input.in_reply_to,
                auto_reply=bool(input.auto_reply),
            )
            if recorded is None:  # STOP or START for a shared number: each carrier's, credited to none
                return {"message": None, "prospect": None}
            message, prospect = recorded
            return {"message": Message(row=message), "prospect": Prospect(row=prospect)}

        return await guarded(info, RecordInboundMessagePayload, run, {"sender": "from"})

    @strawberry.mutation
    async def record_bounce(self, info: Info, input: RecordBounceInput) -> RecordBouncePayload:
        async def run() -> dict[str, Any]:
            message, prospect = await inbound.record_bounce(
                actor=info.context.actor,
                message_id=optional_pk("Message", input.message_id),
                email=input.email,
                bounce_type=input.type,
                reason=input.reason,
            )
            return {"message": Message(row=message) if message else None, "prospect": Prospect(row=prospect)}

        return await guarded(info, RecordBouncePayload, run)
