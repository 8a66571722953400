"""Where a raw inbound email goes (R6.1, R1.1), and its recording there.

An email is recorded in each organization it concerns, with its effects, in one
transaction per organization:

- the organization whose message it answers (In-Reply-To, References, a
  bounce's original), for the prospect that message went to;
- unless it is a bounce, each organization holding an address it was sent to
  (Delivered-To, X-Original-To, To, Cc; app.accounts.identities), for the
  prospect there whose address sent it: the only one (several would make any
  choice a guess: unrouted there). A mail copied to two organizations is
  addressed to both, so both record it: none is chosen over another.

A bounce that names none of our Message-IDs is unrouted: anyone can write one,
and it would otherwise bounce any prospect whose address it names.

An organization records an email once: the receipt key is the organization and
the Message-ID (unique), so a mail system delivering it twice, or once per
recipient, changes nothing. Rows recorded before the key named the organization
hold ``email:<Message-ID>``, which the duplicate check reads as well.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.accounts import identities
from app.accounts.actor import system_actor
from app.clock import Clock
from app.messaging import inbound, inbound_email
from app.messaging.classify import Kind
from app.messaging.inbound_email import Classified, EmailKind
from app.messaging.models import BounceType, Direction, Message
from app.messaging.return_dates import Return
from app.prospects.models import Channel, Prospect

logger = logging.getLogger("leadline.inbound_email")

RECEIPT_KEY_MAX = 300  # Message.receipt_key


class Outcome(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    UNROUTED = "unrouted"


@dataclass(frozen=True)
class Received:
    outcome: Outcome
    """RECORDED if any organization recorded it; else DUPLICATE if any had; else UNROUTED."""
    kind: EmailKind


@dataclass(frozen=True)
class _Destination:
    organization_id: int
    ours: Message | None
    """Our message the email answers, in that organization: its prospect is the one concerned."""


async def receive_email(raw: bytes, *, clock: Clock, cpu_seconds: float) -> Received:
    """Reads ``raw`` (in a thread, so the event loop serves other requests meanwhile;
    mime.Unreadable once reading it takes ``cpu_seconds`` of CPU time) and records it
    in each organization it concerns."""
    found = await asyncio.to_thread(inbound_email.classify, raw, cpu_seconds=cpu_seconds)
    outcomes = {await _record(found, destination, clock) for destination in await _destinations(found)}
    overall = next((o for o in (Outcome.RECORDED, Outcome.DUPLICATE) if o in outcomes), Outcome.UNROUTED)
    return Received(overall, found.kind)


def receipt_key(organization_id: int, message_id: str) -> str:
    return f"email:{organization_id}:{message_id}"[:RECEIPT_KEY_MAX]


async def _destinations(found: Classified) -> list[_Destination]:
    ours = await _answered(found.answers)
    threaded = [] if ours is None else [_Destination(ours.organization_id, ours)]
    if found.kind is EmailKind.BOUNCE:
        if ours is None:
            logger.warning("a bounce (Message-ID %s) names none of our messages: unrouted", found.message_id or "none")
        return threaded
    holders = await identities.email_holders(found.recipients)
    return threaded + [_Destination(o, None) for o in holders if ours is None or o != ours.organization_id]


async def _record(found: Classified, to: _Destination, clock: Clock) -> Outcome:
    actor = system_actor(to.organization_id, clock)
    back = await inbound.return_of(actor, found.body) if found.kind is EmailKind.AUTO_REPLY else None
    try:
        async with in_transaction():
            return await _record_in(found, to, clock, back)
    except IntegrityError:  # the receipt key: recorded there before, maybe at this moment
        return Outcome.DUPLICATE


async def _record_in(found: Classified, to: _Destination, clock: Clock, back: Return | None) -> Outcome:
    if to.ours is not None:
        prospects = Prospect.filter(id=to.ours.prospect_id)
    else:
        prospects = Prospect.filter(organization_id=to.organization_id, email=found.sender)
        carrying = await inbound.routed(prospects, channel=Channel.EMAIL, address=found.sender)
        if len(carrying) > 1:
            logger.warning(
                "an email (Message-ID %s) from an address %d prospects have: unrouted", found.message_id, len(carrying)
            )
            return Outcome.UNROUTED
        prospects = prospects.filter(id__in=carrying)
    prospect = await prospects.select_for_update().first()
    if prospect is None:
        return Outcome.UNROUTED
    key = None
    if found.message_id:
        key = receipt_key(to.organization_id, found.message_id)
        legacy = f"email:{found.message_id}"[:RECEIPT_KEY_MAX]
        if await Message.filter(organization_id=to.organization_id, receipt_key=legacy).exists():
            return Outcome.DUPLICATE
    actor = system_actor(to.organization_id, clock)
    if found.kind is EmailKind.BOUNCE:
        bounce_type = found.bounce_type or BounceType.SOFT
        await inbound.bounced(
            prospect,
            to.ours,
            actor=actor,
            bounce_type=bounce_type,
            address=found.bounced[0] if found.bounced else prospect.email or "",
            reason=f"{bounce_type.value.lower()} bounce" + (f" {found.status}" if found.status else ""),
            sender=found.sender,
            body=found.body,
            subject=found.subject or None,
            receipt_key=key,
            external_id=found.message_id,
        )
    else:
        await inbound.receive(
            prospect,
            inbound.own_words(KINDS[found.kind], prospect, channel=Channel.EMAIL, address=found.sender),
            actor=actor,
            channel=Channel.EMAIL,
            sender=found.sender,
            body=found.body,
            subject=found.subject or None,
            receipt_key=key,
            external_id=found.message_id,
            back=back,
        )
    return Outcome.RECORDED


KINDS = {
    EmailKind.AUTO_REPLY: Kind.AUTO_REPLY,
    EmailKind.UNSUBSCRIBE_REQUEST: Kind.UNSUBSCRIBE_REQUEST,
    EmailKind.REPLY: Kind.REPLY,
}


async def _answered(message_ids: list[str]) -> Message | None:
    """Our sent email that one of these Message-IDs names."""
    if not message_ids:
        return None
    candidates = await Message.filter(external_id__in=message_ids, direction=Direction.OUTBOUND, channel=Channel.EMAIL)
    by_id = {m.external_id: m for m in candidates}
    return next((by_id[i] for i in message_ids if i in by_id), None)
