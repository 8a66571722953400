"""Creating or updating prospects by a key (R12.3): the API's upsertProspects and
the CSV import, a batch at a time.

A row matches the prospect found by the first key of ``match_on`` that the row
carries and that finds one (an earlier row of the same call counts: two rows
with one key are one person). A matched row updates only the fields it gives,
or is skipped, or is DUPLICATE, as ``on_duplicate`` says; an unmatched row is
created. A key the row gives that another person holds is DUPLICATE naming it,
as on create and update. Every row's history and events are the ones create
(``service.insert``) and update (``service.save_changes``, status changes,
assignments) record.

The batch is planned and written in one transaction with a few queries, however
many rows. Two callers creating the same person at once: the unique index lets
one insert through; the other's transaction is refused, and its retry finds the
person and updates it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import ids
from app.accounts.actor import Actor
from app.accounts.models import Organization
from app.errors import Conflict, DomainError, Duplicate, InvalidInput
from app.prospects import duplicates, effects, fields, service, updates
from app.prospects.duplicates import ATTEMPTS, Key
from app.prospects.models import ChangeCause, Prospect
from app.prospects.service import MAX_BATCH, NewProspect, Preparer
from app.workflows.chain import Chain
from app.workflows.models import Status


class MatchKey(StrEnum):
    EXTERNAL_ID = "EXTERNAL_ID"
    EMAIL = "EMAIL"
    PHONE = "PHONE"


class OnDuplicate(StrEnum):
    SKIP = "skip"
    UPDATE = "update"
    ERROR = "error"


DEFAULT_MATCH = (MatchKey.EXTERNAL_ID, MatchKey.EMAIL)

FIELDS = {MatchKey.EXTERNAL_ID: "external_id", MatchKey.EMAIL: "email", MatchKey.PHONE: "phone"}


@dataclass
class UpsertResult:
    """Each prospect once: ``created`` new ones, ``updated`` existing ones a row
    matched (a row folded into an earlier row of the call adds to neither);
    ``skipped`` the indexes of rows matched under SKIP; ``errors`` the refused
    rows', whose field starts with the row index."""

    created: list[Prospect] = field(default_factory=list)
    updated: list[Prospect] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    errors: list[DomainError] = field(default_factory=list)


@dataclass
class _Row:
    index: int
    new: NewProspect
    given: set[str]
    """The fields the row gives: what a match updates."""


Slot = tuple[str, int]
"""A person of the batch: ("existing", prospect id) or ("new", position among the creations)."""


class _Raced(Exception):
    """A matched prospect was deleted between the plan and its lock: plan again."""


class _DryRun(Exception):
    def __init__(self, result: UpsertResult) -> None:
        self.result = result


async def upsert_prospects(
    *,
    actor: Actor,
    rows: Sequence[Mapping[str, Any]],
    match_on: Sequence[MatchKey] = DEFAULT_MATCH,
    on_duplicate: OnDuplicate = OnDuplicate.UPDATE,
    dry_run: bool = False,
) -> UpsertResult:
    """Creates or updates each row's prospect (``rows``: raw values as
    ``Preparer.prepare`` takes them, at most MAX_BATCH). ``dry_run``: the same
    result, computed in a transaction that is rolled back, so nothing is written
    (nor numbered: the created prospects' ids are not kept)."""
    if len(rows) > MAX_BATCH:
        raise InvalidInput(f"At most {MAX_BATCH} prospects per call.", ("rows",))
    if not match_on:
        raise InvalidInput("Name at least one key to match on.", ("match_on",))
    org = await Organization.get(id=actor.organization_id)
    preparer = Preparer(actor, org)
    prepared: list[_Row] = []
    faults: list[tuple[int, DomainError]] = []
    for index, raw in enumerate(rows):
        try:
            new = await preparer.prepare(raw, (index,))
        except DomainError as error:
            faults.append((index, error))
            continue
        prepared.append(_Row(index, new, {key for key in raw if raw[key] is not None}))
    for _ in range(ATTEMPTS):
        try:
            async with in_transaction():
                result = await _write(actor, prepared, faults, list(dict.fromkeys(match_on)), on_duplicate)
                if dry_run:
                    raise _DryRun(result)
            return result
        except _DryRun as done:
            return done.result
        except (IntegrityError, _Raced):
            continue
    raise Conflict("Other changes to these prospects were saved at the same time; try again.")


