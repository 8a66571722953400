"""Live subscriptions (contract part 30), served over graphql-transport-ws only.

Each is one ``stream.follow`` of the event log with its own test of which
events it wants, for the viewer as it is at each event (a session keeps it
current); the DataLoaders are renewed before each event, so nothing read for
an earlier one is served stale. Subscribers with the same document, variables
and audience share one run of it (schema.events.shared), which reports its
progress to the fan-out."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from app import ids
from app.events import models, stream
from app.events.hub import Hub
from app.events.models import EventType
from app.workflows.read import workflow_of
from schema.context import Info, PublicError
from schema.events.shared import progress_of
from schema.events.types import Event, EventFilter
from schema.pagination import after_pk
from schema.prospects.types import StatusChange
from schema.sequences.types import StageChange


def _viewer(info: Info) -> stream.Viewer:
    return lambda: info.context.actor


def _progress(info: Info) -> stream.Progress | None:
    return progress_of(info.context)


def _hub(info: Info) -> Hub:
    hub = info.context.state.hub
    assert hub is not None, "an app serving websockets is connected to Redis"
    return hub


def _one_id(type_name: str, value: strawberry.ID | None, argument: str) -> int | None:
    if value is None:
        return None
    pk = ids.decode_as(type_name, value)
    if pk is None:
        raise PublicError(f"`{argument}` is not a {type_name} id.")
    return pk


def _payload_id(event: models.Event, subject: str, key: str, type_name: str) -> int | None:
    value = event.payload.get(subject)
    gid = value.get(key) if isinstance(value, dict) else None
    return ids.decode_as(type_name, gid) if isinstance(gid, str) else None


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Live status changes. Filters are optional.")
    async def prospect_status_changed(
        self, info: Info, workflow_id: strawberry.ID | None = None, prospect_id: strawberry.ID | None = None
    ) -> AsyncGenerator[StatusChange, None]:
        workflow, prospect = (
            _one_id("Workflow", workflow_id, "workflowId"),
            _one_id("Prospect", prospect_id, "prospectId"),
        )
        workflows: dict[int, int | None] = {}  # status id → its workflow id (statuses never move)

        async def wanted(event: models.Event) -> bool:
            if event.type != EventType.STATUS_CHANGED or (prospect is not None and event.prospect_id != prospect):
                return False
            if workflow is None:
                return True
            status = _payload_id(event, "statusChange", "toStatusId", "Status")
            if status is not None and status not in workflows:
                workflows[status] = await workflow_of(status)
            return status is not None and workflows[status] == workflow

        async for event in stream.follow(_viewer(info), _hub(info), wanted, progress=_progress(info)):
            info.context.reset_loaders()
            row = (
                await info.context.loaders.status_change.load(event.status_change_id)
                if event.status_change_id
                else None
            )
            if row is not None:
                yield StatusChange(row=row)

    @strawberry.subscription(description="Live enrollment stage changes. Filters are optional.")
    async def enrollment_stage_changed(
        self, info: Info, sequence_id: strawberry.ID | None = None, prospect_id: strawberry.ID | None = None
    ) -> AsyncGenerator[StageChange, None]:
        sequence, prospect = (
            _one_id("Sequence", sequence_id, "sequenceId"),
            _one_id("Prospect", prospect_id, "prospectId"),
        )

        async def wanted(event: models.Event) -> bool:
            return (
                event.type == EventType.STAGE_CHANGED
                and (prospect is None or event.prospect_id == prospect)
                and (sequence is None or _payload_id(event, "stageChange", "sequenceId", "Sequence") == sequence)
            )

        async for event in stream.follow(_viewer(info), _hub(info), wanted, progress=_progress(info)):
            info.context.reset_loaders()
            row = await info.context.loaders.stage_change.load(event.stage_change_id) if event.stage_change_id else None
            if row is not None:
                yield StageChange(row=row)

    @strawberry.subscription(
        description="Every event, live; with `after`, first replays the events after that cursor, "
        "in order, without gaps or duplicates."
    )
    async def events(
        self, info: Info, filter: EventFilter | None = None, after: str | None = None
    ) -> AsyncGenerator[Event, None]:
        start = after_pk(after)
        types = {t.value for t in filter.types} if filter is not None and filter.types is not None else None
        prospect = _one_id("Prospect", filter.prospect_id, "filter.prospectId") if filter is not None else None

        async def wanted(event: models.Event) -> bool:
            return (types is None or event.type in types) and (prospect is None or event.prospect_id == prospect)

        async for event in stream.follow(_viewer(info), _hub(info), wanted, after=start, progress=_progress(info)):
            info.context.reset_loaders()
            yield Event(row=event)
