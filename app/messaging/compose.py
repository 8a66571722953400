"""One-off messages (the SEND_MESSAGE operation, sendMessage): rendered now, queued for the worker."""

from __future__ import annotations

from datetime import datetime

from app.accounts.models import Organization
from app.messaging import mailboxes, threads
from app.messaging.models import Direction, Message, MessageState
from app.prospects.models import Channel, Prospect
from app.sequences import templates


async def queue_message(
    prospect: Prospect,
    channel: Channel,
    subject: str | None,
    body: str,
    *,
    now: datetime,
    in_reply_to: Message | None = None,
) -> Message:
    """A QUEUED message the next scheduler pass hands to a worker (sendMessage hands
    it at once); FAILED at once, with the reason, when the prospect has no address
    or the template cannot render. An email goes out from the prospect owner's
    mailbox, else the shared one (mailboxes.sender_for), else emailFrom; with
    ``in_reply_to``, in that message's thread."""
    organization = await Organization.get(id=prospect.organization_id)
    address = prospect.email if channel is Channel.EMAIL else prospect.phone
    state, error = MessageState.QUEUED, None
    try:
        rendered_subject, rendered_body = templates.render_message(subject, body, prospect, organization.name)
    except templates.RenderError as failure:
        state, error, rendered_subject, rendered_body = MessageState.FAILED, str(failure), subject, body
    thread = threads.reply_columns(in_reply_to) if in_reply_to is not None and channel is Channel.EMAIL else {}
    if subject is None and in_reply_to is not None and channel is Channel.EMAIL:
        # The answered message's subject is text, never a template (a prospect wrote it).
        rendered_subject = threads.reply_subject(in_reply_to.subject)
    if not address:
        state, error = (
            MessageState.FAILED,
            f"the prospect has no {'email address' if channel is Channel.EMAIL else 'phone number'}",
        )
    mailbox = (
        await mailboxes.sender_for(prospect.organization_id, prospect.owner_id) if channel is Channel.EMAIL else None
    )
    return await Message.create(
        organization_id=prospect.organization_id,
        prospect_id=prospect.id,
        channel=channel,
        direction=Direction.OUTBOUND,
        state=state,
        to_address=address,
        subject=rendered_subject,
        body=rendered_body,
        error=error,
        created_at=now,
        next_attempt_at=now if state is MessageState.QUEUED else None,
        mailbox_id=mailbox.id if mailbox else None,
        from_address=mailbox.address if mailbox else None,
        in_reply_to_id=in_reply_to.id if in_reply_to else None,
        references_header=thread.get("references_header"),
    )
