"""The suppression list (R12.1): addresses an organization must never contact on a
channel, whichever prospect record carries them.

Invariants: an entry is keyed by organization, channel, normalized address (the
lower-cased email, the E.164 number) and cause; recording one that exists keeps
it as it is. Recording entries finishes, in the caller's transaction, the
unfinished enrollments they block of every prospect carrying the address, so a
second record with the same address stops too. Only ``remove_entry`` takes an entry
away, but for the OPTED_OUT entry an SMS START withdraws (``withdraw_opt_out``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app import validation
from app.accounts.actor import Actor
from app.accounts.models import Organization
from app.automation import rules  # a cycle, used at call time: rules run operations that suppress addresses
from app.errors import DomainError, Field, Forbidden, InvalidInput, NotFound
from app.events import log
from app.prospects.events import suppression_removed
from app.prospects.models import ChangeCause, Channel, Prospect, Suppression, SuppressionReason
from app.sequences import lifecycle
from app.sequences.state import Event
from app.workflows.chain import Chain

# What a new entry's cause does to the enrollments it blocks (R6.4).
EVENTS = {
    SuppressionReason.UNSUBSCRIBED: Event.UNSUBSCRIBE,
    SuppressionReason.HARD_BOUNCE: Event.HARD_BOUNCE,
}


class Entry(NamedTuple):
    channel: Channel
    address: str
    reason: SuppressionReason


class Addressed(Protocol):
    """What a prospect's addresses are read from: a Prospect, or a row of its columns."""

    email: str | None
    phone: str | None


def address_of(prospect: Addressed, channel: Channel) -> str | None:
    """The prospect's normalized address for ``channel``: its email lower-cased, or
    its phone (stored E.164) for SMS and calls."""
    return key(channel, prospect.email if channel is Channel.EMAIL else prospect.phone)


def key(channel: Channel, address: str | None) -> str | None:
    """An address as the list keys it (a stored email lower-cased; a stored phone is E.164 already)."""
    if not address:
        return None
    return address.lower() if channel is Channel.EMAIL else address


def entries_for(prospect: Addressed, channels: Iterable[Channel], reason: SuppressionReason) -> list[Entry]:
    """Entries of ``reason`` for the prospect's addresses on ``channels`` (those it has)."""
    return [Entry(c, address, reason) for c in channels if (address := address_of(prospect, c)) is not None]


async def record(
    organization_id: int,
    entries: Sequence[Entry],
    *,
    actor: Actor,
    cause: ChangeCause,
    prospect_id: int | None = None,
    created_by_id: int | None = None,
    enrollment_reason: str,
    chain: Chain | None = None,
) -> list[Suppression]:
    """Adds the entries that are new (an existing one is kept as it is), then
    finishes the unfinished enrollments they block of every prospect carrying an
    address among ``entries`` (the event each cause sets: UNSUBSCRIBE, HARD_BOUNCE,
    else OPT_OUT), with ``enrollment_reason`` on their stage changes. Returns the
    entries, new or kept, in the order given. An email address is stored lower-cased
    whatever its case as given (the list's key, which every read uses)."""
    given = entries
    entries = [e._replace(address=key(e.channel, e.address) or e.address) for e in given]
    if not entries:
        return []
    now = actor.now()
    await Suppression.bulk_create(
        [
            Suppression(
                organization_id=organization_id,
                channel=e.channel,
                address=e.address,
                reason=e.reason,
                prospect_id=prospect_id,
                created_by_id=created_by_id,
                created_at=now,
            )
            for e in entries
        ],
        ignore_conflicts=True,
    )
    found = {
        Entry(s.channel, s.address, s.reason): s
        for s in await Suppression.filter(_matching(organization_id, ((e.channel, e.address) for e in entries)))
    }
    for prospect, blocked in await _carriers(organization_id, entries):
        for entry in blocked:
            moves = await lifecycle.for_prospect(
                prospect.id,
                EVENTS.get(entry.reason, Event.OPT_OUT),
                actor=actor,
                cause=cause,
                reason=enrollment_reason,
                channel=entry.channel,
            )
            await rules.stages_entered(moves, chain=chain)
    return [found[e] for e in entries]


