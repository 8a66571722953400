"""Consent (R3.3, R6, R12.1): do-not-contact blocks every channel, an opt-out, an
unsubscribe or a hard bounce one. Every opt-out path goes through here: the
prospect's own flags, and the organization's suppression list for its addresses
(``app.prospects.suppressions``), so a second record carrying the address is
blocked too. Blocking finishes the unfinished enrollments it concerns, of this
prospect and of every other carrying the address (R6.4); unblocking leaves
finished enrollments finished.

Each function runs in the caller's transaction on a prospect row the caller
has locked, and is idempotent.
"""

from __future__ import annotations

from app.accounts.actor import Actor
from app.automation import rules  # a cycle, used at call time: rules run operations that block channels
from app.prospects import suppressions
from app.prospects.models import ChangeCause, Channel, Prospect, SuppressionReason
from app.prospects.updates import save_fields
from app.sequences import lifecycle
from app.sequences.state import Event
from app.workflows.chain import Chain


async def set_do_not_contact(
    prospect: Prospect, value: bool, *, actor: Actor, cause: ChangeCause, chain: Chain | None = None
) -> None:
    """Blocks every channel: finishes unfinished enrollments OPTED_OUT and suppresses
    the prospect's addresses (DO_NOT_CONTACT of EMAIL, SMS and PHONE). Unblocking
    clears the flag only: the entries stay until an ADMIN removes them, since the
    person's wish follows the address, not this record."""
    if not value:
        if prospect.do_not_contact:
            prospect.do_not_contact = False
            await save_fields(prospect, actor.now(), "do_not_contact")
        return
    if not prospect.do_not_contact:
        prospect.do_not_contact = True
        await save_fields(prospect, actor.now(), "do_not_contact")
    moves = await lifecycle.for_prospect(prospect.id, Event.OPT_OUT, actor=actor, cause=cause, reason="do_not_contact")
    await rules.stages_entered(moves, chain=chain)
    await _suppress(prospect, list(Channel), SuppressionReason.DO_NOT_CONTACT, actor, cause, "do_not_contact", chain)


async def opt_out(
    prospect: Prospect,
    channel: Channel,
    *,
    actor: Actor,
    cause: ChangeCause,
    reason: str = "opted_out",
    chain: Chain | None = None,
) -> None:
    """Blocks one channel and suppresses the prospect's address on it (OPTED_OUT);
    finishes OPTED_OUT the unfinished enrollments whose sequence uses it, with
    ``reason`` on their stage changes (an SMS STOP, an email asking to be removed)."""
    await _block(
        prospect,
        channel,
        actor=actor,
        cause=cause,
        event=Event.OPT_OUT,
        reason=reason,
        suppression=SuppressionReason.OPTED_OUT,
        chain=chain,
    )


async def opt_in(prospect: Prospect, channel: Channel, *, actor: Actor) -> None:
    """Unblocks one channel (an SMS START): the prospect's flag, and the OPTED_OUT
    entry of its address, which a STOP made; entries of other causes (do-not-contact,
    a bounce, one added by hand) stay. Finished enrollments stay finished."""
    if channel.value in prospect.opted_out_channels:
        prospect.opted_out_channels = [c for c in prospect.opted_out_channels if c != channel.value]
        await save_fields(prospect, actor.now(), "opted_out_channels")
    await suppressions.withdraw_opt_out(prospect.organization_id, channel, suppressions.address_of(prospect, channel))


async def unsubscribe(
    prospect: Prospect, *, actor: Actor, cause: ChangeCause, chain: Chain | None = None, also: str | None = None
) -> None:
    """The email unsubscribe link (R6.3): blocks EMAIL, suppresses the address
    (UNSUBSCRIBED) and ``also``, the one the email went to when the prospect's has
    changed since, notes when (``unsubscribed_at``, the first time) and finishes
    UNSUBSCRIBED the unfinished enrollments whose sequence sends email."""
    if prospect.unsubscribed_at is None:
        prospect.unsubscribed_at = now = actor.now()
        await save_fields(prospect, now, "unsubscribed_at")
    await _block(
        prospect,
        Channel.EMAIL,
        actor=actor,
        cause=cause,
        event=Event.UNSUBSCRIBE,
        reason="unsubscribed",
        suppression=SuppressionReason.UNSUBSCRIBED,
        chain=chain,
        also=also,
    )


async def hard_bounce(
    prospect: Prospect, *, actor: Actor, cause: ChangeCause, chain: Chain | None = None, also: str | None = None
) -> None:
    """A hard bounce blocks EMAIL (R3.3) and suppresses the address (HARD_BOUNCE) and
    ``also``, the one that bounced when the prospect's has changed since; finishes
    BOUNCED the unfinished enrollments whose sequence sends email (R6.4), whichever
    message bounced."""
    await _block(
        prospect,
        Channel.EMAIL,
        actor=actor,
        cause=cause,
        event=Event.HARD_BOUNCE,
        reason="bounced_hard",
        suppression=SuppressionReason.HARD_BOUNCE,
        chain=chain,
        also=also,
    )


async def _block(
    prospect: Prospect,
    channel: Channel,
    *,
    actor: Actor,
    cause: ChangeCause,
    event: Event,
    reason: str,
    suppression: SuppressionReason,
    chain: Chain | None,
    also: str | None = None,
) -> None:
    """The flag, this prospect's enrollments (found by id: its address may be
    missing, or stored unnormalized), then the list, which finishes those of the
    other records carrying the address. Done again when the flag is set already:
    the address may be new since."""
    if channel.value not in prospect.opted_out_channels:
        prospect.opted_out_channels = sorted({*prospect.opted_out_channels, channel.value})
        await save_fields(prospect, actor.now(), "opted_out_channels")
    moves = await lifecycle.for_prospect(prospect.id, event, actor=actor, cause=cause, reason=reason, channel=channel)
    await rules.stages_entered(moves, chain=chain)
    await _suppress(prospect, [channel], suppression, actor, cause, reason, chain, also=also)


async def _suppress(
    prospect: Prospect,
    channels: list[Channel],
    reason: SuppressionReason,
    actor: Actor,
    cause: ChangeCause,
    enrollment_reason: str,
    chain: Chain | None,
    also: str | None = None,
) -> None:
    """Suppresses the prospect's addresses on ``channels``, and ``also`` on the first."""
    entries = suppressions.entries_for(prospect, channels, reason)
    if (extra := suppressions.key(channels[0], also)) is not None:
        entries.append(suppressions.Entry(channels[0], extra, reason))
    await suppressions.record(
        prospect.organization_id,
        list(dict.fromkeys(entries)),
        actor=actor,
        cause=cause,
        prospect_id=prospect.id,
        created_by_id=actor.user_id if cause is ChangeCause.USER else None,
        enrollment_reason=enrollment_reason,
        chain=chain,
    )
