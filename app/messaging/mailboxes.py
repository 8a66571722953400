"""Mailboxes (contract part 60): the addresses a rep's (or the team's) emails go
out from, managed by ADMIN and MANAGER; an AGENT reads its own.

Invariants, each checked with the organization's row locked:

- an address is a sending identity (app.accounts.identities): held by one
  organization alone, lower-cased, never at Leadline's own sender domain;
- an organization has at most one active mailbox per user and one active
  shared mailbox (no user), so ``senders`` has one answer: the prospect owner's
  active mailbox, else the shared active one, else none (the organization's
  emailFrom, as before mailboxes);
- a mailbox's own SMTP URL is stored sealed (app.sealing, bound to the row) and
  read only by the sender (``smtp_url_of``);
- a mailbox is deleted only once no QUEUED message waits on it: a user's
  mailbox hands its queued messages to the active shared one when there is one,
  else the deletion is a CONFLICT.

Messages already queued keep the mailbox they were queued with when it is
deactivated or handed to another user: what changes is who sends the next ones.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app import sealing, validation
from app.accounts import identities
from app.accounts.actor import Actor
from app.accounts.models import Organization, User
from app.config import Settings
from app.errors import Conflict, Field, InvalidInput, NotFound
from app.messaging.models import Mailbox, Message, MessageState
from app.messaging.transports import smtp_options

MAX_MAILBOXES = 1_000
"""Mailboxes an organization holds at most (listed whole by Query.mailboxes)."""
DEFAULT_DAILY_LIMIT = 200
MAX_LIMIT = 100_000
"""The most any of a mailbox's limits may be: far above what any mail provider allows one mailbox a day."""
DISPLAY_NAME_MAX = 200
SMTP_URL_MAX = 2_000
UNCHANGED: Any = object()
_LABEL = b"leadline/mailbox-smtp-urls/v1"


def visible(actor: Actor) -> QuerySet[Mailbox]:
    """The organization's mailboxes for ADMIN and MANAGER; an AGENT's own."""
    query = Mailbox.filter(organization_id=actor.organization_id)
    if actor.is_agent:
        query = query.filter(user_id=actor.user_id)
    return query


def _address(value: str, settings: Settings) -> str:
    field = ("address",)
    address = validation.email(value, field).lower()
    if len(address) > 320:
        raise InvalidInput("At most 320 characters.", field)
    identities.refuse_own_domain(address, own_domain=settings.sender_domain, field=field)
    return address


def _display_name(value: str | None) -> str | None:
    field = ("display_name",)
    if value is None:
        return None
    if "\r" in value or "\n" in value:
        raise InvalidInput("A display name is one line: no line breaks.", field)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput("A display name holds no control characters.", field)
    return validation.optional_text(value, field, max_length=DISPLAY_NAME_MAX)


def _limit(value: int | None, name: str, *, high: int = MAX_LIMIT) -> int | None:
    return None if value is None else validation.bounded_int(value, (name,), low=1, high=high)


def _check_limits(mailbox: Mailbox) -> None:
    """The limits as a whole: a warm-up starts at most at dailyLimit and needs both its numbers."""
    if mailbox.ramp_up_start is not None and mailbox.ramp_up_start > mailbox.daily_limit:
        raise InvalidInput(f"The warm-up starts at most at dailyLimit ({mailbox.daily_limit}).", ("ramp_up_start",))
    if (mailbox.ramp_up_start is None) != (mailbox.ramp_up_per_day is None):
        missing = "ramp_up_per_day" if mailbox.ramp_up_per_day is None else "ramp_up_start"
        raise InvalidInput("A warm-up needs both rampUpStart and rampUpPerDay (or neither).", (missing,))


def _smtp_url(value: str) -> str:
    field = ("smtp_url",)
    if len(value) > SMTP_URL_MAX:
        raise InvalidInput(f"At most {SMTP_URL_MAX} characters.", field)
    try:
        smtp_options(value)
    except ValueError:
        raise InvalidInput(
            "Not an SMTP URL: smtp://user:pass@host:port (smtps:// for TLS, ?starttls=1).", field
        ) from None
    return value.strip()


def _associated(mailbox_id: int) -> bytes:
    return f"mailbox/{mailbox_id}/smtp_url".encode()


def seal_smtp_url(url: str, *, mailbox_id: int, secret_key: str) -> str:
    return sealing.seal(url, secret_key=secret_key, label=_LABEL, associated=_associated(mailbox_id))