async def withdraw_opt_out(organization_id: int, channel: Channel, address: str | None) -> int:
    """Removes the OPTED_OUT entry of ``address`` on ``channel`` that no person added
    (an SMS START takes back its STOP), leaving a user's opt-out and the entries of
    every other cause (do-not-contact, a bounce, one added by hand) blocking; how
    many were removed (0 or 1)."""
    if not address:
        return 0
    return await Suppression.filter(
        organization_id=organization_id,
        channel=channel,
        address=address,
        reason=SuppressionReason.OPTED_OUT,
        created_by_id=None,
    ).delete()


async def suppressed(organization_id: int, pairs: Iterable[tuple[Channel, str | None]]) -> set[tuple[Channel, str]]:
    """Those of the (channel, normalized address) pairs the organization's list holds (one read)."""
    return {(c, a) for _, c, a in await suppressed_in((organization_id, c, a) for c, a in pairs)}


async def suppressed_in(keys: Iterable[tuple[int, Channel, str | None]]) -> set[tuple[int, Channel, str]]:
    """Those of the (organization, channel, normalized address) keys some list holds,
    in one read of the list's unique index whatever the organizations (the send
    gate's chunk, enrollment's batch)."""
    wanted = {(o, Channel(c), a) for o, c, a in keys if a}
    if not wanted:
        return set()
    by_organization: dict[int, list[tuple[Channel, str]]] = {}
    for o, c, a in wanted:
        by_organization.setdefault(o, []).append((c, a))
    query = Q(*(_matching(o, pairs) for o, pairs in by_organization.items()), join_type="OR")
    rows = await Suppression.filter(query).values_list("organization_id", "channel", "address")
    return {(o, Channel(c), a) for o, c, a in rows} & wanted


async def blocked_channels(prospect: Prospect) -> set[Channel]:
    """Every channel blocked for the prospect, by any cause (``Prospect.blockedChannels``):
    its do-not-contact flag and opt-outs, and entries of the list for its addresses."""
    [blocked] = await blocked_channels_of([prospect])
    return blocked


async def blocked_channels_of(prospects: Sequence[Prospect]) -> list[set[Channel]]:
    """``blocked_channels`` of each prospect, in order, in one read of the list."""
    held = await suppressed_in((p.organization_id, c, address_of(p, c)) for p in prospects for c in Channel)
    return [
        lifecycle.blocked_channels(p) | {c for c in Channel if (p.organization_id, c, address_of(p, c)) in held}
        for p in prospects
    ]


def _matching(organization_id: int, pairs: Iterable[tuple[Channel, str]]) -> Q:
    """The organization's entries of these (channel, address) pairs, any cause: a
    condition on the unique index's leading columns."""
    by_channel: dict[Channel, set[str]] = {}
    for channel, address in pairs:
        by_channel.setdefault(channel, set()).add(address)
    return Q(
        *(Q(organization_id=organization_id, channel=c, address__in=sorted(a)) for c, a in by_channel.items()),
        join_type="OR",
    )


async def _carriers(organization_id: int, entries: Sequence[Entry]) -> list[tuple[Prospect, list[Entry]]]:
    """The organization's prospects carrying an address among ``entries`` (locked, in id
    order so that concurrent writers lock alike), each with the entries that block it."""
    emails = {e.address for e in entries if e.channel is Channel.EMAIL}
    phones = {e.address for e in entries if e.channel is not Channel.EMAIL}
    query = Q(email__in=sorted(emails)) | Q(phone__in=sorted(phones))
    carriers = await Prospect.filter(organization_id=organization_id).filter(query).order_by("id").select_for_update()
    return [
        (p, blocking) for p in carriers if (blocking := [e for e in entries if address_of(p, e.channel) == e.address])
    ]


# ---- the list through the API and the CLI: reading, adding, removing ----

MAX_ADD = 1000
"""Entries one ``add`` takes (``addSuppressions``, a batch of ``suppress import``)."""


