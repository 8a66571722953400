"""Status changes (R2): moving prospects to a status records the changes through
the one writer (``app.prospects.statuses``), then applies the enrollment outcome
the status sets (a consent outcome set by hand records the consent too, R12.1)
and runs its STATUS_ENTERED rules.

Runs inside the caller's transaction, on prospect rows the caller has locked.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.accounts.actor import Actor
from app.automation import rules  # a cycle, used at call time: rules run operations that change statuses
from app.prospects import consent, statuses
from app.prospects.models import ChangeCause, Channel, Prospect
from app.sequences import lifecycle
from app.sequences.stages import Move
from app.sequences.state import Event, Stage
from app.workflows.chain import Chain
from app.workflows.models import Status, TriggerEvent


async def change_status(
    prospects: Sequence[Prospect],
    status: Status,
    *,
    actor: Actor,
    cause: ChangeCause,
    chain: Chain,
    note: str | None = None,
) -> None:
    """Moves locked prospects to ``status`` (any workflow), then, for each that
    moved, what entering the status sets off: its enrollment outcome (R2.5,
    ``enter_outcome``), the consent a consent outcome stands for when set by hand
    (``BY_HAND``), then its STATUS_ENTERED rules. A prospect at the status already
    changes nothing. A status set by an ENROLLMENT_STAGE_CHANGED rule
    (``chain.follows_stage``) mirrors the stage change that fired it: its outcome
    moves none of the prospect's other enrollments (pausing one sequence does not
    pause the others, removing it does not finish them), and cannot loop back."""
    for prospect in await statuses.change(prospects, status.id, actor=actor, cause=cause, note=note):
        outcome = status.enrollment_outcome
        if outcome is not None and not chain.follows_stage:
            moves = await enter_outcome(prospect, outcome, actor=actor, cause=cause)
            await rules.stages_entered(moves, chain=chain)
            if cause in BY_HAND:
                await record_consent(prospect, outcome, actor=actor, cause=cause, chain=chain)
        await rules.fire_rules(TriggerEvent.STATUS_ENTERED, prospect, actor=actor, chain=chain, status_id=status.id)


async def enter_outcome(prospect: Prospect, outcome: Stage, *, actor: Actor, cause: ChangeCause) -> list[Move]:
    """What a status's enrollment outcome does to the prospect's enrollments:
    PAUSED pauses the running ones, STARTED starts or resumes the waiting ones
    (those of an active sequence), any other finishes the unfinished ones so."""
    reason = "status_outcome"
    if outcome is Stage.PAUSED:
        return await lifecycle.for_prospect(prospect.id, Event.PAUSE, actor=actor, cause=cause, reason=reason)
    if outcome is Stage.STARTED:
        return await lifecycle.start_or_resume(prospect.id, actor=actor, cause=cause, reason=reason)
    return await lifecycle.for_prospect(
        prospect.id, Event.FINISH, actor=actor, cause=cause, reason=reason, outcome=outcome
    )


BY_HAND = frozenset({ChangeCause.USER, ChangeCause.ACTION})
"""The causes of a status set by a person (directly, or by logging an action). A
rule entering a consent status (AUTOMATION) mirrors a stage that a consent event
recorded already: recording it again would widen an SMS STOP to email."""


CONSENT_OUTCOMES = (Stage.OPTED_OUT, Stage.UNSUBSCRIBED, Stage.BOUNCED)
"""The enrollment outcomes that stand for a person's consent (``record_consent``)."""


async def record_consent(prospect: Prospect, outcome: Stage, *, actor: Actor, cause: ChangeCause, chain: Chain) -> None:
    """The consent a status's outcome stands for, through ``consent`` so that the
    prospect's flags and the suppression list agree: OPTED_OUT is an opt-out of
    EMAIL and SMS (a person asking to hear no more), UNSUBSCRIBED an unsubscribe
    from EMAIL, BOUNCED a hard bounce of the email address."""
    if outcome is Stage.OPTED_OUT:
        for channel in (Channel.EMAIL, Channel.SMS):
            await consent.opt_out(prospect, channel, actor=actor, cause=cause, chain=chain)
    elif outcome is Stage.UNSUBSCRIBED:
        await consent.unsubscribe(prospect, actor=actor, cause=cause, chain=chain)
    elif outcome is Stage.BOUNCED:
        await consent.hard_bounce(prospect, actor=actor, cause=cause, chain=chain)
