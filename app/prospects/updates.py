"""Writing a prospect's own fields with their events: PROSPECT_UPDATED names the
fields saved, ASSIGNMENT_CHANGED an owner change. Both run in the caller's
transaction, on rows the caller has locked."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from app.accounts.actor import Actor
from app.events import log
from app.events.models import EventType
from app.prospects.events import api_name, assignment_changed, prospect_event
from app.prospects.models import Prospect


async def save_fields(prospect: Prospect, now: datetime, *fields: str) -> None:
    """Saves changed fields, with a PROSPECT_UPDATED event that names them (an
    assignment has its own event, written by ``assign_all``)."""
    prospect.updated_at = now
    await prospect.save(update_fields=[*fields, "updated_at"])
    changed = sorted(api_name(name) for name in fields)
    event = prospect_event(EventType.PROSPECT_UPDATED, prospect.organization_id, prospect.id, now, fields=changed)
    await log.record([event])


async def assign(prospect: Prospect, user_id: int | None, *, actor: Actor) -> None:
    """Gives the prospect to ``user_id`` (None: unassigned); the assignment clock restarts."""
    await assign_all([(prospect, user_id)], actor=actor)


async def assign_all(assignments: Sequence[tuple[Prospect, int | None]], *, actor: Actor) -> None:
    """``assign`` for many prospects: one UPDATE per new owner and one INSERT of
    their ASSIGNMENT_CHANGED events, however many prospects."""
    now = actor.now()
    events, by_owner = [], defaultdict(list)
    for prospect, user_id in assignments:
        if prospect.owner_id == user_id:
            continue
        events.append(assignment_changed(prospect.organization_id, prospect.id, now, prospect.owner_id, user_id))
        prospect.owner_id, prospect.updated_at = user_id, now
        prospect.assigned_at = now if user_id is not None else None
        by_owner[user_id].append(prospect.id)
    for user_id, prospect_ids in by_owner.items():
        await Prospect.filter(id__in=prospect_ids).update(
            owner_id=user_id, assigned_at=now if user_id is not None else None, updated_at=now
        )
    await log.record(events)
