"""Reading the event log: which events a viewer may see."""

from __future__ import annotations

from collections.abc import Sequence

from tortoise.queryset import QuerySet

from app.accounts.actor import Actor
from app.events.models import Event, EventType
from app.prospects import service as prospects


def visible(actor: Actor) -> QuerySet[Event]:
    """The numbered events the viewer may read: an AGENT only those of prospects it
    may work; managers and admins every one (an erased prospect's too, ids only)."""
    return prospects.of_visible(actor, Event.filter(organization_id=actor.organization_id, seq__not_isnull=True))


def events(
    actor: Actor, *, types: Sequence[EventType] | None = None, prospect_ids: Sequence[int] | None = None
) -> QuerySet[Event]:
    """The events the viewer may read, narrowed to the types and prospects given."""
    query = visible(actor)
    if types is not None:
        query = query.filter(type__in=[t.value for t in types])
    if prospect_ids is not None:
        query = query.filter(prospect_id__in=prospect_ids)
    return query


async def may_see(actor: Actor, event: Event) -> bool:
    """The rule of ``visible`` for one event already in hand (a live one)."""
    if event.organization_id != actor.organization_id:
        return False
    if not actor.is_agent:
        return True
    return event.prospect_id is not None and await prospects.visible(actor).filter(id=event.prospect_id).exists()


Audience = tuple[int, str, int | None]


def audience(actor: Actor) -> Audience:
    """What decides everything a viewer may read through a subscription: two
    viewers with the same audience are shown the same events and the same fields,
    so a live event executed for one may be written to both (app.events.fanout).

    Sufficient because every read rule keys on these alone: the organization
    scopes every query and DataLoader; an AGENT is kept to its own and unassigned
    prospects (``app.prospects.service.visible``: events, enrollments, sequence
    counts, tasks), to its own mailboxes, and nothing else reads the viewer's user
    id; MANAGER and ADMIN read alike, but the role is kept whole so that a rule
    told apart by role later cannot leak. A prospect moved to another owner needs
    no key of its own: the shared stream checks each event against the audience's
    AGENT as it is then, as a stream of one did. The token is not in it: revoked
    tokens end their connections (app.accounts.sessions)."""
    return (actor.organization_id, actor.role.value, actor.user_id if actor.is_agent else None)
