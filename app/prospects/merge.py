"""Merging prospects that are one person (R12.4): everything the others have moves
onto the kept one, which fills its empty fields from them, takes on their
consent, and they are deleted.

MANAGER and ADMIN only, as deleting a prospect is: a merge erases records.
Every row with a foreign key to a prospect moves (found from the models, so a
new kind of child row is never left behind to be cascaded away); enrollments
first, since an unfinished one must keep its unique active key: one in a
sequence where the kept prospect (or an earlier merged one) is unfinished too
finishes REMOVED, reason "merged". One transaction, every prospect locked.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from tortoise import Tortoise, connections
from tortoise.fields.relational import ForeignKeyFieldInstance
from tortoise.models import Model
from tortoise.transactions import in_transaction

from app import bulk
from app.accounts.actor import Actor
from app.automation import rules  # a cycle, used at call time: removed enrollments' stage rules
from app.errors import InvalidInput, NotFound
from app.events import log
from app.events.models import EventType
from app.prospects import consent, fields, updates
from app.prospects.events import api_name, prospect_event
from app.prospects.models import ChangeCause, Channel, Prospect
from app.prospects.service import MAX_BATCH
from app.sequences import lifecycle
from app.sequences.models import Enrollment

FILLED = ("first_name", "last_name", "email", "external_id", "phone", "company", "title", "time_zone")
"""Fields the kept prospect takes from the first merged one that has them, when its own is empty."""


async def merge_prospects(*, actor: Actor, keep_id: int, merge_ids: Sequence[int]) -> Prospect:
    """Merges ``merge_ids`` (at most MAX_BATCH, in the order given: the first with a
    field fills it) into ``keep_id``: their activities, status history, messages,
    tasks, enrollments and suppressions become its; its empty fields and custom
    fields it lacks are filled; their do-not-contact and opted-out channels become
    its (finishing its enrollments they block); they are deleted (PROSPECT_DELETED,
    their earlier events keeping their ids) and it is updated (PROSPECT_UPDATED)."""
    actor.require_manager()
    if not merge_ids:
        raise InvalidInput("Name at least one prospect to merge.", ("merge_ids",))
    if len(merge_ids) > MAX_BATCH:
        raise InvalidInput(f"At most {MAX_BATCH} prospects per call.", ("merge_ids",))
    if keep_id in merge_ids:
        raise InvalidInput("The prospect kept cannot be merged into itself.", ("merge_ids", merge_ids.index(keep_id)))
    others = list(dict.fromkeys(merge_ids))
    async with in_transaction():
        locked = (
            await Prospect.filter(organization_id=actor.organization_id, id__in=[keep_id, *others])
            .order_by("id")
            .select_for_update()
        )
        found = {prospect.id: prospect for prospect in locked}
        if keep_id not in found:
            raise NotFound("Prospect", ("keep_id",))
        for index, pk in enumerate(merge_ids):
            if pk not in found:
                raise NotFound("Prospect", ("merge_ids", index))
        keep, merged = found[keep_id], [found[pk] for pk in others]
        await _move_enrollments(actor, keep, others)
        for model, column in _children():
            await model.filter(**{f"{column}__in": others}).update(**{column: keep.id})
        await Prospect.filter(id__in=others).delete()
        now = actor.now()
        await log.record(prospect_event(EventType.PROSPECT_DELETED, actor.organization_id, pk, now) for pk in others)
        await _fill(actor, keep, merged)
    return keep


def _children() -> Iterator[tuple[type[Model], str]]:
    """Each model with a foreign key to Prospect, and that key's column field (the
    enrollments' included: by then only rows that need no new active key remain)."""
    for model in Tortoise.apps["models"].values():
        for field in model._meta.fields_map.values():
            if isinstance(field, ForeignKeyFieldInstance) and field.related_model is Prospect and field.source_field:
                yield model, field.source_field


async def _move_enrollments(actor: Actor, keep: Prospect, others: list[int]) -> None:
    """Unfinished enrollments of the merged prospects take the kept one's active key;
    those in a sequence it is unfinished in already finish REMOVED."""
    theirs = await Enrollment.filter(prospect_id__in=others, finished_at=None).select_for_update().order_by("id")
    if not theirs:
        return
    kept = await Enrollment.filter(prospect_id=keep.id, finished_at=None).only("sequence_id")
    taken = {enrollment.sequence_id for enrollment in kept}
    clashing: list[Enrollment] = []
    moving: list[Enrollment] = []
    for enrollment in theirs:
        (clashing if enrollment.sequence_id in taken else moving).append(enrollment)
        taken.add(enrollment.sequence_id)
    moves = await lifecycle.remove(clashing, actor=actor, cause=ChangeCause.USER, reason="merged")
    await rules.stages_entered(moves)
    for enrollment in moving:
        enrollment.prospect_id = keep.id
        enrollment.active_key = lifecycle.active_key(keep.id, enrollment.sequence_id)
    await bulk.update_each(moving, ["prospect_id", "active_key"], connections.get("default"))


async def _fill(actor: Actor, keep: Prospect, merged: list[Prospect]) -> None:
    """The kept prospect's empty fields and missing custom fields from the merged
    ones, their contact history added to its, their owner if it has none, then
    their consent (through the consent writers, which finish what it blocks)."""
    changed: dict[str, Any] = {}
    for name in FILLED:
        if getattr(keep, name) is None:
            value = next((getattr(p, name) for p in merged if getattr(p, name) is not None), None)
            if value is not None:
                changed[name] = value
    custom = dict(keep.custom_fields)
    for prospect in merged:
        for key, value in prospect.custom_fields.items():
            custom.setdefault(key, value)
    if custom != keep.custom_fields:
        changed["custom_fields"] = custom
    if attempts := sum(p.contact_attempts for p in merged):
        changed["contact_attempts"] = keep.contact_attempts + attempts
    for name, pick in (("last_contact_attempt_at", max), ("contact_made_at", min), ("unsubscribed_at", min)):
        times = [t for t in (getattr(p, name) for p in [keep, *merged]) if t is not None]
        if times and pick(times) != getattr(keep, name):
            changed[name] = pick(times)
    latest = max([keep, *merged], key=lambda p: (p.last_message_at is not None, p.last_message_at or keep.created_at))
    if latest is not keep and latest.last_message_at is not None:
        changed |= {"last_message_at": latest.last_message_at, "conversation_state": latest.conversation_state}
    if changed:
        for name, value in changed.items():
            setattr(keep, name, value)
        keep.search_text = fields.search_text({k: getattr(keep, k) for k in fields.SEARCHED})
        keep.updated_at = actor.now()
        await keep.save(update_fields=[*changed, "search_text", "updated_at"])
        names = sorted(api_name(name) for name in changed)
        await log.record(
            [prospect_event(EventType.PROSPECT_UPDATED, keep.organization_id, keep.id, keep.updated_at, fields=names)]
        )
    if keep.owner_id is None and (owner := next((p.owner_id for p in merged if p.owner_id is not None), None)):
        await updates.assign(keep, owner, actor=actor)
    if any(p.do_not_contact for p in merged):
        await consent.set_do_not_contact(keep, True, actor=actor, cause=ChangeCause.USER)
    for channel in sorted({c for p in merged for c in p.opted_out_channels} - set(keep.opted_out_channels)):
        await consent.opt_out(keep, Channel(channel), actor=actor, cause=ChangeCause.USER)
