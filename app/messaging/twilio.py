"""Twilio's webhooks (R6.2): request signatures, inbound SMS with the opt-out and
opt-in keywords (app.messaging.classify), and delivery status callbacks.

An inbound SMS is routed by ``To`` (the one organization that holds that number
as its ``smsFrom``, app.accounts.identities) and ``From`` (its prospect with
that number; of several, the one our latest SMS to it went to, else none:
inbound.routed, but for STOP and START, which speak for the number: they opt
each of them out or in, and suppress the number even when no prospect has it,
inbound.for_the_number), recorded once per MessageSid (a unique receipt key, so
Twilio's retries, even concurrent ones, change nothing twice), and then means
one of: an opt-out keyword, an opt-in keyword, or a reply. Unlike an email's, the key needs no
organization: an SMS has one recipient number, held by one organization, and
its MessageSid is unique in the one Twilio account every organization shares.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Iterable
from enum import StrEnum

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import validation
from app.accounts import identities
from app.accounts.actor import system_actor
from app.clock import Clock
from app.errors import InvalidInput
from app.messaging import classify, inbound
from app.messaging.models import Direction, Message, MessageState
from app.prospects.models import Channel, Prospect

logger = logging.getLogger("leadline.twilio")


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's X-Twilio-Signature: base64 HMAC-SHA1, keyed by the auth token, of the
    URL Twilio called followed by every POST parameter's name and value, sorted."""
    data = url + "".join(name + value for name, value in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def signed(auth_token: str | None, url: str, params: Iterable[tuple[str, str]], given: str | None) -> bool:
    if not auth_token or not given:
        return False
    return hmac.compare_digest(signature(auth_token, url, params), given)


class Received(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    UNROUTED = "unrouted"


async def receive_sms(*, sid: str, to: str, sender: str, body: str, clock: Clock) -> Received:
    """Records one inbound SMS with its effects; a MessageSid seen before changes nothing."""
    organization = await identities.sms_holder(to)
    if organization is None:
        logger.warning("inbound SMS %s to %s: no organization sends from that number", sid, to)
        return Received.UNROUTED
    try:
        phone = validation.phone(sender, organization.phone_region, ("From",))
    except InvalidInput:
        return Received.UNROUTED
    actor = system_actor(organization.id, clock)
    try:
        async with in_transaction():
            carrying = Prospect.filter(organization_id=organization.id, phone=phone)
            found = await inbound.routed(carrying, channel=Channel.SMS, address=phone)
            kind = classify.inbound(Channel.SMS, body)
            if len(found) != 1 and await inbound.for_the_number(
                kind, carrying, organization_id=organization.id, phone=phone, actor=actor
            ):
                logger.info("inbound SMS %s: a keyword from a number %d prospects have, for each", sid, len(found))
                return Received.RECORDED
            if len(found) > 1:
                logger.warning("inbound SMS %s from a number %d prospects have, none texted: unrouted", sid, len(found))
                return Received.UNROUTED
            prospect = await carrying.filter(id__in=found).select_for_update().first() if found else None
            if prospect is None:
                logger.info("inbound SMS %s from a number no prospect has", sid)
                return Received.UNROUTED
            await inbound.receive(
                prospect,
                kind,
                actor=actor,
                channel=Channel.SMS,
                sender=phone,
                body=body,
                receipt_key=f"twilio:{sid}",
                external_id=sid,
            )
    except IntegrityError:
        return Received.DUPLICATE
    return Received.RECORDED


DELIVERED = {"delivered"}
FAILED = {"failed", "undelivered"}


async def record_status(*, sid: str, status: str, error_code: str | None) -> bool:
    """A delivery status callback: SENT (or UNCERTAIN) becomes DELIVERED, or FAILED with
    Twilio's error code. Callbacks arrive out of order: a state never goes back."""
    if status in DELIVERED:
        changed = await Message.filter(
            external_id=sid, direction=Direction.OUTBOUND, state__in=[MessageState.SENT, MessageState.UNCERTAIN]
        ).update(state=MessageState.DELIVERED)
    elif status in FAILED:
        changed = await Message.filter(
            external_id=sid,
            direction=Direction.OUTBOUND,
            state__in=[MessageState.SENT, MessageState.UNCERTAIN, MessageState.DELIVERED],
        ).update(state=MessageState.FAILED, error=f"Twilio: {status}" + (f", error {error_code}" if error_code else ""))
    else:
        return False  # queued, sending, sent: nothing Leadline does not know
    return changed > 0
