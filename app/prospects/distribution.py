"""Distribution (SPEC R11): push to a user or round robin over the active
agents, return, pull from the shared pool, pull from another agent once the
status's max assignment time has passed (``reassignable_at``: counted from the
later of entering the status and being assigned).

Every owner change goes through ``updates.assign_all``: it sets ``assigned_at`` and
appends ASSIGNMENT_CHANGED in the caller's transaction. Concurrent calls never
hand one prospect to two users nor skip an agent: a push takes the organization
row's write lock before reading the rotation; a pull takes its prospects with
FOR UPDATE SKIP LOCKED on Postgres, and under the database's one write lock
(taken first) on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from app.accounts.actor import Actor
from app.accounts.models import Organization, User
from app.errors import DomainError, Forbidden, InvalidInput, NotFound, NotPullable
from app.prospects import rotation, updates
from app.prospects import service as prospects
from app.prospects.models import Prospect
from app.workflows.models import Status, SystemStatus

MAX_PULL = 100


def reassignable_at(prospect: Prospect, status: Status) -> datetime | None:
    """When another agent may pull the prospect from its owner; None: never.

    The status's max assignment time is the time a lead may stay *in this status*
    with its owner (seeds 003/004): it counts from the later of entering the
    status and being assigned, so a lead held for days that has just moved to a
    status has that status's whole time before anyone may take it. The one rule:
    ``reassignableAt``, ``pullProspect`` and anything else that asks use this."""
    if prospect.owner_id is None or prospect.assigned_at is None or status.max_assignment_seconds is None:
        return None
    entered = prospect.status_entered_at
    since = prospect.assigned_at if entered is None else max(prospect.assigned_at, entered)
    return since + timedelta(seconds=status.max_assignment_seconds)


async def _owned(actor: Actor, prospect_ids: Sequence[int]) -> tuple[list[Prospect | None], list[DomainError]]:
    """The viewer's prospects for ``prospect_ids`` in order (None where not found,
    with a NOT_FOUND error under its index), locked for the transaction."""
    found = {p.id: p for p in await prospects.visible(actor).filter(id__in=prospect_ids).select_for_update()}
    rows = [found.get(pk) for pk in prospect_ids]
    errors: list[DomainError] = [
        NotFound("Prospect", ("prospect_ids", index)) for index, row in enumerate(rows) if row is None
    ]
    return rows, errors


def _check_batch(prospect_ids: Sequence[int]) -> None:
    if not prospect_ids or len(prospect_ids) > prospects.MAX_BATCH:
        raise InvalidInput(f"Give from 1 to {prospects.MAX_BATCH} prospect ids.", ("prospect_ids",))


async def assign_prospects(
    *, actor: Actor, prospect_ids: Sequence[int], user_id: int | None
) -> tuple[list[Prospect], list[DomainError]]:
    """Pushes the prospects to ``user_id``, or round robin over the active agents;
    the unknown ids come back as errors by index (MANAGER and ADMIN only)."""
    if actor.is_agent:
        raise Forbidden("Only a MANAGER or ADMIN assigns prospects; an AGENT pulls them.", ("user_id",))
    _check_batch(prospect_ids)
    target = None
    if user_id is not None:
        user = await User.get_or_none(id=user_id, organization_id=actor.organization_id, active=True)
        if user is None:
            raise NotFound("User", ("user_id",))
        target = user.id
    async with in_transaction():
        rows, errors = await _owned(actor, prospect_ids)
        found = [row for row in rows if row is not None]
        owners = [target] * len(found) if target else await rotation.next_in_rotation(actor.organization_id, len(found))
        await updates.assign_all(list(zip(found, owners, strict=True)), actor=actor)
    return found, errors


async def unassign_prospects(*, actor: Actor, prospect_ids: Sequence[int]) -> tuple[list[Prospect], list[DomainError]]:
    """Returns the prospects to the pool; an AGENT only its own (it sees no others)."""
    _check_batch(prospect_ids)
    async with in_transaction():
        rows, errors = await _owned(actor, prospect_ids)
        found = [row for row in rows if row is not None]
        await updates.assign_all([(prospect, None) for prospect in found], actor=actor)
    return found, errors


async def pull_prospects(*, actor: Actor, count: int, system_statuses: Sequence[SystemStatus] | None) -> list[Prospect]:
    """Gives the viewer the next ``count`` unassigned prospects whose pull delay
    has passed, oldest first, of the given system statuses if any."""
    if actor.user_id is None:
        raise Forbidden("Only a user pulls prospects.")
    if not 1 <= count <= MAX_PULL:
        raise InvalidInput(f"count must be from 1 to {MAX_PULL}.", ("count",))
    now = actor.now()
    async with in_transaction() as connection:
        postgres = connection.capabilities.dialect == "postgres"
        if not postgres:
            await rotation.lock_organization(actor.organization_id)  # SQLite: one puller at a time
        query = Prospect.filter(organization_id=actor.organization_id, owner_id=None).filter(
            Q(pullable_after=None) | Q(pullable_after__lte=now)
        )
        if system_statuses:
            query = query.filter(status__system_status__in=[s.value for s in system_statuses])
        taken = await query.order_by("created_at", "id").limit(count).select_for_update(skip_locked=True)
        await updates.assign_all([(prospect, actor.user_id) for prospect in taken], actor=actor)
    return list(taken)


async def pull_prospect(*, actor: Actor, prospect_id: int) -> Prospect:
    """Takes one prospect: from the pool once its pull delay has passed, or from
    another user once the organization allows it and its reassignableAt has passed."""
    if actor.user_id is None:
        raise Forbidden("Only a user pulls prospects.")
    now = actor.now()
    field = ("prospect_id",)
    async with in_transaction():
        org = await Organization.get(id=actor.organization_id)
        prospect = (
            await Prospect.filter(id=prospect_id, organization_id=actor.organization_id).select_for_update().first()
        )
        if prospect is None:
            raise NotFound("Prospect", field)
        if prospect.owner_id == actor.user_id:
            return prospect
        if prospect.owner_id is None:
            if prospect.pullable_after is not None and prospect.pullable_after > now:
                raise NotPullable(f"It may be pulled from {prospect.pullable_after.isoformat()}.", field)
        else:
            if not org.pull_from_other_agents:
                raise NotPullable("The organization does not allow pulling from other agents.", field)
            status = await Status.get(id=prospect.status_id)
            at = reassignable_at(prospect, status)
            if at is None:
                raise NotPullable(
                    f"Its status {status.name!r} has no max assignment time: it stays with its owner.", field
                )
            if at > now:
                raise NotPullable(f"It may be pulled from its owner from {at.isoformat()}.", field)
        await updates.assign(prospect, actor.user_id, actor=actor)
    return prospect


DISTRIBUTE_BATCH = 500


async def distribute(
    *,
    actor: Actor,
    user_id: int | None,
    status_names: Sequence[str] | None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Assigns every unassigned prospect (of the named statuses, if any) to the
    user, or round robin over the active agents, in batches; calls ``progress``
    with (done, total) after each. How many it assigned."""
    query = Prospect.filter(organization_id=actor.organization_id, owner_id=None)
    if status_names:
        statuses = await Status.filter(
            organization_id=actor.organization_id, name__in=list(status_names), deleted_at=None
        ).values_list("name", "id")
        unknown = sorted(set(status_names) - {name for name, _ in statuses})
        if unknown:
            raise NotFound(f"Status {', '.join(map(repr, unknown))}", ("status_names",))
        query = query.filter(status_id__in=[pk for _, pk in statuses])
    total, done, after = await query.count(), 0, 0
    while True:
        rows = await query.filter(id__gt=after).order_by("id").limit(DISTRIBUTE_BATCH).only("id")
        batch = [row.id for row in rows]
        if not batch:
            return done
        assigned, _ = await assign_prospects(actor=actor, prospect_ids=batch, user_id=user_id)
        done, after = done + len(assigned), batch[-1]
        if progress is not None:
            progress(done, total)
