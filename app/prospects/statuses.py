"""The one writer of status changes (SPEC R2.5): a prospect's StatusChange, its
status with the time it entered it (``status_entered_at``, where a status's max
assignment time counts from) and its STATUS_CHANGED event.

Setting a status by hand or by an operation, deleting a status or workflow
whose prospects move, and creating prospects all write through ``change``,
for one prospect or many, in the caller's transaction. It runs no automation:
the caller runs what entering a status sets off (the enrollment outcome, the
STATUS_ENTERED rules) after, for the prospects it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from app import bulk
from app.accounts.actor import Actor
from app.events import log
from app.prospects.events import status_changed
from app.prospects.models import ChangeCause, Prospect, StatusChange


async def change(
    prospects: Sequence[Prospect],
    status_id: int,
    *,
    actor: Actor,
    cause: ChangeCause,
    note: str | None = None,
    created: bool = False,
) -> list[Prospect]:
    """Moves locked prospects to the status ``status_id``: one INSERT of their
    StatusChanges, one UPDATE of their rows and one INSERT of their STATUS_CHANGED
    events, whatever their number. The prospects that moved, updated in place; one
    at the status already changes nothing.

    ``created``: the prospects were just inserted at ``status_id``; each gets its
    first StatusChange, from no status, and no event (their PROSPECT_CREATED
    carries the status); their rows, inserted with ``entered_values(now)``, are
    not written again."""
    now = actor.now()
    moved = list(prospects) if created else [p for p in prospects if p.status_id != status_id]
    changes = [
        StatusChange(
            organization_id=prospect.organization_id,
            prospect_id=prospect.id,
            from_status_id=None if created else prospect.status_id,
            to_status_id=status_id,
            cause=cause,
            actor_id=actor.user_id,
            note=note,
            at=now,
        )
        for prospect in moved
    ]
    await bulk.insert_returning_ids(changes)
    if created or not moved:
        return moved
    values = {"status_id": status_id, **entered_values(now), "updated_at": now}
    await bulk.compare_and_set(Prospect, [prospect.id for prospect in moved], expect={}, values=values)
    for prospect in moved:
        prospect.status_id, prospect.status_entered_at, prospect.updated_at = status_id, now, now
    await log.record(status_changed(change) for change in changes)
    return moved


def entered_values(now: datetime) -> dict[str, datetime]:
    """The columns a prospect entering a status at ``now`` gets besides its
    ``status_id``: the insert of new prospects writes them too."""
    return {"status_entered_at": now}