async def _write(
    actor: Actor,
    prepared: list[_Row],
    faults: list[tuple[int, DomainError]],
    match_on: list[MatchKey],
    on_duplicate: OnDuplicate,
) -> UpsertResult:
    plan = await _Plan.read(actor, prepared, match_on)
    for row in prepared:
        plan.place(row, on_duplicate)
    existing = await _locked(actor, plan)
    created = await service.insert(actor, plan.creations, cause=ChangeCause.USER)
    updated = await _update(actor, existing, plan)
    refusals = list(faults) + plan.refusals
    for index, key, position in plan.repeats:
        refusals.append((index, duplicates.refused(created[position].id, key, (index, key))))
    return UpsertResult(
        created=created,
        updated=updated,
        skipped=plan.skipped,
        errors=[error for _, error in sorted(refusals, key=lambda fault: fault[0])],
    )


class _Plan:
    """Who each row is: its match, its creation or its refusal, decided row by row
    in order over what the organization holds and what earlier rows claimed."""

    def __init__(self, holders: dict[Key, int], phones: dict[str, list[int]], match_on: list[MatchKey]) -> None:
        self.claims: dict[Key, Slot] = {key: ("existing", pk) for key, pk in holders.items()}
        self.phones: dict[str, list[Slot]] = {phone: [("existing", pk) for pk in pks] for phone, pks in phones.items()}
        self.match_on = match_on
        self.creations: list[NewProspect] = []
        self.changes: dict[int, dict[str, Any]] = {}
        """Existing prospects' ids → the fields rows give them, later rows' last."""
        self.matched: dict[int, list[int]] = {}
        """Existing prospects' ids → the indexes of the rows that update them."""
        self.skipped: list[int] = []
        self.refusals: list[tuple[int, DomainError]] = []
        self.repeats: list[tuple[int, str, int]] = []
        """(index, key, position): DUPLICATE of a prospect the call creates, named once it has an id."""

    @classmethod
    async def read(cls, actor: Actor, prepared: list[_Row], match_on: list[MatchKey]) -> _Plan:
        keys = [key for row in prepared for key in duplicates.keys_of(row.new.values)]
        holders = await duplicates.holders(actor.organization_id, keys)
        phones: dict[str, list[int]] = {}
        if MatchKey.PHONE in match_on:
            wanted = sorted({row.new.values["phone"] for row in prepared if row.new.values.get("phone")})
            if wanted:
                query = Prospect.filter(organization_id=actor.organization_id, phone__in=wanted).order_by("id")
                for pk, phone in await query.values_list("id", "phone"):
                    phones.setdefault(phone, []).append(pk)
        return cls(holders, phones, match_on)

    def place(self, row: _Row, on_duplicate: OnDuplicate) -> None:
        try:
            target = self._match(row)
            if target is None:
                self._create(row)
            elif on_duplicate is OnDuplicate.SKIP:
                self.skipped.append(row.index)
            elif on_duplicate is OnDuplicate.ERROR:
                self._refuse(row.index, target, self._matched_key(row, target))
            else:
                self._update(row, target)
        except DomainError as error:
            self.refusals.append((row.index, error))

    def _match(self, row: _Row) -> Slot | None:
        for match_key in self.match_on:
            name = FIELDS[match_key]
            value = row.new.values.get(name)
            if value is None:
                continue
            if match_key is MatchKey.PHONE:
                found = self.phones.get(value, [])
                if len(found) > 1:
                    names = ", ".join(ids.encode("Prospect", pk) for kind, pk in found if kind == "existing")
                    raise InvalidInput(
                        f"Several prospects have this phone ({names}): match on another key.", (row.index, name)
                    )
                if found:
                    return found[0]
            elif (slot := self.claims.get((name, value))) is not None:
                return slot
        return None

    def _matched_key(self, row: _Row, target: Slot) -> str:
        for match_key in self.match_on:
            name = FIELDS[match_key]
            value = row.new.values.get(name)
            if value is not None and (self.claims.get((name, value)) == target or target in self.phones.get(value, [])):
                return name
        raise AssertionError(target)

    def _refuse(self, index: int, slot: Slot, key: str) -> None:
        kind, number = slot
        if kind == "existing":
            raise duplicates.refused(number, key, (index, key))
        self.repeats.append((index, key, number))

    def _clashes(self, row: _Row, keys: list[Key], target: Slot | None) -> bool:
        """Whether a key the row gives is another person's (then refused, recorded)."""
        for key in keys:
            holder = self.claims.get(key)
            if holder is not None and holder != target:
                try:
                    self._refuse(row.index, holder, key[0])
                except Duplicate as error:
                    self.refusals.append((row.index, error))
                return True
        return False

    def _create(self, row: _Row) -> None:
        keys = duplicates.keys_of(row.new.values)
        if self._clashes(row, keys, None):
            return
        slot: Slot = ("new", len(self.creations))
        # A copy: later rows fold into it, and a retry plans again from the rows as given.
        self.creations.append(NewProspect(dict(row.new.values), row.new.status_id, row.new.owner_id))
        self._claim(row, keys, slot)

    def _update(self, row: _Row, target: Slot) -> None:
        given = {name: value for name, value in row.new.values.items() if name in row.given}
        keys = duplicates.keys_of(given)
        if self._clashes(row, keys, target):
            return
        kind, number = target
        if kind == "new":  # an earlier row of the call creates this person: one creation with both rows' fields
            pending = self.creations[number]
            pending.values.update(given)
            pending.status_id = row.new.status_id if "status_id" in row.given else pending.status_id
            pending.owner_id = row.new.owner_id if "owner_id" in row.given else pending.owner_id
        else:
            self.matched.setdefault(number, []).append(row.index)
            self.changes.setdefault(number, {}).update(
                given | {name: getattr(row.new, name) for name in ("status_id", "owner_id") if name in row.given}
            )
        self._claim(row, keys, target)

    def _claim(self, row: _Row, keys: list[Key], slot: Slot) -> None:
        self.claims.update((key, slot) for key in keys)
        phone = row.new.values.get("phone")
        if phone is not None and slot not in self.phones.get(phone, []):
            self.phones.setdefault(phone, []).append(slot)


