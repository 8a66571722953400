"""Prospects: creation (one, many), edits, status changes, activities, do-not-contact,
erasure and tasks.

Invariants: every status change writes a StatusChange (creation too, from
null); an AGENT sees and works only its own and unassigned prospects, and
anything else is NOT_FOUND to it; a service either completes or raises a
DomainError with nothing changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from tortoise import connections
from tortoise.expressions import Q, Subquery
from tortoise.models import Model
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app import bulk, ids
from app.accounts.actor import Actor
from app.accounts.models import Organization, User
from app.automation import operations, rules
from app.errors import ActionNotAvailable, DomainError, Field, Forbidden, InvalidInput, NotFound
from app.events import log
from app.events.models import EventType
from app.prospects import consent, duplicates, effects, fields, statuses
from app.prospects.events import api_name, assignment_changed, prospect_event, task_event
from app.prospects.models import Activity, ChangeCause, Channel, Prospect, StatusChange, Task
from app.sequences import scheduler
from app.workflows import availability
from app.workflows import service as workflows
from app.workflows.chain import Chain
from app.workflows.models import Action, Interaction, Status, TriggerEvent

MAX_BATCH = 1000

M = TypeVar("M", bound=Model)


def visible(actor: Actor) -> QuerySet[Prospect]:
    """The prospects the actor may read and work."""
    query = Prospect.filter(organization_id=actor.organization_id)
    if actor.is_agent:
        query = query.filter(Q(owner_id=actor.user_id) | Q(owner_id=None))
    return query


def of_visible(actor: Actor, query: QuerySet[M]) -> QuerySet[M]:
    """``query``, of rows that each belong to a prospect (``prospect_id``), kept to
    those of the prospects the actor may read and work."""
    if not actor.is_agent:
        return query
    return query.filter(prospect_id__in=Subquery(visible(actor).values("id")))


async def get_prospect(actor: Actor, prospect_id: int, field: Field, *, lock: bool = False) -> Prospect:
    query = visible(actor).filter(id=prospect_id)
    if lock:
        query = query.select_for_update()
    prospect = await query.first()
    if prospect is None:
        raise NotFound("Prospect", field)
    return prospect


# ---- creation ----


@dataclass
class NewProspect:
    """Validated values for one prospect, ready to insert."""

    values: dict[str, Any]
    status_id: int
    owner_id: int | None


class Preparer:
    """Validates raw prospect input against one organization (statuses, owners, region),
    caching look-ups so that a batch of 1,000 costs a handful of queries."""

    def __init__(self, actor: Actor, org: Organization) -> None:
        self.actor = actor
        self.org = org
        self._statuses: dict[int, bool] = {}
        self._owners: dict[int, bool] = {}

    async def prepare(self, raw: Mapping[str, Any], field: Field) -> NewProspect:
        """``raw``'s fields validated (``status_id`` and ``owner_id`` primary keys);
        a fault is reported under ``field``."""
        own = {k: raw.get(k) for k in fields.EDITABLE if k in raw}
        values = fields.clean(own, region=self.org.phone_region, field=field)
        values.setdefault("custom_fields", {})
        if raw.get("pullable_after") is not None:
            values["pullable_after"] = raw["pullable_after"]
        status_id: int | None = raw.get("status_id")
        if status_id is None:
            if self.org.default_status_id is None:
                raise InvalidInput(
                    "statusId is required: the organization has no default status.", (*field, "status_id")
                )
            status_id = self.org.default_status_id
        else:
            if status_id not in self._statuses:
                live = Status.filter(id=status_id, organization_id=self.org.id, deleted_at=None)
                self._statuses[status_id] = await live.exists()
            if not self._statuses[status_id]:
                raise NotFound("Status", (*field, "status_id"))
        owner_id: int | None = raw.get("owner_id")
        if owner_id is not None:
            if owner_id not in self._owners:
                active = User.filter(id=owner_id, organization_id=self.org.id, active=True)
                self._owners[owner_id] = await active.exists()
            if not self._owners[owner_id]:
                raise NotFound("User", (*field, "owner_id"))
            if self.actor.is_agent and owner_id != self.actor.user_id:
                raise Forbidden("An AGENT may only take prospects for itself.", (*field, "owner_id"))
        return NewProspect(values, status_id, owner_id)


async def create_prospect(*, actor: Actor, values: Mapping[str, Any]) -> Prospect:
    """Creates one prospect; a fault is reported under ``values``, an email or
    externalId another prospect has as DUPLICATE naming it."""
    org = await Organization.get(id=actor.organization_id)
    ready = await Preparer(actor, org).prepare(values, ("values",))

    async def write() -> Prospect:
        await duplicates.check(actor.organization_id, ready.values, ("values",))
        async with in_transaction():
            return (await insert(actor, [ready], cause=ChangeCause.USER))[0]

    return await duplicates.retrying(write)


async def create_prospects(
    *,
    actor: Actor,
    inputs: Sequence[Mapping[str, Any]],
) -> tuple[list[Prospect], list[DomainError]]:
    """Creates the valid prospects in bulk; the invalid ones come back as errors
    under ``inputs`` and their index: one whose email or externalId a prospect
    has, or an earlier input of the call, is DUPLICATE naming that prospect. At
    most MAX_BATCH per call."""
    if len(inputs) > MAX_BATCH:
        raise InvalidInput(f"At most {MAX_BATCH} prospects per call.", ("inputs",))
    org = await Organization.get(id=actor.organization_id)
    preparer = Preparer(actor, org)
    ready: list[tuple[int, NewProspect]] = []
    faults: list[tuple[int, DomainError]] = []
    for index, raw in enumerate(inputs):
        try:
            ready.append((index, await preparer.prepare(raw, ("inputs", index))))
        except DomainError as error:
            faults.append((index, error))

    async def write() -> tuple[list[Prospect], list[DomainError]]:
        held = await duplicates.holders(
            actor.organization_id, (k for _, item in ready for k in duplicates.keys_of(item.values))
        )
        accepted: list[NewProspect] = []
        claimed: dict[duplicates.Key, int] = {}  # a key → the position in ``accepted`` of the input that has it
        repeats: list[tuple[int, str, int]] = []  # (index, key, position of the input it repeats)
        refusals = list(faults)
        for index, item in ready:
            keys = duplicates.keys_of(item.values)
            if taken := next((k for k in keys if k in held), None):
                refusals.append((index, duplicates.refused(held[taken], taken[0], ("inputs", index, taken[0]))))
            elif repeated := next((k for k in keys if k in claimed), None):
                repeats.append((index, repeated[0], claimed[repeated]))
            else:
                claimed.update((k, len(accepted)) for k in keys)
                accepted.append(item)
        async with in_transaction():
            created = await insert(actor, accepted, cause=ChangeCause.USER)
        for index, key, position in repeats:
            refusals.append((index, duplicates.refused(created[position].id, key, ("inputs", index, key))))
        return created, [error for _, error in sorted(refusals, key=lambda fault: fault[0])]

    return await duplicates.retrying(write)


async def insert(actor: Actor, ready: Sequence[NewProspect], *, cause: ChangeCause) -> list[Prospect]:
    """Inserts prepared prospects with their first StatusChange and runs
    PROSPECT_CREATED rules. Runs inside the caller's transaction."""
    if not ready:
        return []
    now = actor.now()
    rows = [
        Prospect(
            organization_id=actor.organization_id,
            status_id=item.status_id,
            **statuses.entered_values(now),
            owner_id=item.owner_id,
            assigned_at=now if item.owner_id is not None else None,
            search_text=fields.search_text(item.values),
            created_at=now,
            updated_at=now,
            **item.values,
        )
        for item in ready
    ]
    created = await bulk.insert_returning_ids(rows)
    by_status: dict[int, list[Prospect]] = {}
    for prospect in created:
        by_status.setdefault(prospect.status_id, []).append(prospect)
    for status_id, entered in by_status.items():
        await statuses.change(entered, status_id, actor=actor, cause=cause, created=True)
    consenting = Status.filter(id__in=list(by_status), enrollment_outcome__in=effects.CONSENT_OUTCOMES)
    for status in await consenting:  # created in a consent status: the person said so
        for prospect in by_status[status.id]:
            outcome = status.enrollment_outcome
            assert outcome is not None
            await effects.record_consent(prospect, outcome, actor=actor, cause=cause, chain=Chain())
    await log.record(
        prospect_event(
            EventType.PROSPECT_CREATED,
            actor.organization_id,
            p.id,
            now,
            statusId=ids.encode("Status", p.status_id),
            ownerId=ids.encode("User", p.owner_id) if p.owner_id else None,
            cause=cause.value,
        )
        for p in created
    )
    await log.record(  # an owner given at creation is an assignment too
        assignment_changed(actor.organization_id, p.id, now, None, p.owner_id)
        for p in created
        if p.owner_id is not None
    )
    if await rules.has_rules(actor.organization_id, TriggerEvent.PROSPECT_CREATED):
        for prospect in created:
            await rules.fire_rules(TriggerEvent.PROSPECT_CREATED, prospect, actor=actor, chain=Chain())
    return list(created)


