"""Sending one queued message (SPEC R5.2-R5.5).

1. QUEUED → SENDING by compare-and-set (attempts + 1, a lease), so two workers
   holding the same job cannot both send.
2. The send gate, re-read right before the provider call: the enrollment is
   unfinished, the prospect is not do-not-contact, the channel is not opted
   out or bounced, SMS is within quiet hours. Failing it: CANCELLED (or, for
   quiet hours, QUEUED again for the next opening).
3. The provider call, outside any transaction.
4. The outcome, always written (``finally``): SENT; QUEUED again after a
   transient failure (exponential backoff with jitter, at most 5 attempts),
   then FAILED; FAILED or BOUNCED for a permanent one, finishing the
   enrollment. A hard bounce also blocks EMAIL for the prospect.
"""

from __future__ import annotations

import random
from datetime import timedelta
from email.mime.text import MIMEText
from email.utils import format_datetime, make_msgid
from zoneinfo import ZoneInfo

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from app.accounts.actor import system_actor
from app.accounts.models import Organization
from app.clock import Clock
from app.config import Settings
from app.messaging.models import BounceType, Message, MessageState
from app.messaging.transports import (
    Email,
    FileOutbox,
    OutboxSms,
    PermanentError,
    SendError,
    SmtpTransport,
    TransientError,
    Transports,
    TwilioTransport,
)
from app.messaging.unsubscribe import make_token
from app.prospects import effects
from app.prospects.models import ChangeCause, Channel, ConversationState, Prospect
from app.sequences import lifecycle
from app.sequences.models import Enrollment
from app.sequences.state import Event, Stage
from app.sequences.windows import next_opening

MAX_ATTEMPTS = 5
LEASE = timedelta(minutes=5)
BACKOFF_BASE_SECONDS = 30


