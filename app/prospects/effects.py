"""Status changes (R2): moving prospects to a status records the changes through
the one writer (``app.prospects.statuses``), then applies the enrollment outcome
the status sets and runs its STATUS_ENTERED rules.

Runs inside the caller's transaction, on prospect rows the caller has locked.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.accounts.actor import Actor
from app.automation import rules  # a cycle, used at call time: rules run operations that change statuses
from app.prospects import statuses
from app.prospects.models import ChangeCause, Prospect
from app.sequences import lifecycle
from app.sequences.state import Event
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
    moved, what entering the status sets off: its enrollment outcome (R2.5), then
    its STATUS_ENTERED rules. A prospect at the status already changes nothing."""
    for prospect in await statuses.change(prospects, status.id, actor=actor, cause=cause, note=note):
        if status.enrollment_outcome is not None:
            finished = await lifecycle.for_prospect(
                prospect.id,
                Event.FINISH,
                actor=actor,
                cause=cause,
                reason="status_outcome",
                outcome=status.enrollment_outcome,
            )
            await rules.stages_entered(finished, chain=chain)
        await rules.fire_rules(TriggerEvent.STATUS_ENTERED, prospect, actor=actor, chain=chain, status_id=status.id)