# ---- edits ----


async def update_prospect(*, actor: Actor, prospect_id: int, changes: Mapping[str, Any]) -> Prospect:
    """Changes the given fields (None clears one); a fault is named by its field, an
    email or externalId another prospect has is DUPLICATE naming it."""
    org = await Organization.get(id=actor.organization_id)
    values = fields.clean(changes, region=org.phone_region, field=())

    async def write() -> Prospect:
        async with in_transaction():
            prospect = await get_prospect(actor, prospect_id, ("prospect_id",), lock=True)
            await duplicates.check(actor.organization_id, values, (), own_id=prospect.id)
            await save_changes([(prospect, values)], now=actor.now())
        return prospect

    return await duplicates.retrying(write)


SAVED = (*fields.EDITABLE, "pullable_after", "search_text", "updated_at")
"""The columns ``save_changes`` writes."""


async def save_changes(changes: Sequence[tuple[Prospect, Mapping[str, Any]]], *, now: datetime) -> None:
    """Sets cleaned values (``fields.clean``'s, and ``pullable_after``) on locked
    prospects and saves them, each with a PROSPECT_UPDATED event naming the fields
    given: one UPDATE and one INSERT of events however many prospects. Runs inside
    the caller's transaction."""
    if not changes:
        return
    for prospect, values in changes:
        for key, value in values.items():
            setattr(prospect, key, {} if key == "custom_fields" and value is None else value)
        prospect.search_text = fields.search_text({k: getattr(prospect, k) for k in fields.SEARCHED})
        prospect.updated_at = now
    await bulk.update_each([prospect for prospect, _ in changes], SAVED, connections.get("default"))
    await log.record(
        prospect_event(
            EventType.PROSPECT_UPDATED,
            prospect.organization_id,
            prospect.id,
            now,
            fields=sorted(api_name(key) for key in values),
        )
        for prospect, values in changes
    )


