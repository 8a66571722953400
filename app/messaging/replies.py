"""One message a rep sends a prospect now (sendMessage, contract part 60).

It is the engine's own message: queued in the API's transaction from the
mailbox the sender rule picks (the prospect owner's, else the shared one, else
emailFrom: app.messaging.mailboxes), handed to a worker at once after commit,
and sent there through the same send gate, recording and effects as a step's
(SENT flips the conversation to AWAITING_REPLY and runs MESSAGE_SENT rules).
With ``in_reply_to_id`` an EMAIL goes in that message's thread (app.messaging.threads).

Before anything is written it refuses what the gate would cancel: a blocked
channel or a suppressed address (DO_NOT_CONTACT), no address (NO_ADDRESS).
"""

from __future__ import annotations

from redis.asyncio import Redis
from tortoise.transactions import in_transaction

from app.accounts.actor import Actor
from app.errors import DoNotContact, InvalidInput, NoAddress, NotFound
from app.messaging import compose, limits, send_jobs
from app.messaging.models import Message, MessageState
from app.prospects import service as prospects
from app.prospects import suppressions
from app.prospects.models import Channel
from app.sequences import lifecycle, templates


def _checked(channel: Channel, subject: str | None, body: str, *, threaded: bool) -> None:
    """The checks a step's texts pass (templates within their limits), and a subject
    for an EMAIL that starts a thread; an SMS has none."""
    if not body.strip():
        raise InvalidInput("The body must not be empty.", ("body",))
    templates.check(body, ("body",))
    if channel is Channel.SMS:
        if subject is not None:
            raise InvalidInput("An SMS has no subject; it must be null.", ("subject",))
        return
    if subject is None or not subject.strip():
        if not threaded:
            raise InvalidInput("An EMAIL needs a subject unless it replies to a message (inReplyToId).", ("subject",))
        return
    templates.check(subject, ("subject",))


async def send_message(
    *,
    actor: Actor,
    redis: Redis | None,
    prospect_id: int,
    channel: Channel,
    subject: str | None,
    body: str,
    in_reply_to_id: int | None = None,
) -> Message:
    """Queues the message and hands it to a worker; the message as queued (or FAILED
    at once when its template does not render for the prospect). An AGENT sends
    only to prospects it may work; ``in_reply_to_id`` names a message of the same
    prospect (NOT_FOUND otherwise)."""
    if channel not in (Channel.EMAIL, Channel.SMS):
        raise InvalidInput("Only EMAIL and SMS messages can be sent; log a call as an activity.", ("channel",))
    _checked(channel, subject, body, threaded=in_reply_to_id is not None)
    if channel is Channel.EMAIL and subject is not None and not subject.strip():
        subject = None
    async with in_transaction() as connection:
        prospect = await prospects.get_prospect(actor, prospect_id, ("prospect_id",), lock=True)
        previous = None
        if in_reply_to_id is not None:
            previous = await Message.get_or_none(
                id=in_reply_to_id, organization_id=actor.organization_id, prospect_id=prospect.id
            )
            if previous is None:
                raise NotFound("Message", ("in_reply_to_id",))
        if channel in lifecycle.blocked_channels(prospect):
            raise DoNotContact(f"The prospect may not be contacted by {channel.value}.", ("channel",))
        address = suppressions.address_of(prospect, channel)
        if address is None:
            what = "email address" if channel is Channel.EMAIL else "phone number"
            raise NoAddress(f"The prospect has no {what}.", ("channel",))
        if await suppressions.suppressed(actor.organization_id, [(channel, address)]):
            raise DoNotContact(f"The prospect's address is on the suppression list for {channel.value}.", ("channel",))
        message = await compose.queue_message(prospect, channel, subject, body, now=actor.now(), in_reply_to=previous)
        if message.mailbox_id is not None and message.state is MessageState.QUEUED:
            # Over the mailbox's limit: refused, not deferred (a rep is waiting); the message rolls back.
            message.slot_at = await limits.take_now(
                mailbox_id=message.mailbox_id, to_address=message.to_address, now=actor.now(), connection=connection
            )
            await message.save(update_fields=["slot_at"])
    await send_jobs.hand_over(redis, [message.id], actor.clock)
    return message
