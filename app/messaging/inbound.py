"""Inbound events (SPEC R6.4, R7): replies, auto-replies, SMS keywords and
bounces, with their effects in the transaction that records them. The API
(``recordInboundMessage``, ``recordBounce``) and the webhooks (raw emails,
Twilio's forms) end here."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app import validation
from app.accounts.actor import Actor
from app.accounts.models import Organization
from app.automation import rules
from app.errors import Field, InvalidInput, NotFound
from app.events import log
from app.events.models import EventType
from app.messaging import classify, mime, return_dates
from app.messaging.classify import Kind
from app.messaging.events import message_event
from app.messaging.models import BounceType, Direction, Message, MessageState
from app.messaging.return_dates import Return
from app.prospects import consent, suppressions
from app.prospects import service as prospects
from app.prospects.models import ChangeCause, Channel, ConversationState, Prospect, SuppressionReason
from app.sequences import lifecycle
from app.sequences.models import Sequence
from app.sequences.state import OUT_OF_OFFICE, Event
from app.workflows.models import TriggerEvent

logger = logging.getLogger("leadline.inbound")

UNSUBSCRIBE_REQUEST = "unsubscribe_request"
"""The reason on the stage changes an email asking to be unsubscribed makes."""


async def _sender(
    actor: Actor, channel: Channel, sender: str, in_reply_to: str | None, kind: Kind
) -> tuple[Prospect | None, str | None]:
    """The prospect a message came from, and the sender's address normalized (None
    if unreadable: a thread needs none): the one our message it answers went to
    (``in_reply_to``), else by address (``routed``). Where several prospects carry
    the address and nothing says which one wrote, InvalidInput: crediting the
    reply to one of them would be a guess; but an SMS STOP or START speaks for the
    number (``for_the_number``, done here): no prospect then."""
    field = ("sender",)
    if channel not in (Channel.EMAIL, Channel.SMS):
        raise InvalidInput("Inbound messages come by EMAIL or SMS.", ("channel",))
    address: str | None = None
    unreadable: InvalidInput | None = None
    try:
        if channel is Channel.EMAIL:
            address = validation.email(sender, field).lower()
        else:
            org = await Organization.get(id=actor.organization_id)
            address = validation.phone(sender, org.phone_region, field)
    except InvalidInput as error:
        unreadable = error
    if in_reply_to:
        ours = await Message.get_or_none(
            organization_id=actor.organization_id, external_id=in_reply_to.strip(), direction=Direction.OUTBOUND
        )
        if ours is not None:
            prospect = await prospects.visible(actor).filter(id=ours.prospect_id).select_for_update().first()
            if prospect is not None:
                return prospect, address
    if address is None:  # unreadable, and no thread to go by
        assert unreadable is not None
        raise unreadable
    query = prospects.visible(actor).filter(**{"email" if channel is Channel.EMAIL else "phone": address})
    found = await routed(query, channel=channel, address=address)
    if len(found) > 1:
        # Only the prospects the actor may see speak here, so none when it sees none (NotFound below).
        if channel is Channel.SMS and await for_the_number(
            kind, query, organization_id=actor.organization_id, phone=address, actor=actor
        ):
            return None, address
        raise InvalidInput(
            f"{len(found)} prospects have this {'number' if channel is Channel.SMS else 'address'}: "
            "give inReplyTo, the id of our message they answer, to say which one wrote.",
            field,
        )
    prospect = await query.filter(id__in=found).select_for_update().first() if found else None
    if prospect is None:
        raise NotFound("Prospect", field)
    return prospect, address


async def for_the_number(
    kind: Kind, carrying: QuerySet[Prospect], *, organization_id: int, phone: str, actor: Actor
) -> bool:
    """STOP and START speak for the number (the Twilio webhook and
    ``recordInboundMessage`` alike) when nothing says which prospect texted it
    (``routed`` named not one): an opt-out keyword opts each of ``carrying`` (the
    prospects with ``phone``: the organization's, or those an API caller may see)
    out of SMS, an opt-in keyword each back in, through consent, which writes (or
    withdraws) the number's entry on the list as it does for one. Only when none
    carries the number (the webhook's ``carrying`` empty) is the number's own
    entry written (or its OPTED_OUT entry no person added withdrawn), so a record
    made later is blocked too. The message is credited to none of them.

    True if so; False, nothing done, for anything else, and for an opt-in with
    nothing to opt back into: as ``receive`` has it, that "Yes" answers us."""
    if kind not in (Kind.OPT_OUT, Kind.OPT_IN):
        return False
    carriers = await carrying.order_by("id").select_for_update()
    if kind is Kind.OPT_IN and not await _sms_blocked(organization_id, phone, carriers):
        return False
    for prospect in carriers:
        if kind is Kind.OPT_OUT:
            await consent.opt_out(prospect, Channel.SMS, actor=actor, cause=ChangeCause.INBOUND)
        else:
            await consent.opt_in(prospect, Channel.SMS, actor=actor)
    if carriers:
        return True
    if kind is Kind.OPT_OUT:
        entry = suppressions.Entry(Channel.SMS, phone, SuppressionReason.OPTED_OUT)
        await suppressions.record(
            organization_id, [entry], actor=actor, cause=ChangeCause.INBOUND, enrollment_reason="opted_out"
        )
    else:
        await suppressions.withdraw_opt_out(organization_id, Channel.SMS, phone)
    return True


async def _sms_blocked(organization_id: int, phone: str, carriers: list[Prospect]) -> bool:
    """SMS is blocked for one of ``carriers`` (all with ``phone``, so its entries
    count), or, with none, the number is on the list: there is something to opt into."""
    if carriers:
        return any(Channel.SMS in blocked for blocked in await suppressions.blocked_channels_of(carriers))
    return bool(await suppressions.suppressed(organization_id, [(Channel.SMS, phone)]))


def own_words(kind: Kind, prospect: Prospect, *, channel: Channel, address: str | None) -> Kind:
    """``kind``, except that an opt-out, opt-in or unsubscribe request from another
    address than the prospect's (a colleague answering in their thread) is a reply:
    it concerns the address it came from, not the prospect the thread names (our
    email's unsubscribe link serves the colleague)."""
    if kind not in (Kind.OPT_OUT, Kind.OPT_IN, Kind.UNSUBSCRIBE_REQUEST):
        return kind
    own = prospect.email if channel is Channel.EMAIL else prospect.phone
    return kind if address and own and address.lower() == own.lower() else Kind.REPLY


ROUTING_CANDIDATES = 20
"""Prospects carrying one address read at most to route a message (more only say it is ambiguous)."""
THREAD_STATES = (MessageState.SENT, MessageState.DELIVERED, MessageState.UNCERTAIN)


async def routed(candidates: QuerySet[Prospect], *, channel: Channel, address: str) -> list[int]:
    """The ids of the prospects (of ``candidates``, those carrying ``address``) a
    message from ``address`` is to be credited to, when no thread header names our
    message: all of them, one at best; for an SMS, which has no thread headers,
    the one our latest SMS to that number went to when several carry it. The
    caller locks the one it takes, or reports more than one as ambiguous."""
    ids: list[int] = await candidates.order_by("id").limit(ROUTING_CANDIDATES).values_list("id", flat=True)  # type: ignore[assignment]
    if len(ids) > 1 and channel is Channel.SMS:
        latest = (
            await Message.filter(
                prospect_id__in=ids,
                channel=Channel.SMS,
                direction=Direction.OUTBOUND,
                to_address=address,
                state__in=THREAD_STATES,
                sent_at__isnull=False,
            )
            .order_by("-sent_at", "-id")
            .first()
        )
        if latest is not None:
            return [latest.prospect_id]
    return ids


async def record_inbound(
    *,
    actor: Actor,
    channel: Channel,
    sender: str,
    body: str,
    subject: str | None,
    in_reply_to: str | None,
    auto_reply: bool,
) -> tuple[Message, Prospect] | None:
    """Records a received message from the API (``recordInboundMessage``): its body
    and subject at most as long as a received email's (mime.MAX_TEXT, MAX_SUBJECT).
    None for an SMS STOP or START that spoke for a number several prospects carry
    (``for_the_number``): each of them opted out or in, the message credited to none."""
    _at_most(body, mime.MAX_TEXT, ("body",))
    _at_most(subject, mime.MAX_SUBJECT, ("subject",))
    kind = classify.inbound(channel, body, subject=subject, auto_reply=auto_reply)
    back = await return_of(actor, body) if kind is Kind.AUTO_REPLY else None
    async with in_transaction():
        prospect, address = await _sender(actor, channel, sender, in_reply_to, kind)
        if prospect is None:
            return None
        kind = own_words(kind, prospect, channel=channel, address=address)
        message = await receive(
            prospect, kind, actor=actor, channel=channel, sender=sender, body=body, subject=subject, back=back
        )
    return message, prospect


async def return_of(actor: Actor, body: str) -> Return | None:
    """The return date an auto-reply's ``body`` gives (app.messaging.return_dates),
    read in the actor's organization's zone, in a thread: dateparser is slow enough
    (a millisecond a phrase, far more for a language's first use) to hold up the loop."""
    organization = await Organization.get(id=actor.organization_id)
    try:
        return await asyncio.to_thread(
            return_dates.read,
            body,
            received=actor.now(),
            zone=ZoneInfo(organization.time_zone),
            month_first=return_dates.month_first(organization.phone_region),
        )
    except Exception:  # the parser's own failure: the reply is kept, with no return date
        logger.warning("could not read a return date from an auto-reply", exc_info=True)
        return None


def _at_most(text: str | None, length: int, field: Field) -> None:
    if text is not None and len(text) > length:
        raise InvalidInput(f"At most {length} characters.", field)


async def receive(
    prospect: Prospect,
    kind: Kind,
    *,
    actor: Actor,
    channel: Channel,
    sender: str,
    body: str,
    subject: str | None = None,
    receipt_key: str | None = None,
    external_id: str | None = None,
    back: Return | None = None,
) -> Message:
    """Records a message received from a locked prospect, with its effects (R6.4, R7),
    in the caller's transaction. A reply makes the conversation REPLY_NEEDED, finishes
    REPLIED every unfinished enrollment whose sequence stops on reply (cancelling
    their queued messages) and fires MESSAGE_RECEIVED rules; an auto-reply changes
    nothing else, unless it gives a return date (``back``, from ``return_of``): then
    it keeps it (``returns_at``) and pauses the prospect's running enrollments until
    the morning of that day (cause OUT_OF_OFFICE); an SMS opt-out or opt-in keyword opts the prospect out of (or back
    into) SMS. An email asking to be unsubscribed opts out of EMAIL first, so the
    enrollments that send email finish OPTED_OUT (reason ``unsubscribe_request``),
    not REPLIED; then, being the person's own words, it is a reply for the rest.
    An opt-in keyword from someone with nothing to opt back into ("Yes" to our
    question) is a reply. ``receipt_key`` is unique: a provider's retry of the same message raises
    IntegrityError, so the caller can roll back and answer as before."""
    now = actor.now()
    found_in = prospect.status_id  # the status the message finds, for the rules limited to statuses
    if kind is Kind.OPT_IN and channel not in await suppressions.blocked_channels(prospect):
        kind = Kind.REPLY
    message = await store(
        prospect,
        actor=actor,
        channel=channel,
        sender=sender,
        body=body,
        subject=subject,
        auto_reply=kind is Kind.AUTO_REPLY,
        receipt_key=receipt_key,
        external_id=external_id,
        returns_at=back.returns_at if back is not None and kind is Kind.AUTO_REPLY else None,
    )
    await log.record([message_event(EventType.MESSAGE_RECEIVED, message, now)])
    if back is not None and kind is Kind.AUTO_REPLY:
        paused = await lifecycle.pause_prospect_until(
            prospect.id, back.resumes_at, actor=actor, cause=ChangeCause.OUT_OF_OFFICE, reason=OUT_OF_OFFICE
        )
        await rules.stages_entered(paused)
    if kind is Kind.OPT_OUT:
        await consent.opt_out(prospect, channel, actor=actor, cause=ChangeCause.INBOUND)
    elif kind is Kind.OPT_IN:
        await consent.opt_in(prospect, channel, actor=actor)
    if kind is Kind.UNSUBSCRIBE_REQUEST:
        await consent.opt_out(
            prospect, Channel.EMAIL, actor=actor, cause=ChangeCause.INBOUND, reason=UNSUBSCRIBE_REQUEST
        )
    if kind in (Kind.REPLY, Kind.UNSUBSCRIBE_REQUEST):
        prospect.conversation_state = ConversationState.REPLY_NEEDED
        prospect.last_message_at = now
        await prospect.save(update_fields=["conversation_state", "last_message_at"])
        stopping = {s.id for s in await Sequence.filter(organization_id=prospect.organization_id, stop_on_reply=True)}
        replied = await lifecycle.for_prospect(
            prospect.id, Event.REPLY, actor=actor, cause=ChangeCause.INBOUND, reason="replied", sequence_ids=stopping
        )
        await rules.stages_entered(replied)
        # The rules of the stages finished above (and of an unsubscribe request's
        # consent) may have moved the prospect: the message's rules judge the status it found.
        await rules.events_happened(
            TriggerEvent.MESSAGE_RECEIVED, [(actor, prospect.id, channel)], statuses={prospect.id: found_in}
        )
        await prospect.refresh_from_db()  # rules may have changed it
    return message


async def store(
    prospect: Prospect,
    *,
    actor: Actor,
    channel: Channel,
    sender: str,
    body: str,
    subject: str | None,
    auto_reply: bool,
    receipt_key: str | None,
    external_id: str | None,
    **extra: Any,
) -> Message:
    """The row of a received message (a bounce notice passes its ``extra`` fields)."""
    now = actor.now()
    return await Message.create(
        organization_id=prospect.organization_id,
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
        receipt_key=receipt_key,
        external_id=external_id,
        **extra,
    )


async def record_bounce(
    *,
    actor: Actor,
    message_id: int | None,
    email: str | None,
    bounce_type: BounceType,
    reason: str | None,
) -> tuple[Message | None, Prospect]:
    """A bounce reported through the API (``recordBounce``), with the effects of ``bounced``."""
    _at_most(reason, REASON_MAX, ("reason",))
    if (message_id is None) == (email is None):
        raise InvalidInput("Give messageId or email.", ("message_id",))
    async with in_transaction():
        message = None
        if message_id is not None:
            message = await Message.get_or_none(id=message_id, organization_id=actor.organization_id)
            prospect = (
                None
                if message is None
                else await prospects.visible(actor).filter(id=message.prospect_id).select_for_update().first()
            )
            if message is None or prospect is None:
                raise NotFound("Message", ("message_id",))
        else:
            address = validation.email(email or "", ("email",)).lower()
            prospect = await prospects.visible(actor).filter(email=address).select_for_update().first()
            if prospect is None:
                raise NotFound("Prospect", ("email",))
            message = (
                await Message.filter(prospect_id=prospect.id, channel=Channel.EMAIL, direction=Direction.OUTBOUND)
                .order_by("-id")
                .first()
            )
        await bounced(
            prospect,
            message,
            actor=actor,
            bounce_type=bounce_type,
            address=(message.to_address if message else None) or prospect.email or "",
            reason=reason or f"{bounce_type.value.lower()} bounce",
            sender="",
            body=reason or "",
        )
    return message, prospect


REASON_MAX = 1000
"""A bounce's reason at most: an SMTP reply, with its enhanced status code."""
SOFT_BOUNCES_MAKE_HARD = 3
SOFT_BOUNCE_WINDOW = timedelta(days=7)


async def bounced(
    prospect: Prospect,
    ours: Message | None,
    *,
    actor: Actor,
    bounce_type: BounceType,
    address: str,
    reason: str,
    sender: str,
    body: str,
    subject: str | None = None,
    receipt_key: str | None = None,
    external_id: str | None = None,
) -> Message:
    """A bounce of ``address`` (R6.1, R6.4), for the API and the email webhook alike:
    the notice is recorded (an automatic message, so soft bounces can be counted),
    the third soft bounce of one address within 7 days counts as hard, our bounced
    message (``ours``, when known) takes the outcome, and a hard bounce of the
    prospect's address has the effects of consent.hard_bounce. Returns the message
    the MESSAGE_BOUNCED event names: ours, else the notice."""
    address = address.lower()
    now = actor.now()
    notice = await store(
        prospect,
        actor=actor,
        channel=Channel.EMAIL,
        sender=sender,
        body=body,
        subject=subject,
        auto_reply=True,  # a notice from a mail system, not the prospect's words
        receipt_key=receipt_key,
        external_id=external_id,
        to_address=address,
        bounce_type=bounce_type,
        error=reason,
    )
    if bounce_type is BounceType.SOFT:
        recent = await Message.filter(
            prospect_id=prospect.id,
            direction=Direction.INBOUND,
            bounce_type=BounceType.SOFT,
            to_address=address,
            received_at__gte=now - SOFT_BOUNCE_WINDOW,
        ).count()
        if recent >= SOFT_BOUNCES_MAKE_HARD:
            bounce_type = BounceType.HARD
            reason = f"{recent} soft bounces within 7 days"
    if ours is not None:
        ours.bounce_type = bounce_type
        ours.error = reason
        if bounce_type is BounceType.HARD:
            ours.state = MessageState.BOUNCED
        await ours.save(update_fields=["bounce_type", "error", "state"])
    concerned = ours or notice
    await log.record([message_event(EventType.MESSAGE_BOUNCED, concerned, now)])
    if bounce_type is BounceType.HARD and address == (prospect.email or "").lower():
        await consent.hard_bounce(prospect, actor=actor, cause=ChangeCause.INBOUND)
    elif bounce_type is BounceType.HARD and (bounced := _email_key(address)) is not None:
        # An address the prospect no longer has: it bounced all the same, whoever carries it.
        entry = suppressions.Entry(Channel.EMAIL, bounced, SuppressionReason.HARD_BOUNCE)
        await suppressions.record(
            prospect.organization_id,
            [entry],
            actor=actor,
            cause=ChangeCause.INBOUND,
            prospect_id=prospect.id,
            enrollment_reason="bounced_hard",
        )
    return concerned


def _email_key(address: str) -> str | None:
    """A bounced address as the suppression list keys it; None if it is no address."""
    try:
        return validation.email(address, ()).lower()
    except InvalidInput:
        return None
