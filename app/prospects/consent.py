"""Consent (R3.3, R6): do-not-contact blocks every channel, an opt-out, an
unsubscribe or a hard bounce one. Blocking finishes the unfinished enrollments
it concerns (R6.4); unblocking leaves finished enrollments finished.

Each function runs in the caller's transaction on a prospect row the caller
has locked, and is idempotent.
"""

from __future__ import annotations

from app.accounts.actor import Actor
from app.automation import rules  # a cycle, used at call time: rules run operations that block channels
from app.prospects.models import ChangeCause, Channel, Prospect
from app.prospects.updates import save_fields
from app.sequences import lifecycle
from app.sequences.state import Event
from app.workflows.chain import Chain


async def set_do_not_contact(
    prospect: Prospect, value: bool, *, actor: Actor, cause: ChangeCause, chain: Chain | None = None
) -> None:
    """Blocks (or unblocks) every channel; blocking finishes unfinished enrollments OPTED_OUT."""
    if prospect.do_not_contact == value:
        return
    prospect.do_not_contact = value
    await save_fields(prospect, actor.now(), "do_not_contact")
    if value:
        moves = await lifecycle.for_prospect(
            prospect.id, Event.OPT_OUT, actor=actor, cause=cause, reason="do_not_contact"
        )
        await rules.stages_entered(moves, chain=chain)


async def opt_out(
    prospect: Prospect, channel: Channel, *, actor: Actor, cause: ChangeCause, reason: str = "opted_out"
) -> None:
    """Blocks one channel; finishes OPTED_OUT the unfinished enrollments whose sequence
    uses it, with ``reason`` on their stage changes (an SMS STOP, an email asking to
    be removed)."""
    if channel.value in prospect.opted_out_channels:
        return
    await _block(prospect, channel, actor=actor, cause=cause, event=Event.OPT_OUT, reason=reason)


async def opt_in(prospect: Prospect, channel: Channel, *, actor: Actor) -> None:
    """Unblocks one channel (an SMS START); finished enrollments stay finished."""
    if channel.value in prospect.opted_out_channels:
        prospect.opted_out_channels = [c for c in prospect.opted_out_channels if c != channel.value]
        await save_fields(prospect, actor.now(), "opted_out_channels")


async def unsubscribe(prospect: Prospect, *, actor: Actor, cause: ChangeCause) -> None:
    """The email unsubscribe link (R6.3): blocks EMAIL and finishes UNSUBSCRIBED the
    unfinished enrollments whose sequence sends email."""
    await _block(prospect, Channel.EMAIL, actor=actor, cause=cause, event=Event.UNSUBSCRIBE, reason="unsubscribed")


async def hard_bounce(prospect: Prospect, *, actor: Actor, cause: ChangeCause) -> None:
    """A hard bounce blocks EMAIL (R3.3) and finishes BOUNCED the unfinished
    enrollments whose sequence sends email (R6.4), whichever message bounced."""
    await _block(prospect, Channel.EMAIL, actor=actor, cause=cause, event=Event.HARD_BOUNCE, reason="bounced_hard")


async def _block(
    prospect: Prospect,
    channel: Channel,
    *,
    actor: Actor,
    cause: ChangeCause,
    event: Event,
    reason: str,
) -> None:
    if channel.value not in prospect.opted_out_channels:
        prospect.opted_out_channels = sorted({*prospect.opted_out_channels, channel.value})
        await save_fields(prospect, actor.now(), "opted_out_channels")
    moves = await lifecycle.for_prospect(prospect.id, event, actor=actor, cause=cause, reason=reason, channel=channel)
    await rules.stages_entered(moves)