async def set_status(*, actor: Actor, prospect_id: int, status_id: int, note: str | None) -> Prospect:
    async with in_transaction():
        prospect = await get_prospect(actor, prospect_id, ("prospect_id",), lock=True)
        status = await workflows.get_status(actor, status_id, ("status_id",))
        await effects.change_status([prospect], status, actor=actor, cause=ChangeCause.USER, chain=Chain(), note=note)
    return prospect


async def log_activity(
    *,
    actor: Actor,
    prospect_id: int,
    interaction: Interaction,
    action_id: int | None,
    note: str | None,
    callback_at: datetime | None = None,
) -> tuple[Activity, Prospect]:
    """Records the interaction and applies the action's operations, atomically (R2.3);
    ``callback_at``, the time the person asked to be called back, is when the
    callback the action schedules is due, instead of after the operation's delay."""
    if callback_at is not None:
        callback_at = _callback_time(callback_at, actor.now())
    async with in_transaction():
        prospect = await get_prospect(actor, prospect_id, ("prospect_id",), lock=True)
        action = None
        if action_id is not None:
            action = await workflows.get_owned(actor, Action, action_id, ("action_id",))
            if action.interactions and interaction.value not in action.interactions:
                raise ActionNotAvailable(
                    f"{action.name!r} cannot be logged with {interaction.value}.", ("interaction",)
                )
            if not await availability.action_available(action, prospect.status_id):
                message = await availability.not_available_message(action, prospect.status_id)
                raise ActionNotAvailable(message, ("action_id",))
        if callback_at is not None and (action is None or not operations.schedules_callback(action.operations)):
            given = "no action is given" if action is None else f"{action.name!r} schedules none"
            raise InvalidInput(f"callbackAt is for an action that schedules a callback: {given}.", ("callback_at",))
        activity = await Activity.create(
            organization_id=actor.organization_id,
            prospect_id=prospect.id,
            action_id=action.id if action else None,
            interaction=interaction.value,
            note=note,
            actor_id=actor.user_id,
            at=actor.now(),
        )
        if action is not None:
            await operations.run_operations(
                prospect,
                action.operations,
                actor=actor,
                cause=ChangeCause.ACTION,
                chain=Chain(),
                callback_at=callback_at,
            )
    return activity, prospect


