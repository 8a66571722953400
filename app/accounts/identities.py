"""Sending identities (R15): the SMS number, the sender address and the mailbox
addresses an organization sends from, each held by one organization.

Invariants: an identity is compared in its normalized form (E.164 for a number;
the bare address, lower-cased, for an email address however it is written), and
a unique index on that form is the only judge of a claim, so two organizations
claiming one identity at the same moment get one claim and one CONFLICT. Inbound
traffic finds the organizations it was sent to by one indexed lookup of the
identities it names, never by guessing; an identity no organization holds routes
nowhere.

An address that is both the organization's emailFrom and one of its mailboxes'
is one row (the index allows no second), of kind MAILBOX while the mailbox holds
it: setting emailFrom to it claims nothing more, and the mailbox's deletion
hands the row back to emailFrom (``release_mailbox``).
"""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import parseaddr

from tortoise.exceptions import IntegrityError

from app import validation
from app.accounts.models import IdentityKind, Organization, SendingIdentity
from app.errors import Conflict, Field, InvalidInput


def email_key(address: str) -> str | None:
    """The identity of a sender address (bare, or ``Name <address>``); None if it is none."""
    try:
        return validation.email(parseaddr(address)[1], ()).lower()
    except InvalidInput:
        return None


def phone_key(number: str) -> str | None:
    """The identity of a number given in international form (as Twilio gives ``To``);
    None for anything else: a national number could be another country's."""
    try:
        return validation.phone(number, None, ())
    except InvalidInput:
        return None


def refuse_own_domain(address: str, *, own_domain: str, field: Field) -> None:
    """INVALID_INPUT naming ``field`` for a sender address at Leadline's own mail
    domain (Settings.sender_domain): it sends as the default sender of every
    organization without an address, so whoever held the domain's addresses would
    receive the replies to all of them. Only that domain: its parent and its
    subdomains may be an organization's own (leadline.acme.com serving sales@acme.com)."""
    key, domain = email_key(address), email_key(f"no-reply@{own_domain}")
    if key is not None and domain is not None and key.rpartition("@")[2] == domain.rpartition("@")[2]:
        raise InvalidInput(
            f"Addresses at {own_domain} are Leadline's own (organizations without a sender address send "
            f"as no-reply@{own_domain}); use an address at your organization's domain.",
            field,
        )


async def claim(*, organization_id: int, kind: IdentityKind, address: str | None, field: Field) -> None:
    """Makes ``address`` (already validated) the organization's identity of ``kind``,
    giving up the one it held (None: it keeps none). Runs in the caller's transaction,
    the organization locked; raises CONFLICT naming ``field`` when another
    organization holds the identity, and the caller's transaction rolls back."""
    key = None if address is None else (email_key(address) if kind is IdentityKind.EMAIL_FROM else phone_key(address))
    assert (key is None) == (address is None), "a validated address is an identity"
    held = await SendingIdentity.filter(organization_id=organization_id, kind=kind).first()
    if held is not None and held.address == key:
        return
    if held is not None:
        await held.delete()
    if key is None:
        return
    if await SendingIdentity.exists(organization_id=organization_id, address=key, kind=IdentityKind.MAILBOX):
        return  # one of its mailboxes' addresses: already its own
    try:
        await SendingIdentity.create(organization_id=organization_id, kind=kind, address=key)
    except IntegrityError:
        what = "number" if kind is IdentityKind.SMS_FROM else "address"
        raise Conflict(f"Another organization already sends from this {what}.", field) from None


async def claim_mailbox(*, organization_id: int, address: str, field: Field) -> None:
    """Makes a mailbox's ``address`` (validated, lower-cased) the organization's:
    CONFLICT naming ``field`` when another organization holds it (as emailFrom or
    a mailbox, decided by the unique index, also under a race); its own emailFrom's
    row becomes the mailbox's. Runs in the caller's transaction, the organization locked."""
    key = email_key(address)
    assert key is not None, "a validated address is an identity"
    held = await SendingIdentity.get_or_none(address=key)
    if held is not None and held.organization_id == organization_id:
        if held.kind is not IdentityKind.MAILBOX:
            await SendingIdentity.filter(id=held.id).update(kind=IdentityKind.MAILBOX)
        return
    if held is None:
        try:
            await SendingIdentity.create(organization_id=organization_id, kind=IdentityKind.MAILBOX, address=key)
            return
        except IntegrityError:  # claimed by another organization since: the caller's transaction rolls back
            pass
    raise Conflict("Another organization already sends from this address.", field)


async def release_mailbox(*, organization: Organization, address: str) -> None:
    """A mailbox's address no longer held by it: its row goes, or stays the
    organization's emailFrom when the address is that too. In the caller's
    transaction, the organization locked."""
    key = email_key(address)
    mine = SendingIdentity.filter(organization_id=organization.id, address=key, kind=IdentityKind.MAILBOX)
    if organization.email_from is not None and email_key(organization.email_from) == key:
        await mine.update(kind=IdentityKind.EMAIL_FROM)
    else:
        await mine.delete()


async def sms_holder(number: str) -> Organization | None:
    """The organization that sends SMS from ``number``."""
    key = phone_key(number)
    if key is None:
        return None
    held = await SendingIdentity.get_or_none(address=key, kind=IdentityKind.SMS_FROM).select_related("organization")
    return held.organization if held is not None else None


async def email_holders(keys: Sequence[str]) -> list[int]:
    """The ids of the organizations holding these sender addresses (emailFrom or a
    mailbox's, each an ``email_key``), in the order the addresses come."""
    if not keys:
        return []
    held = {
        row.address: row.organization_id
        for row in await SendingIdentity.filter(
            address__in=list(keys), kind__in=[IdentityKind.EMAIL_FROM, IdentityKind.MAILBOX]
        )
    }
    return list(dict.fromkeys(held[key] for key in keys if key in held))