def transports_for(settings: Settings) -> Transports:
    """SMTP and Twilio when configured, else the file outbox in the data directory."""
    outbox = FileOutbox(settings.data_dir / "outbox")
    email = SmtpTransport(settings.smtp_url) if settings.smtp_url else outbox
    sms = (
        TwilioTransport(settings.twilio_api_url, settings.twilio_account_sid, settings.twilio_auth_token)
        if settings.twilio_account_sid and settings.twilio_auth_token
        else OutboxSms(outbox)
    )
    return Transports(email=email, sms=sms)


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, 4 min … with ±25 % jitter, so retries do not stampede."""
    seconds = BACKOFF_BASE_SECONDS * 2 ** (attempts - 1)
    return timedelta(seconds=seconds * random.uniform(0.75, 1.25))


def build_email(message: Message, organization: Organization, settings: Settings) -> Email:
    """A plain-text email with the headers of R5.5 (cheap to build: MIMEText, compat32)."""
    sender = organization.email_from or f"no-reply@{_host(settings.public_url)}"
    message_id = make_msgid(domain=sender.rsplit("@", 1)[1])
    link = f"{settings.public_url}/u/{make_token(settings.secret_key, message.prospect_id, message.id)}"
    footer = f"\n\n--\nUnsubscribe: {link}\n"
    if organization.postal_address:
        footer += f"{organization.postal_address}\n"
    mime = MIMEText(message.body + footer, "plain", "utf-8")
    mime["From"] = sender
    mime["To"] = message.to_address or ""
    mime["Subject"] = message.subject or ""
    mime["Message-ID"] = message_id
    mime["Date"] = format_datetime(message.created_at)
    mime["List-Unsubscribe"] = f"<{link}>"
    mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return Email(sender=sender, recipient=message.to_address or "", data=mime.as_bytes(), message_id=message_id)


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "localhost"


async def send(message_id: int, *, transports: Transports, settings: Settings, clock: Clock) -> MessageState | None:
    """Sends one message if it is QUEUED and due; returns its new state (None: not ours to send)."""
    now = clock.now()
    taken = await Message.filter(id=message_id, state=MessageState.QUEUED, next_attempt_at__lte=now).update(
        state=MessageState.SENDING,
        lease_until=now + LEASE,
        attempts=F("attempts") + 1,
    )
    if not taken:
        return None
    message = await Message.get(id=message_id)
    outcome = MessageState.FAILED
    error: SendError | None = None
    try:
        verdict = await _gate(message, clock)
        if verdict is not None:
            outcome = verdict
            return outcome
        organization = await Organization.get(id=message.organization_id)
        if message.channel is Channel.EMAIL:
            external_id = await transports.email.send(build_email(message, organization, settings))
        else:
            external_id = await transports.sms.send(
                to=message.to_address or "",
                sender=organization.sms_from or "",
                body=message.body,
                reference=message.id,
            )
        message.external_id = external_id
        outcome = MessageState.SENT
        return outcome
    except SendError as failure:
        error = failure
        outcome = _after_failure(message, failure)
        return outcome
    finally:
        await _record(message, outcome, error, clock)


async def _gate(message: Message, clock: Clock) -> MessageState | None:
    """None when the message may go now; else CANCELLED, or QUEUED for later (quiet hours)."""
    prospect = await Prospect.get(id=message.prospect_id)
    if message.channel in lifecycle.blocked_channels(prospect):
        return MessageState.CANCELLED
    if message.enrollment_id is not None:
        enrollment = await Enrollment.get_or_none(id=message.enrollment_id)
        if enrollment is None or enrollment.finished_at is not None:
            return MessageState.CANCELLED
    if message.channel is Channel.SMS:
        organization = await Organization.get(id=message.organization_id)
        zone = ZoneInfo(prospect.time_zone or organization.time_zone)
        opening = next_opening(clock.now(), window=None, prospect_zone=zone, quiet_hours=True)
        if opening > clock.now():
            message.next_attempt_at = opening
            return MessageState.QUEUED
    return None


def _after_failure(message: Message, failure: SendError) -> MessageState:
    message.error = str(failure)[:1000]
    if isinstance(failure, TransientError) and message.attempts < MAX_ATTEMPTS:
        return MessageState.QUEUED  # _record sets the backoff
    if isinstance(failure, PermanentError) and failure.hard_bounce:
        message.bounce_type = BounceType.HARD
        return MessageState.BOUNCED
    return MessageState.FAILED


async def _record(message: Message, outcome: MessageState, error: SendError | None, clock: Clock) -> None:
    """Writes the attempt's outcome, and what it means for the enrollment and prospect."""
    now = clock.now()
    message.state = outcome
    message.lease_until = None
    if outcome is MessageState.SENT:
        message.sent_at = now
    if outcome is MessageState.QUEUED and error is not None:
        message.next_attempt_at = now + backoff(message.attempts)
    async with in_transaction():
        if outcome is MessageState.SENT:
            await Prospect.filter(id=message.prospect_id).update(
                conversation_state=ConversationState.AWAITING_REPLY, last_message_at=now
            )
        await message.save(
            update_fields=[
                "state",
                "lease_until",
                "sent_at",
                "next_attempt_at",
                "external_id",
                "error",
                "bounce_type",
            ]
        )
        if outcome in (MessageState.FAILED, MessageState.BOUNCED) and message.enrollment_id is not None:
            await _finish_enrollment(message, outcome, clock)


async def _finish_enrollment(message: Message, outcome: MessageState, clock: Clock) -> None:
    actor = system_actor(message.organization_id, clock)
    if outcome is MessageState.BOUNCED:
        prospect = await Prospect.filter(id=message.prospect_id).select_for_update().first()
        if prospect is not None:
            await effects.hard_bounce(prospect, actor=actor, cause=ChangeCause.SCHEDULER)
        return
    enrollment = await Enrollment.filter(id=message.enrollment_id, finished_at=None).select_for_update().first()
    if enrollment is not None and enrollment.stage in (Stage.STARTED, Stage.APPROACHING):
        await lifecycle.apply(
            enrollment,
            Event.STEP_FAILED,
            actor=actor,
            cause=ChangeCause.SCHEDULER,
            reason="send_failed",
            outcome=Stage.FAILED,
        )