def smtp_url_of(mailbox: Mailbox, *, secret_key: str) -> str | None:
    """The mailbox's own SMTP URL, None when it uses SMTP_URL (UnreadableSecret when
    SECRET_KEY changed since it was set: it is then set again)."""
    if mailbox.smtp_url_sealed is None:
        return None
    return sealing.unseal(
        mailbox.smtp_url_sealed, secret_key=secret_key, label=_LABEL, associated=_associated(mailbox.id)
    )


async def _user(actor: Actor, user_id: int | None) -> int | None:
    if user_id is None:
        return None
    user = await User.get_or_none(id=user_id, organization_id=actor.organization_id)
    if user is None:
        raise NotFound("User", ("user_id",))
    if not user.active:
        raise InvalidInput("The user is deactivated.", ("user_id",))
    return user.id


async def _refuse_second_active(mailbox: Mailbox) -> None:
    """CONFLICT when another active mailbox sends for the same user (or is the shared one)."""
    if not mailbox.active:
        return
    others = Mailbox.filter(organization_id=mailbox.organization_id, user_id=mailbox.user_id, active=True)
    if mailbox.id is not None:
        others = others.exclude(id=mailbox.id)
    if await others.exists():
        if mailbox.user_id is None:
            raise Conflict("The organization has an active shared mailbox already; deactivate it first.", ("user_id",))
        raise Conflict("The user has an active mailbox already; deactivate it first.", ("user_id",))


async def _lock_organization(organization_id: int) -> Organization:
    return await Organization.filter(id=organization_id).select_for_update().get()


async def create_mailbox(
    *,
    actor: Actor,
    settings: Settings,
    address: str,
    display_name: str | None = None,
    user_id: int | None = None,
    daily_limit: int | None = None,
    ramp_up_start: int | None = None,
    ramp_up_per_day: int | None = None,
    per_domain_hourly_limit: int | None = None,
    time_zone: str | None = None,
    smtp_url: str | None = None,
) -> Mailbox:
    """A new active mailbox (ADMIN, MANAGER); its address becomes the organization's
    sending identity (CONFLICT if another organization's)."""
    actor.require_manager()
    mailbox = Mailbox(
        organization_id=actor.organization_id,
        address=_address(address, settings),
        display_name=_display_name(display_name),
        daily_limit=_limit(DEFAULT_DAILY_LIMIT if daily_limit is None else daily_limit, "daily_limit"),
        ramp_up_start=_limit(ramp_up_start, "ramp_up_start"),
        ramp_up_per_day=_limit(ramp_up_per_day, "ramp_up_per_day"),
        per_domain_hourly_limit=_limit(per_domain_hourly_limit, "per_domain_hourly_limit"),
        time_zone=None if time_zone is None else validation.time_zone(time_zone, ("time_zone",)),
        active=True,
        created_at=actor.now(),
    )
    _check_limits(mailbox)
    url = None if smtp_url is None else _smtp_url(smtp_url)
    async with in_transaction():
        await _lock_organization(actor.organization_id)
        if await Mailbox.filter(organization_id=actor.organization_id).count() >= MAX_MAILBOXES:
            raise Conflict(f"An organization has at most {MAX_MAILBOXES:,} mailboxes; delete one first.", ())
        if await Mailbox.exists(address=mailbox.address, organization_id=actor.organization_id):
            raise Conflict("A mailbox with this address exists already.", ("address",))
        await identities.claim_mailbox(
            organization_id=actor.organization_id, address=mailbox.address, field=("address",)
        )
        mailbox.user_id = await _user(actor, user_id)
        await _refuse_second_active(mailbox)
        await mailbox.save()
        if url is not None:
            mailbox.smtp_url_sealed = seal_smtp_url(url, mailbox_id=mailbox.id, secret_key=settings.secret_key)
            await mailbox.save(update_fields=["smtp_url_sealed"])
    return mailbox


async def get_mailbox(actor: Actor, mailbox_id: int, field: Field = ("id",)) -> Mailbox:
    """The organization's mailbox (ADMIN, MANAGER); NOT_FOUND for anything else."""
    actor.require_manager()
    mailbox = await Mailbox.get_or_none(id=mailbox_id, organization_id=actor.organization_id)
    if mailbox is None:
        raise NotFound("Mailbox", field)
    return mailbox


