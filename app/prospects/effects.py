"""Status changes (R2): moving a prospect to a status records the change, its
event, the enrollment outcome the status sets, and runs STATUS_ENTERED rules.

Runs inside the caller's transaction, on a prospect row the caller has locked.
"""

from __future__ import annotations

from app.accounts.actor import Actor
from app.automation import rules  # a cycle, used at call time: rules run operations that change statuses
from app.events import log
from app.prospects.events import status_changed
from app.prospects.models import ChangeCause, Prospect, StatusChange
from app.sequences import lifecycle
from app.sequences.state import Event
from app.workflows.chain import Chain
from app.workflows.models import Status, TriggerEvent


async def change_status(
    prospect: Prospect,
    status: Status,
    *,
    actor: Actor,
    cause: ChangeCause,
    chain: Chain,
    note: str | None = None,
) -> None:
    """Moves the prospect to ``status`` (any workflow), records the change and
    fires STATUS_ENTERED rules. Moving to the current status changes nothing."""
    if prospect.status_id == status.id:
        return
    now = actor.now()
    change = await StatusChange.create(
        organization_id=prospect.organization_id,
        prospect_id=prospect.id,
        from_status_id=prospect.status_id,
        to_status_id=status.id,
        cause=cause,
        actor_id=actor.user_id,
        note=note,
        at=now,
    )
    await log.record([status_changed(change)])
    prospect.status_id = status.id
    prospect.updated_at = now
    await prospect.save(update_fields=["status_id", "updated_at"])
    if status.enrollment_outcome is not None:
        await lifecycle.for_prospect(
            prospect.id,
            Event.FINISH,
            actor=actor,
            cause=cause,
            reason="status_outcome",
            outcome=status.enrollment_outcome,
            chain=chain,
        )
    await rules.fire_rules(TriggerEvent.STATUS_ENTERED, prospect, actor=actor, chain=chain, status_id=status.id)
