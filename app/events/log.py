"""Appending to the event log (R10.1), and giving committed events their cursors.

``record`` adds events in the caller's transaction (the outbox): whatever
changed and its event commit together or not at all. Payloads carry global
ids and facts (states, stages, channels, causes), never names or addresses.

``sequence`` runs in the worker: it numbers the committed events that have no
cursor yet, in id order, after the highest cursor given, one sequencer at a
time (a Postgres advisory lock; SQLite has one writer). An event committed
late gets a later cursor than every event already numbered, so a reader that
resumes after a cursor misses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from app import bulk, ids
from app.events.models import Event, EventType
from app.messaging.models import Message
from app.prospects.models import StatusChange, Task
from app.sequences.models import StageChange

SEQUENCER_LOCK = 7_151_001
"""The Postgres advisory lock key that keeps one sequencer at a time."""


def api_name(field: str) -> str:
    """A model field's name as the API spells it: owner_id → ownerId."""
    head, *rest = field.split("_")
    return head + "".join(part.title() for part in rest)


def _gid(type_name: str, pk: int | None) -> str | None:
    return ids.encode(type_name, pk) if pk is not None else None


SUBJECTS = ("status_change_id", "stage_change_id", "message_id", "task_id")


def _event(
    type_: EventType, organization_id: int, at: datetime, prospect_id: int | None, data: dict[str, Any], **subjects: int
) -> dict[str, Any]:
    """An event row to ``record`` (a plain row: events are written on hot paths)."""
    payload = {"type": type_.value, "at": at.isoformat(), "prospectId": _gid("Prospect", prospect_id), **data}
    row = {"organization_id": organization_id, "type": type_, "at": at, "prospect_id": prospect_id, "payload": payload}
    return row | {name: subjects.get(name) for name in SUBJECTS}


def prospect_event(
    type_: EventType, organization_id: int, prospect_id: int, at: datetime, **facts: Any
) -> dict[str, Any]:
    return _event(type_, organization_id, at, prospect_id, facts)


def assignment_changed(
    organization_id: int, prospect_id: int, at: datetime, before: int | None, after: int | None
) -> dict[str, Any]:
    return _event(
        EventType.ASSIGNMENT_CHANGED,
        organization_id,
        at,
        prospect_id,
        {"fromUserId": _gid("User", before), "toUserId": _gid("User", after)},
    )


def status_changed(change: StatusChange) -> dict[str, Any]:
    data = {
        "statusChange": {
            "id": _gid("StatusChange", change.id),
            "fromStatusId": _gid("Status", change.from_status_id),
            "toStatusId": _gid("Status", change.to_status_id),
            "cause": change.cause.value if hasattr(change.cause, "value") else str(change.cause),
        }
    }
    return _event(
        EventType.STATUS_CHANGED,
        change.organization_id,
        change.at,
        change.prospect_id,
        data,
        status_change_id=change.id,
    )


def stage_changed(change: StageChange, prospect_id: int, sequence_id: int) -> dict[str, Any]:
    return stage_changed_row({name: getattr(change, name) for name in STAGE_CHANGE_FIELDS}, prospect_id, sequence_id)


STAGE_CHANGE_FIELDS = ("id", "organization_id", "enrollment_id", "from_stage", "to_stage", "cause", "reason", "at")


def stage_changed_row(change: Mapping[str, Any], prospect_id: int, sequence_id: int) -> dict[str, Any]:
    """The STAGE_CHANGED event of a stage change given as a row (STAGE_CHANGE_FIELDS)."""
    from_stage = change["from_stage"]
    data = {
        "stageChange": {
            "id": _gid("StageChange", change["id"]),
            "enrollmentId": _gid("Enrollment", change["enrollment_id"]),
            "sequenceId": _gid("Sequence", sequence_id),
            "fromStage": from_stage.value if from_stage else None,
            "toStage": change["to_stage"].value,
            "cause": str(change["cause"]),
            "reason": change["reason"],
        }
    }
    return _event(
        EventType.STAGE_CHANGED,
        change["organization_id"],
        change["at"],
        prospect_id,
        data,
        stage_change_id=change["id"],
    )


def message_event(type_: EventType, message: Message, at: datetime) -> dict[str, Any]:
    data = {
        "message": {
            "id": _gid("Message", message.id),
            "channel": message.channel.value,
            "direction": message.direction.value,
            "state": message.state.value,
            "enrollmentId": _gid("Enrollment", message.enrollment_id),
            "autoReply": message.auto_reply,
            "bounceType": message.bounce_type.value if message.bounce_type else None,
        }
    }
    return _event(type_, message.organization_id, at, message.prospect_id, data, message_id=message.id)


def task_event(type_: EventType, task: Task, at: datetime) -> dict[str, Any]:
    data = {
        "task": {
            "id": _gid("Task", task.id),
            "kind": task.kind.value,
            "dueAt": task.due_at.isoformat(),
            "assigneeId": _gid("User", task.assignee_id),
            "completedAt": task.completed_at.isoformat() if task.completed_at else None,
        }
    }
    return _event(type_, task.organization_id, at, task.prospect_id, data, task_id=task.id)


async def record(events: Iterable[dict[str, Any]]) -> None:
    """Appends events in the caller's transaction (one INSERT for many)."""
    await bulk.insert_rows(Event, list(events))


SEQUENCE_BATCH = 5000
NUMBER_POSTGRES = (
    'UPDATE "event" SET "seq" = top.seq + v.n '
    'FROM (SELECT COALESCE(MAX("seq"), 0) AS seq FROM "event") AS top, '
    'unnest(ARRAY(SELECT "id" FROM "event" WHERE "seq" IS NULL ORDER BY "id" LIMIT $1)) '
    'WITH ORDINALITY AS v("id", n) WHERE "event"."id" = v."id"'
)


async def sequence(*, limit: int = SEQUENCE_BATCH) -> int:
    """Gives the oldest committed events without a cursor the next cursors, in id
    order, in a transaction of its own (the relay publishes only what this
    committed); how many."""
    async with in_transaction() as connection:
        if connection.capabilities.dialect == "postgres":
            await connection.execute_query("SELECT pg_advisory_xact_lock($1)", [SEQUENCER_LOCK])
            # One statement: the unsequenced ids from the partial index, in order (an
            # InitPlan), numbered after the highest cursor and written by primary key. The
            # unnest of a computed array is planned as a few rows, so the join is always
            # index probes (a join against the event table itself was planned as a scan of
            # every event whenever the statistics guessed many were unsequenced: 5-20 ms a
            # pass at 50,000 events), and the ids never travel to the worker and back.
            count, _ = await connection.execute_query(NUMBER_POSTGRES, [limit])
            return int(count)
        [row] = await connection.execute_query_dict('SELECT MAX("seq") AS top FROM "event"')
        count, _ = await connection.execute_query(
            'UPDATE "event" SET "seq" = ? + numbered.rn FROM ('
            'SELECT "id", ROW_NUMBER() OVER (ORDER BY "id") AS rn FROM "event" WHERE "seq" IS NULL '
            'ORDER BY "id" LIMIT ?) AS numbered WHERE "event"."id" = numbered."id"',
            [int(row["top"] or 0), limit],
        )
        return int(count)