CALLBACK_SLACK = timedelta(minutes=5)
"""How far in the past a callbackAt may be (a time picked a moment ago, a clock a little off)."""

CALLBACK_HORIZON = timedelta(days=366)
"""How far ahead a callbackAt may be."""


def _callback_time(at: datetime, now: datetime) -> datetime:
    """``at`` checked: not in the past beyond ``CALLBACK_SLACK``, nor beyond
    ``CALLBACK_HORIZON``; a time without an offset is UTC, as every DateTime given
    to the API is read."""
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    field = ("callback_at",)
    if at < now - CALLBACK_SLACK:
        raise InvalidInput(f"callbackAt {at.isoformat()} is in the past (it is now {now.isoformat()}).", field)
    if at > now + CALLBACK_HORIZON:
        raise InvalidInput("callbackAt may be at most a year ahead.", field)
    return at


async def mark_do_not_contact(*, actor: Actor, prospect_id: int, do_not_contact: bool) -> Prospect:
    """Blocks every channel (R3.3), suppresses the prospect's addresses and finishes
    its enrollments OPTED_OUT; un-marking clears the flag only (``consent.set_do_not_contact``)."""
    async with in_transaction():
        prospect = await get_prospect(actor, prospect_id, ("prospect_id",), lock=True)
        await consent.set_do_not_contact(prospect, do_not_contact, actor=actor, cause=ChangeCause.USER)
    return prospect


async def opt_out(*, actor: Actor, prospect_id: int, channel: Channel) -> Prospect:
    """Blocks one channel, suppresses the prospect's address on it and finishes OPTED_OUT
    the enrollments, of every record carrying the address, whose sequence uses it."""
    async with in_transaction():
        prospect = await get_prospect(actor, prospect_id, ("prospect_id",), lock=True)
        await consent.opt_out(prospect, channel, actor=actor, cause=ChangeCause.USER)
    return prospect


async def delete_prospect(*, actor: Actor, prospect_id: int) -> int:
    """Erases the prospect with its activities, history and tasks (R3.4)."""
    actor.require_manager()
    async with in_transaction():
        prospect = await get_prospect(actor, prospect_id, ("prospect_id",), lock=True)
        await Activity.filter(prospect_id=prospect.id).delete()
        await StatusChange.filter(prospect_id=prospect.id).delete()
        await Task.filter(prospect_id=prospect.id).delete()
        await prospect.delete()
        # Its earlier events stay, with ids and facts only (they never held personal data).
        await log.record([prospect_event(EventType.PROSPECT_DELETED, actor.organization_id, prospect.id, actor.now())])
    return prospect.id


# ---- tasks ----


def visible_tasks(actor: Actor) -> QuerySet[Task]:
    query = Task.filter(organization_id=actor.organization_id)
    if actor.is_agent:
        query = query.filter(Q(prospect__owner_id=actor.user_id) | Q(prospect__owner_id=None))
    return query


async def complete_task(*, actor: Actor, task_id: int, note: str | None) -> Task:
    """Marks the task done (a step's task lets its enrollment go on, R4.3);
    completing it again changes nothing."""
    async with in_transaction():
        task = await Task.filter(id=task_id, organization_id=actor.organization_id).select_for_update().first()
        if task is None or not await visible(actor).filter(id=task.prospect_id).exists():
            raise NotFound("Task", ("task_id",))
        if task.completed_at is None:
            task.completed_at = actor.now()
            if note is not None:
                task.note = note
            await task.save(update_fields=["completed_at", "note"])
            await log.record([task_event(EventType.TASK_COMPLETED, task, task.completed_at)])
            await scheduler.task_completed(task, actor.clock)
    return task
