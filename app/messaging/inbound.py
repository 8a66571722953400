"""Inbound events through the API (SPEC R6.4, R7): replies and bounces, with their
effects in the transaction that records them. (The HTTP webhooks that parse raw
emails and Twilio's forms come with issue #4 and end here.)"""

from __future__ import annotations

from tortoise.transactions import in_transaction

from app import ids, validation
from app.accounts.actor import Actor
from app.accounts.models import Organization
from app.errors import InvalidInput, NotFound
from app.messaging.models import BounceType, Direction, Message, MessageState
from app.prospects import effects
from app.prospects import service as prospects
from app.prospects.models import ChangeCause, Channel, ConversationState, Prospect
from app.sequences import lifecycle
from app.sequences.models import Sequence
from app.sequences.state import Event
from app.workflows.models import TriggerEvent


async def _sender(actor: Actor, channel: Channel, sender: str, in_reply_to: str | None) -> Prospect:
    """The prospect a message came from: by the message it answers, else by address."""
    if in_reply_to:
        ours = await Message.get_or_none(
            organization_id=actor.organization_id, external_id=in_reply_to.strip(), direction=Direction.OUTBOUND
        )
        if ours is not None:
            prospect = await prospects.visible(actor).filter(id=ours.prospect_id).select_for_update().first()
            if prospect is not None:
                return prospect
    field = ["input", "from"]
    if channel is Channel.EMAIL:
        address = validation.email(sender, field)
        query = prospects.visible(actor).filter(email__iexact=address)
    elif channel is Channel.SMS:
        org = await Organization.get(id=actor.organization_id)
        query = prospects.visible(actor).filter(phone=validation.phone(sender, org.phone_region, field))
    else:
        raise InvalidInput("Inbound messages come by EMAIL or SMS.", ["input", "channel"])
    prospect = await query.order_by("-id").select_for_update().first()
    if prospect is None:
        raise NotFound("Prospect", field)
    return prospect


async def record_inbound(
    *,
    actor: Actor,
    channel: Channel,
    sender: str,
    body: str,
    subject: str | None,
    in_reply_to: str | None,
    auto_reply: bool,
) -> tuple[Message, Prospect]:
    """Records a received message. A reply (not an auto-reply) makes the
    conversation REPLY_NEEDED and finishes REPLIED every unfinished enrollment
    of the prospect whose sequence stops on reply, cancelling their queued messages."""
    async with in_transaction():
        prospect = await _sender(actor, channel, sender, in_reply_to)
        now = actor.now()
        message = await Message.create(
            organization_id=actor.organization_id,
            prospect_id=prospect.id,
            channel=channel,
            direction=Direction.INBOUND,
            state=MessageState.RECEIVED,
            from_address=sender.strip(),
            subject=subject,
            body=body,
            auto_reply=auto_reply,
            created_at=now,
            received_at=now,
        )
        if not auto_reply:
            prospect.conversation_state = ConversationState.REPLY_NEEDED
            prospect.last_message_at = now
            await prospect.save(update_fields=["conversation_state", "last_message_at"])
            stopping = {s.id for s in await Sequence.filter(organization_id=actor.organization_id, stop_on_reply=True)}
            await lifecycle.for_prospect(
                prospect.id,
                Event.REPLY,
                actor=actor,
                cause=ChangeCause.INBOUND,
                reason="replied",
                sequence_ids=stopping,
            )
            # An auto-reply is not a reply: it sets off no MESSAGE_RECEIVED rule either.
            await effects.events_happened(TriggerEvent.MESSAGE_RECEIVED, [(actor, prospect.id, channel)])
            await prospect.refresh_from_db()  # rules may have changed it
    return message, prospect


async def record_bounce(
    *,
    actor: Actor,
    message_id: str | None,
    email: str | None,
    bounce_type: BounceType,
    reason: str | None,
) -> tuple[Message | None, Prospect]:
    """A hard bounce has the effects of app.prospects.effects.hard_bounce; a soft
    one is recorded on the message."""
    if (message_id is None) == (email is None):
        raise InvalidInput("Give messageId or email.", ["input", "messageId"])
    async with in_transaction():
        message = None
        if message_id is not None:
            pk = ids.decode_as("Message", message_id)
            message = None if pk is None else await Message.get_or_none(id=pk, organization_id=actor.organization_id)
            prospect = (
                None
                if message is None
                else await prospects.visible(actor).filter(id=message.prospect_id).select_for_update().first()
            )
            if message is None or prospect is None:
                raise NotFound("Message", ["input", "messageId"])
        else:
            address = validation.email(email or "", ["input", "email"])
            prospect = await prospects.visible(actor).filter(email__iexact=address).select_for_update().first()
            if prospect is None:
                raise NotFound("Prospect", ["input", "email"])
            message = (
                await Message.filter(prospect_id=prospect.id, channel=Channel.EMAIL, direction=Direction.OUTBOUND)
                .order_by("-id")
                .first()
            )
        if message is not None:
            message.bounce_type = bounce_type
            message.error = (reason or f"{bounce_type.value.lower()} bounce")[:1000]
            if bounce_type is BounceType.HARD:
                message.state = MessageState.BOUNCED
            await message.save(update_fields=["bounce_type", "error", "state"])
        if bounce_type is BounceType.HARD:
            await effects.hard_bounce(prospect, actor=actor, cause=ChangeCause.INBOUND)
    return message, prospect