class Wanted(NamedTuple):
    """An entry as a person gives it: the address as typed, the reason if any."""

    channel: Channel
    address: str
    reason: SuppressionReason | None = None


@dataclass(frozen=True)
class Added:
    suppressions: list[Suppression]
    """The entries of the valid ones, each once, in the order given (new or kept)."""
    added: int
    """How many of them are new."""
    errors: list[DomainError]
    """The invalid ones, by index under ``entries``."""


def validated(channel: Channel, address: str, region: str | None, field: Field) -> str:
    """``address`` as the list keys it on ``channel``: the email lower-cased, or the
    number in E.164 (national numbers read in ``region``)."""
    if channel is Channel.EMAIL:
        return validation.email(address, field).lower()
    return validation.phone(address, region, field)


async def listed(
    actor: Actor,
    *,
    channel: Channel | None = None,
    address: str | None = None,
    reasons: Sequence[SuppressionReason] | None = None,
) -> QuerySet[Suppression]:
    """The organization's entries a viewer may read (a MANAGER's and an ADMIN's: all;
    an AGENT's: none), narrowed by each filter given. ``address`` is normalized for
    ``channel``, else as an email when it has an @ and as a phone number otherwise;
    a malformed one is INVALID_INPUT on ``address``."""
    query = Suppression.filter(organization_id=actor.organization_id)
    if actor.is_agent:
        query = query.filter(id__in=[])
    if channel is not None:
        query = query.filter(channel=channel)
    if address is not None:
        org = await Organization.get(id=actor.organization_id)
        kind = channel or (Channel.EMAIL if "@" in address else Channel.SMS)
        query = query.filter(address=validated(kind, address, org.phone_region, ("address",)))
    if reasons is not None:
        query = query.filter(reason__in=[r.value for r in reasons])
    return query


async def add(*, actor: Actor, entries: Sequence[Wanted]) -> Added:
    """Adds the valid entries (reason MANUAL when none is given) in one transaction
    through ``record``, which keeps an existing entry as it is and finishes the
    enrollments the new ones block (reason ``suppressed``). MANAGER and ADMIN; at
    most MAX_ADD entries. An invalid address is reported by its index and keeps
    none of the others out."""
    if actor.is_agent:
        raise Forbidden("Only a MANAGER or ADMIN adds to the suppression list.")
    if len(entries) > MAX_ADD:
        raise InvalidInput(f"At most {MAX_ADD} entries per call.", ("entries",))
    org = await Organization.get(id=actor.organization_id)
    valid: list[Entry] = []
    errors: list[DomainError] = []
    for index, wanted in enumerate(entries):
        try:
            address = validated(wanted.channel, wanted.address, org.phone_region, ("entries", index, "address"))
        except DomainError as error:
            errors.append(error)
            continue
        valid.append(Entry(wanted.channel, address, wanted.reason or SuppressionReason.MANUAL))
    unique = list(dict.fromkeys(valid))
    if not unique:
        return Added([], 0, errors)
    async with in_transaction():
        held = {
            Entry(Channel(c), a, SuppressionReason(r))
            for c, a, r in await Suppression.filter(
                _matching(actor.organization_id, ((e.channel, e.address) for e in unique))
            ).values_list("channel", "address", "reason")
        }
        rows = await record(
            actor.organization_id,
            unique,
            actor=actor,
            cause=ChangeCause.USER,
            created_by_id=actor.user_id,
            enrollment_reason="suppressed",
        )
    return Added(rows, len(set(unique) - held), errors)


async def remove_entry(*, actor: Actor, suppression_id: int) -> int:
    """Takes an entry off the list (ADMIN: the person consented again) and records
    SUPPRESSION_REMOVED in the same transaction. Prospects' own opt-out flags stay
    as they are, and so do the address's entries of other causes."""
    actor.require_admin()
    async with in_transaction():
        entry = (
            await Suppression.filter(id=suppression_id, organization_id=actor.organization_id)
            .select_for_update()
            .first()
        )
        if entry is None:
            raise NotFound("Suppression", ("suppression_id",))
        await entry.delete()
        await log.record([suppression_removed(entry, actor.user_id, actor.now())])
    return suppression_id
