from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from app.errors import DomainError
from app.prospects import merge, service, upsert
from app.prospects.upsert import MatchKey
from schema.context import Info, input_path
from schema.enums import Channel, Interaction
from schema.errors import UserError, guarded, guarded_bulk
from schema.node import global_id, optional_pk, pk, pks
from schema.prospects import types

strawberry.enum(MatchKey)

_FIELD_NAMES = [
    "first_name",
    "last_name",
    "email",
    "external_id",
    "phone",
    "company",
    "title",
    "time_zone",
    "custom_fields",
]


@strawberry.input
class ProspectInput:
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    external_id: str | None = None
    phone: str | None = None
    company: str | None = None
    title: str | None = None
    time_zone: str | None = None
    custom_fields: JSON | None = None
    status_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the organization's default status."
    )
    owner_id: strawberry.ID | None = None
    pullable_after: datetime | None = None


def _given(obj: object, names: list[str]) -> dict[str, Any]:
    """The input fields the client gave (explicit nulls included; omitted ones left out)."""
    return {name: value for name in names if (value := getattr(obj, name)) is not strawberry.UNSET}


_PROSPECT_FIELDS = [*_FIELD_NAMES, "status_id", "owner_id", "pullable_after"]


def _raw(prospect: ProspectInput) -> dict[str, Any]:
    raw = {k: v for k, v in _given(prospect, _PROSPECT_FIELDS).items() if v is not None}
    if "status_id" in raw:
        raw["status_id"] = pk("Status", raw["status_id"])
    if "owner_id" in raw:
        raw["owner_id"] = pk("User", raw["owner_id"])
    return raw


@strawberry.input
class CreateProspectInput:
    prospect: ProspectInput


@strawberry.type
class CreateProspectPayload:
    prospect: types.Prospect | None = None
    errors: list[UserError]


@strawberry.input(
    description="Creates many prospects in one call; valid rows are created, invalid rows are reported by index."
)
class CreateProspectsInput:
    prospects: list[ProspectInput]


@strawberry.type
class CreateProspectsPayload:
    prospects: list[types.Prospect] = strawberry.field(default_factory=list)
    errors: list[UserError]


@strawberry.input
class UpdateProspectInput:
    id: strawberry.ID
    first_name: str | None = strawberry.UNSET
    last_name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    external_id: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    company: str | None = strawberry.UNSET
    title: str | None = strawberry.UNSET
    time_zone: str | None = strawberry.UNSET
    custom_fields: JSON | None = strawberry.UNSET


@strawberry.type
class UpdateProspectPayload:
    prospect: types.Prospect | None = None
    errors: list[UserError]


@strawberry.input(
    description="Creates or updates by the first key that matches (in matchOn's order; default [EXTERNAL_ID, EMAIL]). Fields left out of a row are kept."
)
class UpsertProspectsInput:
    prospects: list[ProspectInput]
    match_on: list[MatchKey] | None = None


@strawberry.type
class UpsertProspectsPayload:
    created: list[types.Prospect] = strawberry.field(default_factory=list)
    updated: list[types.Prospect] = strawberry.field(default_factory=list)
    errors: list[UserError]


@strawberry.input(
    description="Moves the other prospects' activities, history, messages, tasks and enrollments onto keepId, fills its empty fields from them, and deletes them."
)
class MergeProspectsInput:
    keep_id: strawberry.ID
    merge_ids: list[strawberry.ID]


@strawberry.type
class MergeProspectsPayload:
    prospect: types.Prospect | None = None
    errors: list[UserError]


_UPSERT_NAMES = {"rows": "prospects"}
"""upsert_prospects's ``rows`` are the input's ``prospects``; a row's errors start with its index."""


def _upsert_error(error: DomainError) -> UserError:
    if error.field and isinstance(error.field[0], int):
        return UserError(
            code=error.code, message=error.message, field=input_path(error.field, under=("input", "prospects"))
        )
    return UserError.of(error, _UPSERT_NAMES)


@strawberry.input(description="Erases the prospect and its personal data (messages, activities).")
class DeleteProspectInput:
    id: strawberry.ID


@strawberry.type
class DeleteProspectPayload:
    deleted_id: strawberry.ID | None = None
    errors: list[UserError]


@strawberry.input
class SetProspectStatusInput:
    id: strawberry.ID
    status_id: strawberry.ID
    note: str | None = None


@strawberry.type
class SetProspectStatusPayload:
    prospect: types.Prospect | None = None
    errors: list[UserError]


@strawberry.input(description="Records an interaction and applies the action's operations, atomically.")
class LogActivityInput:
    prospect_id: strawberry.ID
    interaction: Interaction
    action_id: strawberry.ID | None = None
    note: str | None = None
    callback_at: datetime | None = strawberry.field(
        default=None,
        description="When the action schedules a callback: the time the person asked for, instead of the operation's delay.",
    )


@strawberry.type
class LogActivityPayload:
    activity: types.Activity | None = None
    prospect: types.Prospect | None = None
    errors: list[UserError]


@strawberry.input(
    description="Blocks every channel (and, once sequences exist, finishes active enrollments as OPTED_OUT)."
)
class MarkDoNotContactInput:
    id: strawberry.ID
    do_not_contact: bool


@strawberry.type
class MarkDoNotContactPayload:
    prospect: types.Prospect | None = None
    errors: list[UserError]


@strawberry.input(
    description="Opts the prospect out of one channel (and, once sequences exist, finishes active enrollments as OPTED_OUT)."
)
class OptOutProspectInput:
    id: strawberry.ID
    channel: Channel


@strawberry.type
class OptOutProspectPayload:
    prospect: types.Prospect | None = None
    errors: list[UserError]


