"""Appending to the event log (R10.1), and giving committed events their cursors.

``record`` adds events in the caller's transaction (the outbox): whatever
changed and its event commit together or not at all. Payloads carry global
ids and facts (states, stages, channels, causes), never names or addresses.
Each domain builds the payloads of its own events (``app.prospects.events``,
``app.sequences.events``, ``app.messaging.events``) with ``event``; the log
knows no domain's models.

``sequence`` runs in the worker: it numbers the committed events that have no
cursor yet, in id order, after the highest cursor given, one sequencer at a
time (a Postgres advisory lock; SQLite has one writer). An event committed
late gets a later cursor than every event already numbered, so a reader that
resumes after a cursor misses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from app import bulk, ids
from app.events.models import Event, EventType

SEQUENCER_LOCK = 7_151_001
"""The Postgres advisory lock key that keeps one sequencer at a time."""


def gid(type_name: str, pk: int | None) -> str | None:
    """A payload's global id (None stays None)."""
    return ids.encode(type_name, pk) if pk is not None else None


SUBJECTS = ("status_change_id", "stage_change_id", "message_id", "task_id")


def event(
    type_: EventType, organization_id: int, at: datetime, prospect_id: int | None, data: dict[str, Any], **subjects: int
) -> dict[str, Any]:
    """An event row to ``record`` (a plain row: events are written on hot paths);
    each domain builds its own events' ``data`` with this."""
    payload = {"type": type_.value, "at": at.isoformat(), "prospectId": gid("Prospect", prospect_id), **data}
    row = {"organization_id": organization_id, "type": type_, "at": at, "prospect_id": prospect_id, "payload": payload}
    return row | {name: subjects.get(name) for name in SUBJECTS}


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
