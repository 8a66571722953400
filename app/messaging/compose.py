"""One-off messages (the SEND_MESSAGE operation): rendered now, queued for the worker."""

from __future__ import annotations

from datetime import datetime

from app.accounts.models import Organization
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
) -> Message:
    """A QUEUED message the next scheduler pass hands to a worker; FAILED at once,
    with the reason, when the prospect has no address or the template cannot render."""
    organization = await Organization.get(id=prospect.organization_id)
    address = prospect.email if channel is Channel.EMAIL else prospect.phone
    state, error = MessageState.QUEUED, None
    try:
        rendered_subject, rendered_body = templates.render_message(subject, body, prospect, organization.name)
    except templates.RenderError as failure:
        state, error, rendered_subject, rendered_body = MessageState.FAILED, str(failure), subject, body
    if not address:
        state, error = (
            MessageState.FAILED,
            f"the prospect has no {'email address' if channel is Channel.EMAIL else 'phone number'}",
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
    )
