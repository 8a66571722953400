from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from app.prospects.models import Channel


class Direction(StrEnum):
    OUTBOUND = "OUTBOUND"
    INBOUND = "INBOUND"


class MessageState(StrEnum):
    QUEUED = "QUEUED"
    SENDING = "SENDING"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    BOUNCED = "BOUNCED"
    UNCERTAIN = "UNCERTAIN"
    CANCELLED = "CANCELLED"
    RECEIVED = "RECEIVED"


class BounceType(StrEnum):
    HARD = "HARD"
    SOFT = "SOFT"


class Mailbox(Model):
    """A sender identity with its sending limits (contract part 60): the address the
    emails of a rep's prospects (``user`` set) or of the team (``user`` null, the
    organization's shared mailbox) go out from. Its address is lower-cased and held
    by one organization alone, as every sending identity is."""

    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    user: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.User", null=True, on_delete=fields.CASCADE, related_name=False
    )
    address = fields.CharField(max_length=320, unique=True)
    display_name = fields.CharField(max_length=200, null=True)
    daily_limit = fields.IntField(default=200)
    ramp_up_start = fields.IntField(null=True)
    ramp_up_per_day = fields.IntField(null=True)
    per_domain_hourly_limit = fields.IntField(null=True)
    time_zone = fields.CharField(max_length=64, null=True)  # null: the organization's
    smtp_url_sealed = fields.TextField(null=True)  # sealed like webhook secrets; never returned
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()
    # The day (in its zone) it first took a sending slot: day 0 of its warm-up.
    first_sending_day = fields.DateField(null=True)

    organization_id: int
    user_id: int | None

    class Meta:
        table = "mailbox"
        indexes = (("organization_id", "user_id"),)


class Message(Model):
    """One message. A step's message is created once, under ``send_key``
    (enrollment:step, unique), before any provider call; QUEUED → SENDING is a
    compare-and-set, so no step is ever sent twice (R5.2)."""

    id = fields.IntField(primary_key=True)
    organization: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Organization", on_delete=fields.CASCADE, related_name=False
    )
    prospect: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Prospect", on_delete=fields.CASCADE, related_name=False
    )
    enrollment: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Enrollment", null=True, on_delete=fields.SET_NULL, related_name=False
    )
    step: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.SequenceStep", null=True, on_delete=fields.SET_NULL, related_name=False
    )
    # EMAIL: the mailbox it goes out from; null: the organization's emailFrom.
    mailbox: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Mailbox", null=True, on_delete=fields.SET_NULL, related_name=False
    )
    # EMAIL: the message it answers or follows in its thread (app/messaging/threads.py):
    # a threaded step's previous email, or the message sendMessage's inReplyToId names.
    in_reply_to: fields.ForeignKeyNullableRelation[Message] = fields.ForeignKeyField(
        "models.Message", null=True, on_delete=fields.SET_NULL, related_name=False
    )
    # Its References header (the thread's Message-IDs, oldest first, space-separated),
    # fixed when it is queued: its last id is its In-Reply-To.
    references_header = fields.TextField(null=True)
    channel = fields.CharEnumField(Channel, max_length=8)
    direction = fields.CharEnumField(Direction, max_length=8)
    state = fields.CharEnumField(MessageState, max_length=16)
    to_address = fields.CharField(max_length=320, null=True)
    from_address = fields.CharField(max_length=320, null=True)
    subject = fields.TextField(null=True)
    body = fields.TextField()
    external_id = fields.CharField(max_length=255, null=True, db_index=True)
    attempts = fields.IntField(default=0)
    error = fields.TextField(null=True)
    bounce_type: BounceType | None = fields.CharEnumField(BounceType, max_length=8, null=True)  # type: ignore[assignment]
    auto_reply = fields.BooleanField(default=False)
    # An auto-reply's return date, read from its text (app.messaging.return_dates).
    returns_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)
    received_at = fields.DatetimeField(null=True)
    # QUEUED: when the next attempt may start. SENDING: when its lease ends.
    next_attempt_at = fields.DatetimeField(null=True)
    lease_until = fields.DatetimeField(null=True)
    # The random token of the claim that made it SENDING: a claim whose reply was
    # lost (the database went away) can still tell its messages from others'.
    claim_token = fields.BigIntField(null=True)
    send_key = fields.CharField(max_length=64, null=True, unique=True)
    # A received message's provider id (twilio:<MessageSid>, email:<organization id>:<Message-ID>,
    # before it named the organization email:<Message-ID>): unique, so a provider's retry,
    # even a concurrent one, records nothing twice.
    receipt_key = fields.CharField(max_length=300, null=True, unique=True)
    # QUEUED: held back by its mailbox's limits until then (next_attempt_at is the same
    # time, so it is simply not due); null when not held.
    deferred_until = fields.DatetimeField(null=True)
    # When it took its mailbox's slots (the day and the hour they count in): set by the
    # claim; the slots are given back when it ends neither SENT nor UNCERTAIN.
    slot_at = fields.DatetimeField(null=True)

    organization_id: int
    prospect_id: int
    enrollment_id: int | None
    step_id: int | None
    mailbox_id: int | None
    in_reply_to_id: int | None

    class Meta:
        table = "message"
        # An enrollment's messages (the scheduler's threads, the enrollment's list), 0029.
        indexes = (("state", "next_attempt_at"), ("organization_id", "prospect_id"), ("enrollment_id",))


class SendCount(Model):
    """What a mailbox sent in one period, the counter its limits are enforced with
    (app.messaging.limits): the day (``domain`` empty, ``starts_at`` the midnight
    that starts it in the mailbox's zone) or one clock hour to one recipient domain.
    ``sent`` counts the slots taken (a message claimed to go out, given back unless
    it ends SENT or UNCERTAIN) and never passes ``cap``, the limit that applied when
    a slot was last asked for; ``taken`` is what that ask got."""

    id = fields.IntField(primary_key=True)
    mailbox: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Mailbox", on_delete=fields.CASCADE, related_name=False
    )
    domain = fields.CharField(max_length=255)
    starts_at = fields.DatetimeField()
    cap = fields.IntField()
    sent = fields.IntField()
    taken = fields.IntField()

    mailbox_id: int

    class Meta:
        table = "send_count"
        unique_together = (("mailbox", "domain", "starts_at"),)