async def _locked(actor: Actor, plan: _Plan) -> dict[int, Prospect]:
    """The matched prospects, locked. One an AGENT may not work is not its to update:
    its rows are DUPLICATE, as creating the person would be."""
    if not plan.changes:
        return {}
    found = await Prospect.filter(
        id__in=sorted(plan.changes), organization_id=actor.organization_id
    ).select_for_update()
    if len(found) != len(plan.changes):
        raise _Raced
    workable = {p.id for p in await service.visible(actor).filter(id__in=sorted(plan.changes)).only("id")}
    for pk in sorted(set(plan.changes) - workable):
        del plan.changes[pk]
        message = f"Prospect {ids.encode('Prospect', pk)} is this person, and you may not work it."
        plan.refusals += [(index, Duplicate(message, (index,))) for index in plan.matched[pk]]
    return {p.id: p for p in found if p.id in workable}


async def _update(actor: Actor, existing: dict[int, Prospect], plan: _Plan) -> list[Prospect]:
    """Writes each matched prospect's changes through the update path: its own fields
    (one statement for all, PROSPECT_UPDATED naming them; custom fields key by key), its status (the status
    change with what entering it sets off), its owner (ASSIGNMENT_CHANGED)."""
    own: list[tuple[Prospect, dict[str, Any]]] = []
    moves: dict[int, list[Prospect]] = {}
    owners: list[tuple[Prospect, int | None]] = []
    for pk, changes in plan.changes.items():
        prospect = existing[pk]
        if isinstance(given := changes.get("custom_fields"), dict):  # keys the row leaves out are kept
            merged = prospect.custom_fields | given
            changes["custom_fields"] = fields.custom_fields(merged, (plan.matched[pk][0], "custom_fields"))
        values = {k: v for k, v in changes.items() if k not in ("status_id", "owner_id") and getattr(prospect, k) != v}
        if values:
            own.append((prospect, values))
        if "status_id" in changes and changes["status_id"] != prospect.status_id:
            moves.setdefault(changes["status_id"], []).append(prospect)
        if "owner_id" in changes and changes["owner_id"] != prospect.owner_id:
            owners.append((prospect, changes["owner_id"]))
    await service.save_changes(own, now=actor.now())
    for status in await Status.filter(id__in=sorted(moves)):
        await effects.change_status(moves[status.id], status, actor=actor, cause=ChangeCause.USER, chain=Chain())
    await updates.assign_all(owners, actor=actor)
    return [existing[pk] for pk in plan.changes]