@strawberry.input
class CompleteTaskInput:
    id: strawberry.ID
    note: str | None = None


@strawberry.type
class CompleteTaskPayload:
    task: types.Task | None = None
    errors: list[UserError]


_SUBJECT = {"prospect_id": "id"}
"""The prospect a mutation changes is its input's ``id``."""


def _prospect(row: Any) -> dict[str, Any]:
    return {"prospect": types.Prospect(row=row)}


@strawberry.type
class ProspectMutations:
    @strawberry.mutation
    async def create_prospect(self, info: Info, input: CreateProspectInput) -> CreateProspectPayload:
        async def run() -> dict[str, Any]:
            row = await service.create_prospect(actor=info.context.actor, values=_raw(input.prospect))
            return _prospect(row)

        return await guarded(info, CreateProspectPayload, run, {"values": "prospect"})

    @strawberry.mutation
    async def create_prospects(self, info: Info, input: CreateProspectsInput) -> CreateProspectsPayload:
        return await guarded_bulk(
            info,
            CreateProspectsPayload,
            "prospects",
            lambda: service.create_prospects(actor=info.context.actor, inputs=[_raw(p) for p in input.prospects]),
            lambda row: types.Prospect(row=row),
            {"inputs": "prospects"},
        )

    @strawberry.mutation
    async def upsert_prospects(self, info: Info, input: UpsertProspectsInput) -> UpsertProspectsPayload:
        try:
            result = await upsert.upsert_prospects(
                actor=info.context.actor,
                rows=[_raw(p) for p in input.prospects],
                match_on=upsert.DEFAULT_MATCH if input.match_on is None else input.match_on,
            )
        except DomainError as error:
            return UpsertProspectsPayload(errors=[_upsert_error(error)])
        finally:
            info.context.reset_loaders()
        return UpsertProspectsPayload(
            created=[types.Prospect(row=row) for row in result.created],
            updated=[types.Prospect(row=row) for row in result.updated],
            errors=[_upsert_error(error) for error in result.errors],
        )

    @strawberry.mutation
    async def merge_prospects(self, info: Info, input: MergeProspectsInput) -> MergeProspectsPayload:
        async def run() -> dict[str, Any]:
            row = await merge.merge_prospects(
                actor=info.context.actor,
                keep_id=pk("Prospect", input.keep_id),
                merge_ids=pks("Prospect", input.merge_ids),
            )
            return _prospect(row)

        return await guarded(info, MergeProspectsPayload, run)

    @strawberry.mutation
    async def update_prospect(self, info: Info, input: UpdateProspectInput) -> UpdateProspectPayload:
        async def run() -> dict[str, Any]:
            changes = _given(input, _FIELD_NAMES)
            row = await service.update_prospect(
                actor=info.context.actor, prospect_id=pk("Prospect", input.id), changes=changes
            )
            return _prospect(row)

        return await guarded(info, UpdateProspectPayload, run, _SUBJECT)

    @strawberry.mutation
    async def delete_prospect(self, info: Info, input: DeleteProspectInput) -> DeleteProspectPayload:
        async def run() -> dict[str, Any]:
            deleted = await service.delete_prospect(actor=info.context.actor, prospect_id=pk("Prospect", input.id))
            return {"deleted_id": global_id("Prospect", deleted)}

        return await guarded(info, DeleteProspectPayload, run, _SUBJECT)

    @strawberry.mutation
    async def set_prospect_status(self, info: Info, input: SetProspectStatusInput) -> SetProspectStatusPayload:
        async def run() -> dict[str, Any]:
            row = await service.set_status(
                actor=info.context.actor,
                prospect_id=pk("Prospect", input.id),
                status_id=pk("Status", input.status_id),
                note=input.note,
            )
            return _prospect(row)

        return await guarded(info, SetProspectStatusPayload, run, _SUBJECT)

    @strawberry.mutation
    async def log_activity(self, info: Info, input: LogActivityInput) -> LogActivityPayload:
        async def run() -> dict[str, Any]:
            activity, prospect = await service.log_activity(
                actor=info.context.actor,
                prospect_id=pk("Prospect", input.prospect_id),
                interaction=input.interaction,
                action_id=optional_pk("Action", input.action_id),
                note=input.note,
                callback_at=input.callback_at,
            )
            return {"activity": types.Activity(row=activity), **_prospect(prospect)}

        return await guarded(info, LogActivityPayload, run)

    @strawberry.mutation
    async def mark_do_not_contact(self, info: Info, input: MarkDoNotContactInput) -> MarkDoNotContactPayload:
        async def run() -> dict[str, Any]:
            row = await service.mark_do_not_contact(
                actor=info.context.actor, prospect_id=pk("Prospect", input.id), do_not_contact=input.do_not_contact
            )
            return _prospect(row)

        return await guarded(info, MarkDoNotContactPayload, run, _SUBJECT)

    @strawberry.mutation
    async def opt_out_prospect(self, info: Info, input: OptOutProspectInput) -> OptOutProspectPayload:
        async def run() -> dict[str, Any]:
            row = await service.opt_out(
                actor=info.context.actor, prospect_id=pk("Prospect", input.id), channel=input.channel
            )
            return _prospect(row)

        return await guarded(info, OptOutProspectPayload, run, _SUBJECT)

    @strawberry.mutation
    async def complete_task(self, info: Info, input: CompleteTaskInput) -> CompleteTaskPayload:
        async def run() -> dict[str, Any]:
            row = await service.complete_task(actor=info.context.actor, task_id=pk("Task", input.id), note=input.note)
            return {"task": types.Task(row=row)}

        return await guarded(info, CompleteTaskPayload, run, {"task_id": "id"})
