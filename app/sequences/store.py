"""What the scheduler pass reads and writes, in the fewest statements: many rows
at a time through ``app.bulk`` (an array parameter, one statement), so that the
pass itself reads as the rules of R5.1."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from types import SimpleNamespace

from tortoise import connections
from tortoise.queryset import QuerySet

from app import bulk
from app.messaging.models import Direction, Message
from app.prospects.models import Channel, Prospect
from app.sequences.models import Enrollment
from app.sequences.state import RUNNING

PROSPECT_FIELDS = (
    "id",
    "organization_id",
    "owner_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "title",
    "custom_fields",
    "time_zone",
    "do_not_contact",
    "opted_out_channels",
)
"""What templates and the channel checks read of a prospect."""


def due_query(now: datetime, batch: int) -> QuerySet[Enrollment]:
    """The oldest due running enrollments: read through the partial index on
    (due_at, id) WHERE due_at IS NOT NULL, so a pass costs the same with ten
    thousand enrollments or a million. Only what can run has a due time: pausing,
    finishing and deactivating a sequence (which pauses its running enrollments)
    clear it, and migration 0029 paused those older deactivations had left
    running. The stage and sequence conditions guard a move in flight; rows they
    turned away would each be read again by every pass (100,000 of them: 28-38 ms
    a pass, 1.1-1.5 ms without)."""
    query = Enrollment.filter(due_at__lte=now, stage__in=list(RUNNING), sequence__active=True)
    return query.order_by("due_at", "id").limit(batch)


async def claim_due(now: datetime, batch: int) -> list[Enrollment]:
    """``due_query``'s enrollments, locked on PostgreSQL (FOR UPDATE SKIP LOCKED:
    two workers never claim one enrollment); SQLite runs one writer at a time."""
    query = due_query(now, batch)
    if connections.get("default").capabilities.dialect == "postgres":
        query = query.select_for_update(skip_locked=True, of=("enrollment",))
    return await query


async def advance(enrollment: Enrollment, changes: Mapping[str, object]) -> bool:
    """Sets ``changes`` if the enrollment's due time, stage and step are still those
    read; False if another process moved it."""
    updated = await Enrollment.filter(
        id=enrollment.id,
        due_at=enrollment.due_at,
        stage=enrollment.stage,
        current_step_id=enrollment.current_step_id,
    ).update(**changes)
    return updated == 1


async def advance_due(enrollment_ids: Sequence[int], *, now: datetime, changes: Mapping[str, object]) -> int:
    """Sets ``changes`` on those of the enrollments still due by ``now`` and running,
    in one statement; how many it set. By id (bulk's compare-and-set): Tortoise's
    "id IN (…) AND due_at <= now" can be read through the due index, every due
    enrollment read to update 500."""
    updated = await bulk.compare_and_set(
        Enrollment,
        enrollment_ids,
        expect={},
        at_most={"due_at": now},
        one_of={"stage": list(RUNNING)},
        values=changes,
    )
    return len(updated)


async def existing_send_keys(keys: Collection[str]) -> set[str]:
    """Those of the send keys that a message holds already."""
    return {row["send_key"] for row in await bulk.select_in(Message, ["send_key"], "send_key", keys)}


async def insert_messages(rows: Sequence[Mapping[str, object]]) -> list[int]:
    """Inserts the message rows in one statement; their ids, in order."""
    return await bulk.insert_returning(Message, rows)


THREAD_FIELDS = (
    "id",
    "enrollment_id",
    "channel",
    "direction",
    "state",
    "subject",
    "external_id",
    "references_header",
    "mailbox_id",
    "from_address",
    "next_attempt_at",
)
"""What a threaded step reads of its enrollment's earlier messages."""


async def emails_of(enrollment_ids: Collection[int]) -> dict[int, list[SimpleNamespace]]:
    """The enrollments' outbound emails by enrollment, oldest first, in one statement
    (an enrollment has a message a step at most)."""
    rows = await bulk.select_in(Message, THREAD_FIELDS, "enrollment_id", enrollment_ids)
    emails: dict[int, list[SimpleNamespace]] = {pk: [] for pk in enrollment_ids}
    for row in sorted(rows, key=lambda row: row["id"]):
        if row["channel"] == Channel.EMAIL and row["direction"] == Direction.OUTBOUND:
            emails[row["enrollment_id"]].append(SimpleNamespace(**row))
    return emails


async def prospects_to_message(ids: Collection[int]) -> dict[int, SimpleNamespace]:
    """The prospects' PROSPECT_FIELDS by id, as rows with attribute access
    (a Prospect model costs twice as much to make as its row)."""
    rows = await bulk.select_in(Prospect, PROSPECT_FIELDS, "id", ids)
    return {row["id"]: SimpleNamespace(**row) for row in rows}