async def update_mailbox(
    *,
    actor: Actor,
    settings: Settings,
    mailbox_id: int,
    display_name: Any = UNCHANGED,
    user_id: Any = UNCHANGED,
    daily_limit: Any = UNCHANGED,
    ramp_up_start: Any = UNCHANGED,
    ramp_up_per_day: Any = UNCHANGED,
    per_domain_hourly_limit: Any = UNCHANGED,
    time_zone: Any = UNCHANGED,
    smtp_url: Any = UNCHANGED,
    active: Any = UNCHANGED,
) -> Mailbox:
    """Changes what is given (UNCHANGED: kept; None clears what may be null).
    dailyLimit and active cannot be null."""
    await get_mailbox(actor, mailbox_id)
    async with in_transaction():
        await _lock_organization(actor.organization_id)
        mailbox = await Mailbox.filter(id=mailbox_id).select_for_update().get()
        if display_name is not UNCHANGED:
            mailbox.display_name = _display_name(display_name)
        if daily_limit is not UNCHANGED:
            if daily_limit is None:
                raise InvalidInput("`dailyLimit` cannot be null.", ("daily_limit",))
            mailbox.daily_limit = _limit(daily_limit, "daily_limit")  # type: ignore[assignment]
        for name, value in (
            ("ramp_up_start", ramp_up_start),
            ("ramp_up_per_day", ramp_up_per_day),
            ("per_domain_hourly_limit", per_domain_hourly_limit),
        ):
            if value is not UNCHANGED:
                setattr(mailbox, name, _limit(value, name))
        _check_limits(mailbox)
        if time_zone is not UNCHANGED:
            mailbox.time_zone = None if time_zone is None else validation.time_zone(time_zone, ("time_zone",))
        if active is not UNCHANGED:
            if active is None:
                raise InvalidInput("`active` cannot be null.", ("active",))
            mailbox.active = active
        if user_id is not UNCHANGED:
            mailbox.user_id = await _user(actor, user_id)
        await _refuse_second_active(mailbox)
        if smtp_url is not UNCHANGED:
            sealed = None
            if smtp_url is not None:
                sealed = seal_smtp_url(_smtp_url(smtp_url), mailbox_id=mailbox.id, secret_key=settings.secret_key)
            mailbox.smtp_url_sealed = sealed  # type: ignore[assignment]
        await mailbox.save()
    return mailbox


async def delete_mailbox(*, actor: Actor, mailbox_id: int) -> int:
    """Deletes the mailbox and releases its address. Its QUEUED messages move to the
    organization's active shared mailbox when it is a user's and there is one;
    otherwise, while any waits on it, CONFLICT. Sent messages forget it."""
    await get_mailbox(actor, mailbox_id)
    async with in_transaction():
        organization = await _lock_organization(actor.organization_id)
        mailbox = await Mailbox.filter(id=mailbox_id).select_for_update().get()
        waiting = Message.filter(mailbox_id=mailbox.id, state=MessageState.QUEUED)
        if await waiting.exists():
            shared = None
            if mailbox.user_id is not None:
                shared = await Mailbox.get_or_none(organization_id=organization.id, user_id=None, active=True)
            if shared is None:
                raise Conflict(
                    "Queued messages wait on this mailbox and the organization has no active shared mailbox to "
                    "take them; add one, or delete the mailbox once they are sent.",
                    ("id",),
                )
            await waiting.update(mailbox_id=shared.id, from_address=shared.address)
        await identities.release_mailbox(organization=organization, address=mailbox.address)
        await mailbox.delete()
    return mailbox_id


async def senders(keys: Collection[tuple[int, int | None]]) -> dict[tuple[int, int | None], Mailbox]:
    """The mailbox each (organization, prospect owner) sends from: the owner's active
    mailbox, else the organization's active shared one; a key with neither is left
    out (the organization's emailFrom). One query, however many keys."""
    if not keys:
        return {}
    organization_ids = {o for o, _ in keys}
    owner_ids = {u for _, u in keys if u is not None}
    query = Mailbox.filter(organization_id__in=organization_ids, active=True)
    query = (
        query.filter(Q(user_id__isnull=True) | Q(user_id__in=owner_ids)) if owner_ids else query.filter(user_id=None)
    )
    rows = await query
    own: dict[tuple[int, int | None], Mailbox] = {(m.organization_id, m.user_id): m for m in rows if m.user_id}
    shared = {m.organization_id: m for m in rows if m.user_id is None}
    found = {}
    for organization_id, owner_id in keys:
        mailbox = own.get((organization_id, owner_id)) or shared.get(organization_id)
        if mailbox is not None:
            found[(organization_id, owner_id)] = mailbox
    return found


async def sender_for(organization_id: int, owner_id: int | None) -> Mailbox | None:
    """``senders`` for one prospect owner."""
    return (await senders([(organization_id, owner_id)])).get((organization_id, owner_id))
