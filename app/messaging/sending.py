"""Sending queued messages, in batches (SPEC R5.2-R5.5).

1. QUEUED → SENDING by compare-and-set (attempts + 1, a lease, the claim's
   random token), so two workers holding the same ids cannot both send one;
   then the mailbox slots of those sent from a mailbox (app.messaging.limits):
   those over a limit are QUEUED again, deferred, their attempt uncounted.
2. The send gate, re-read right before the provider call: the enrollment is
   unfinished, the prospect is not do-not-contact, the channel is not opted
   out or bounced, neither the message's address nor the prospect's current
   one is on the organization's suppression list for the channel (whichever
   record it was suppressed for), SMS is within quiet hours. Failing it:
   CANCELLED, a blocked channel finishing the enrollment OPTED_OUT as the
   scheduler does (or, for quiet hours, QUEUED again for the next opening).
3. The provider calls, concurrently, outside any transaction.
4. The outcomes, always written, in one transaction: SENT; QUEUED again after a
   transient failure (exponential backoff with jitter, at most 5 attempts),
   then FAILED; FAILED or BOUNCED for a permanent one, finishing the
   enrollment. A hard bounce also blocks EMAIL for the prospect. Mailbox slots
   are kept by SENT and UNCERTAIN messages only, given back by the others.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from app import db
from app.accounts.actor import system_actor
from app.accounts.models import Organization
from app.automation import rules
from app.clock import Clock
from app.config import Settings
from app.events import log
from app.events.models import EventType
from app.messaging import limits, mailboxes, store
from app.messaging.events import message_event
from app.messaging.mail import build_email
from app.messaging.models import BounceType, Mailbox, Message, MessageState
from app.messaging.transports import (
    Email,
    EmailTransport,
    FileOutbox,
    OutboxSms,
    PermanentError,
    SendError,
    SmtpTransport,
    TransientError,
    Transports,
    TwilioTransport,
)
from app.observability import metrics
from app.prospects import consent, suppressions
from app.prospects.models import ChangeCause, Channel, Prospect
from app.sealing import UnreadableSecret
from app.sequences import lifecycle
from app.sequences.models import Enrollment
from app.sequences.state import Stage
from app.sequences.windows import next_opening
from app.workflows.models import TriggerEvent

MAX_ATTEMPTS = 5
CHUNK = 50
"""Messages claimed, sent and recorded together: one claim, one gate read and one
recording transaction for all of them (the database work per message is what
bounds the engine). They go out as fast as the SMTP pool's connections allow; a
worker killed mid-chunk leaves at most a chunk per running job UNCERTAIN."""
BACKOFF_BASE_SECONDS = 30
SETTLE_SECONDS = 60.0
"""How long a chunk's claim and its recording are tried again at least while the
database is unreachable (a restart takes seconds; the lease, if longer, bounds it):
the messages hold their claim's token, so they are found even once the lease has
made them UNCERTAIN."""
logger = logging.getLogger("leadline.sending")
EVENTS = {MessageState.SENT: EventType.MESSAGE_SENT, MessageState.BOUNCED: EventType.MESSAGE_BOUNCED}
KEEP_SLOTS = (MessageState.SENT, MessageState.UNCERTAIN)
"""The outcomes that keep the mailbox slots their messages took."""
BLOCKED = "channel_blocked"
"""The reason of a message the gate cancels for its channel or address (the scheduler's, for a step it cannot queue)."""


def transports_for(settings: Settings) -> Transports:
    """SMTP and Twilio when configured, else the file outbox in the data directory."""
    outbox = FileOutbox(settings.data_dir / "outbox")
    email = SmtpTransport(settings.smtp_url, settings.smtp_connections) if settings.smtp_url else outbox
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


async def send(message_id: int, *, transports: Transports, settings: Settings, clock: Clock) -> MessageState | None:
    """Sends one message if it is QUEUED and due; its new state (None: not ours to send)."""
    states = await send_batch([message_id], transports=transports, settings=settings, clock=clock)
    return states.get(message_id)


async def send_batch(
    message_ids: list[int], *, transports: Transports, settings: Settings, clock: Clock
) -> dict[int, MessageState]:
    """Sends those of ``message_ids`` that are QUEUED and due; their new states.

    They go in chunks of CHUNK, sent concurrently: each chunk is claimed (one
    compare-and-set, which also reads the messages), gated (three reads) and
    recorded (one transaction) on its own, so the database work per message
    stays small while a worker that dies holds at most a chunk per job SENDING,
    the messages it was sending.
    """
    batch = _Batch(
        organizations={}, with_sent_rules=set(), mailboxes={}, transports=transports, settings=settings, clock=clock
    )
    states: dict[int, MessageState] = {}
    for start in range(0, len(message_ids), CHUNK):
        states |= await _send_chunk(message_ids[start : start + CHUNK], batch)
    return states


@dataclass(frozen=True)
class _Batch:
    organizations: dict[int, Organization]
    """The chunks' organizations (they hold no gate facts), read once per batch."""
    with_sent_rules: set[int]
    """Those of them with MESSAGE_SENT rules."""
    mailboxes: dict[int, Mailbox]
    """The mailboxes the chunks' emails go out from (their limits, From and SMTP
    server), read once per batch like the organizations."""
    transports: Transports
    settings: Settings
    clock: Clock

    async def know(self, messages: list[Message]) -> None:
        """Reads the messages' organizations (and whether they have MESSAGE_SENT rules)
        and their emails' mailboxes not read yet, keeping what each read got (a read
        that fails is made again)."""
        new = {m.organization_id for m in messages} - self.organizations.keys()
        if new:
            organizations = await Organization.filter(id__in=new)
            with_rules = await rules.organizations_with_rules(new, TriggerEvent.MESSAGE_SENT)
            self.organizations.update((o.id, o) for o in organizations)
            self.with_sent_rules.update(with_rules)
        unread = {m.mailbox_id for m in messages if m.channel is Channel.EMAIL and m.mailbox_id is not None}
        if unread := unread - self.mailboxes.keys():
            self.mailboxes.update((m.id, m) for m in await Mailbox.filter(id__in=unread))

    def limits(self) -> dict[int, limits.Rules]:
        """The limits of the mailboxes read so far, by mailbox id."""
        zones = {o.id: o.time_zone for o in self.organizations.values()}
        return {pk: limits.rules_from(box, zones[box.organization_id]) for pk, box in self.mailboxes.items()}


async def _send_chunk(message_ids: list[int], batch: _Batch) -> dict[int, MessageState]:
    claim = _Claim(
        token=secrets.randbits(63),
        settle_by=time.monotonic() + max(batch.settings.send_lease_seconds, SETTLE_SECONDS),
    )
    claimed = await db.while_unreachable(
        partial(_claim_and_gate, message_ids, batch, claim),
        until=claim.settle_by,
        what=f"claiming {len(message_ids)} message(s)",
    )
    if claimed is None:
        return {}
    messages, deferred, gate = claimed
    metrics.messages_deferred.inc(len(deferred))  # counted once the claim that deferred them committed
    if not messages:
        return {m.id: m.state for m in deferred}
    attempts = (_attempt(m, gate, batch.transports, batch.settings) for m in messages)
    results = await asyncio.gather(*attempts, return_exceptions=True)
    reasons: dict[int, str] = {}
    for message, result in zip(messages, results, strict=True):
        if isinstance(result, str):
            reasons[message.id] = result
        elif isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            # Nothing says whether the provider took it: never resent (R5.2).
            logger.error("sending message %s failed unexpectedly", message.id, exc_info=result)
            message.state = MessageState.UNCERTAIN
            message.error = f"unexpected {type(result).__name__} while sending; not resent"
    await _record(messages, batch, claim, reasons)
    return {m.id: m.state for m in [*messages, *deferred]}


@dataclass
class _Claim:
    token: int
    """Stamped on the claimed messages (Message.claim_token): this claim's alone."""
    settle_by: float
    """The monotonic time until which claiming and recording are tried again while
    the database is unreachable."""
    claimed_at: datetime | None = None
    """When its last try claimed (and took the mailboxes' slots): what it gives
    back if a try fails after committing."""


async def _claim_and_gate(
    message_ids: list[int], batch: _Batch, claim: _Claim, again: bool
) -> tuple[list[Message], list[Message], _Gate] | None:
    """Claims those of the messages that are QUEUED and due (one compare-and-set
    that returns them) and takes their mailboxes' slots, in one transaction, then
    reads their gate: (those to send, those their mailboxes' limits deferred, the
    gate); None when none was claimed. ``again``: a try failed, perhaps after its
    claim committed (the reply lost with the database): nothing was sent, so what
    it claimed goes back to QUEUED first, its attempt uncounted (restarts must not
    use up a message's attempts)."""
    if again:
        await _unclaim(message_ids, claim)
    now = claim.claimed_at = batch.clock.now()
    lease_until = now + timedelta(seconds=batch.settings.send_lease_seconds)
    async with in_transaction() as connection:
        messages = await store.claim(message_ids, now=now, lease_until=lease_until, token=claim.token)
        if not messages:
            return None
        await batch.know(messages)
        deferred = await limits.take(messages, now=now, rules=batch.limits(), connection=connection)
    if deferred:
        held = {m.id for m in deferred}
        messages = [m for m in messages if m.id not in held]
    gate = await _Gate.read(messages, batch.organizations, batch.clock)
    gate.mailboxes = batch.mailboxes
    return messages, deferred, gate


async def _unclaim(message_ids: list[int], claim: _Claim) -> None:
    """The messages ``claim`` stamped QUEUED again (``store.unclaim``), said in the log."""
    returned = await store.unclaim(message_ids, token=claim.token, claimed_at=claim.claimed_at)
    if returned:
        logger.warning("%d message(s) claimed as the database went away, not sent: QUEUED again", returned)


class _Gate:
    """The send gate's facts for a chunk, read in three queries (R5.3, R12.1)."""

    def __init__(
        self,
        prospects: dict[int, SimpleNamespace],
        open_enrollments: set[int],
        suppressed: set[tuple[int, Channel, str]],
        organizations: dict[int, Organization],
        clock: Clock,
    ) -> None:
        self.prospects = prospects
        self.open_enrollments = open_enrollments
        self.suppressed = suppressed
        self.organizations = organizations
        self.clock = clock
        self.mailboxes: dict[int, Mailbox] = {}
        """The chunk's mailboxes, by id (From, and the SMTP server of those with their own)."""

    @classmethod
    async def read(cls, messages: list[Message], organizations: dict[int, Organization], clock: Clock) -> _Gate:
        enrollment_ids = {m.enrollment_id for m in messages if m.enrollment_id is not None}
        open_enrollments = await store.open_enrollments(enrollment_ids)
        prospects = await store.prospects_to_gate({m.prospect_id for m in messages})
        suppressed = await store.suppressed(key for m in messages for key in _addresses(m, prospects))
        return cls(prospects, open_enrollments, suppressed, organizations, clock)

    def blocked(self, message: Message) -> bool:
        """The channel is blocked for the prospect (its flags), or the message's address
        or the prospect's current one is suppressed on it."""
        prospect = self.prospects[message.prospect_id]
        if message.channel in lifecycle.blocked_channels(prospect):
            return True
        return any(key in self.suppressed for key in _addresses(message, self.prospects))

    def verdict(self, message: Message) -> MessageState | None:
        """None when the message may go now; else CANCELLED, or QUEUED for later (quiet hours)."""
        prospect = self.prospects[message.prospect_id]
        if self.blocked(message):
            return MessageState.CANCELLED
        if message.enrollment_id is not None and message.enrollment_id not in self.open_enrollments:
            return MessageState.CANCELLED
        if message.channel is Channel.SMS:
            organization = self.organizations[message.organization_id]
            zone = ZoneInfo(prospect.time_zone or organization.time_zone)
            now = self.clock.now()
            opening = next_opening(now, window=None, prospect_zone=zone, quiet_hours=True)
            if opening > now:
                message.next_attempt_at = opening
                return MessageState.QUEUED
        return None


def _email_transport(mailbox: Mailbox | None, transports: Transports, settings: Settings) -> EmailTransport:
    """The pool of the mailbox's own SMTP server, else SMTP_URL's (or the file outbox)."""
    if mailbox is None or mailbox.smtp_url_sealed is None:
        return transports.email
    try:
        url = mailboxes.smtp_url_of(mailbox, secret_key=settings.secret_key)
        return transports.email_for(url)
    except UnreadableSecret:
        raise PermanentError(
            "The mailbox's SMTP URL does not open with this SECRET_KEY; set its smtpUrl again.",
            reason="mailbox_smtp_unreadable",
        ) from None
    except ValueError:
        raise PermanentError("The mailbox's SMTP URL is not an SMTP URL.", reason="mailbox_smtp_invalid") from None


def _addresses(message: Message, prospects: dict[int, SimpleNamespace]) -> list[tuple[int, Channel, str | None]]:
    """The suppression keys a message must not be sent to: its own address, and its
    prospect's current one on its channel (the prospect may have changed it since)."""
    keys = [(message.organization_id, message.channel, suppressions.key(message.channel, message.to_address))]
    prospect = prospects.get(message.prospect_id)
    if prospect is not None:
        keys.append((message.organization_id, message.channel, suppressions.address_of(prospect, message.channel)))
    return keys


async def _attempt(message: Message, gate: _Gate, transports: Transports, settings: Settings) -> str | None:
    """The gate, then the provider call; sets ``message.state`` to the outcome. A
    failure's (or a blocked channel's) reason slug, for the enrollment it may finish."""
    verdict = gate.verdict(message)
    if verdict is not None:
        message.state = verdict
        if verdict is MessageState.CANCELLED and gate.blocked(message):
            message.error = "the channel is blocked for the prospect or its address is suppressed"
            return BLOCKED
        return None
    organization = gate.organizations[message.organization_id]
    try:
        if message.channel is Channel.EMAIL:
            mailbox = gate.mailboxes.get(message.mailbox_id) if message.mailbox_id is not None else None
            transport = _email_transport(mailbox, transports, settings)
            email = _built(message, organization, settings, mailbox)
            message.external_id = await transport.send(email)
        else:
            message.external_id = await transports.sms.send(
                to=message.to_address or "",
                sender=organization.sms_from or "",
                body=message.body,
                reference=message.id,
            )
    except SendError as failure:
        message.state = _after_failure(message, failure, gate.clock)
        return failure.reason
    message.state = MessageState.SENT
    return None


def _built(
    message: Message,
    organization: Organization,
    settings: Settings,
    mailbox: Mailbox | None = None,
) -> Email:
    """``build_email``, whatever stops it a PermanentError: no provider has seen the
    message, so it FAILED (never UNCERTAIN, which is for what a provider may have taken)."""
    try:
        return build_email(message, organization, settings, mailbox=mailbox)
    except SendError:
        raise
    except Exception as error:
        logger.error("message %s could not be built", message.id, exc_info=error)
        raise PermanentError(
            f"The email could not be built: {type(error).__name__}: {error}"[:1000], reason="unsendable_message"
        ) from None


def _after_failure(message: Message, failure: SendError, clock: Clock) -> MessageState:
    message.error = str(failure)[:1000]
    if isinstance(failure, TransientError) and message.attempts < MAX_ATTEMPTS:
        message.next_attempt_at = clock.now() + backoff(message.attempts)
        return MessageState.QUEUED
    if isinstance(failure, PermanentError) and failure.hard_bounce:
        message.bounce_type = BounceType.HARD
        return MessageState.BOUNCED
    return MessageState.FAILED


async def _record(messages: list[Message], batch: _Batch, claim: _Claim, reasons: dict[int, str]) -> None:
    """Writes the chunk's outcomes, and what they mean for enrollments and prospects;
    while the database is unreachable (a restart), again after a pause until
    ``claim.settle_by``: the outcomes are known, and UNCERTAIN would say they are
    not. ``reasons``: the stage-change reason of each message that failed for a
    known cause."""
    now = batch.clock.now()
    for message in messages:
        message.lease_until = None
        if message.state is MessageState.SENT:
            message.sent_at = now
    await db.while_unreachable(
        partial(_write_outcomes, messages, batch, claim.token, now, reasons),
        until=claim.settle_by,
        what=f"recording {len(messages)} message(s)",
    )
    metrics.count_messages(messages)


async def _write_outcomes(
    messages: list[Message], batch: _Batch, token: int, now: datetime, reasons: dict[int, str], again: bool
) -> None:
    clock = batch.clock
    async with in_transaction() as connection:
        if again:  # only what is unrecorded: a try that failed may have committed
            still = await store.still_leased([m.id for m in messages], token=token)
            messages = [m for m in messages if m.id in still]
        # The limits count what went out or may have: the others' slots are given back.
        await limits.release((m for m in messages if m.state not in KEEP_SLOTS), connection)
        await store.record_results(messages, connection=connection)
        await store.awaiting_reply({m.prospect_id for m in messages if m.state is MessageState.SENT}, now=now)
        await log.record(message_event(EVENTS[m.state], m, now) for m in messages if m.state in EVENTS)
        sent = [
            (system_actor(m.organization_id, clock), m.prospect_id, m.channel)
            for m in messages
            if m.state is MessageState.SENT and m.organization_id in batch.with_sent_rules
        ]
        finishing = [m for m in messages if m.enrollment_id is not None and _finishes(m, reasons)]
        # A prospect sent one message and failed another of this chunk: the failure's
        # stage rules may move it first; the sent message's rules judge the status it had.
        both = {p for _, p, _ in sent} & {m.prospect_id for m in finishing}
        found_in = dict(await Prospect.filter(id__in=both).values_list("id", "status_id")) if both else {}
        for message in finishing:  # a blocked one's reason is BLOCKED
            await _finish_enrollment(message, message.state, clock, reasons.get(message.id, "send_failed"))
        if sent:
            await rules.events_happened(TriggerEvent.MESSAGE_SENT, sent, statuses=found_in)


def _finishes(message: Message, reasons: dict[int, str]) -> bool:
    """A failure, a bounce or a send the gate blocked finishes the message's enrollment."""
    if message.state in (MessageState.FAILED, MessageState.BOUNCED):
        return True
    return message.state is MessageState.CANCELLED and reasons.get(message.id) == BLOCKED


async def _finish_enrollment(message: Message, outcome: MessageState, clock: Clock, reason: str) -> None:
    """A hard bounce has consent's effects; a blocked channel finishes the enrollment
    OPTED_OUT (its next steps would be refused alike); any other failure FAILED."""
    actor = system_actor(message.organization_id, clock)
    if outcome is MessageState.BOUNCED:
        prospect = await Prospect.filter(id=message.prospect_id).select_for_update().first()
        if prospect is not None:
            await consent.hard_bounce(prospect, actor=actor, cause=ChangeCause.SCHEDULER, also=message.to_address)
        return
    enrollment = await Enrollment.filter(id=message.enrollment_id, finished_at=None).select_for_update().first()
    if enrollment is not None and enrollment.stage in (Stage.STARTED, Stage.APPROACHING):
        stage = Stage.OPTED_OUT if outcome is MessageState.CANCELLED else Stage.FAILED
        failed = await lifecycle.fail([enrollment], stage, actor=actor, cause=ChangeCause.SCHEDULER, reason=reason)
        await rules.stages_entered(failed)
