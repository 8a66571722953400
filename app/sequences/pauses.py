"""Pauses that end by themselves (contract part 60): the scheduler's look for
enrollments whose ``resumes_at`` has come, and their resumption.

A pause until a time (``pauseEnrollmentsUntil``, or an out-of-office reply with a
return date) keeps its end in ``resumes_at``, set only while PAUSED. Each
scheduler pass resumes those whose end has come, oldest first in bounded
batches, through ``lifecycle.resume`` (the step that fell due meanwhile is due
at once, so the same pass can send it). The resumption's cause is OUT_OF_OFFICE
when an auto-reply set the pause, else USER. An enrollment whose sequence is
inactive then cannot resume (R14): it stays PAUSED, its end forgotten, and is
handed to the sequence: reactivating the sequence resumes it with the others its
deactivation paused.

The look reads the partial index on (resumes_at, id) WHERE resumes_at IS NOT
NULL (migration 0027): only pauses that end by themselves are in it, so a pass
with none due reads one empty index range.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from tortoise import connections
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app.accounts.actor import system_actor
from app.automation import rules
from app.clock import Clock
from app.prospects.models import ChangeCause
from app.sequences import lifecycle
from app.sequences.models import Enrollment
from app.sequences.stages import Move
from app.sequences.state import OUT_OF_OFFICE, SEQUENCE_INACTIVE, Stage

BATCH = 500
PAUSE_ENDED = "pause_ended"
"""The reason of the stage changes that resume them."""


def ended_query(now: datetime, batch: int) -> QuerySet[Enrollment]:
    """The oldest paused enrollments whose pause ended by ``now``: read through the
    partial index on (resumes_at, id)."""
    return Enrollment.filter(resumes_at__lte=now, stage=Stage.PAUSED).order_by("resumes_at", "id").limit(batch)


async def claim_ended(now: datetime, batch: int) -> list[Enrollment]:
    """``ended_query``'s enrollments, locked on PostgreSQL (FOR UPDATE SKIP LOCKED:
    two workers never resume one; a row an API call holds is left to the next
    pass); SQLite runs one writer at a time."""
    query = ended_query(now, batch)
    if connections.get("default").capabilities.dialect == "postgres":
        query = query.select_for_update(skip_locked=True)
    return await query


async def resume_ended(clock: Clock, *, batch: int = BATCH) -> int:
    """One bounded batch of ended pauses resumed, in one transaction (with the
    ENROLLMENT_STAGE_CHANGED rules of the resumptions); how many were claimed:
    call again while it is ``batch``."""
    now = clock.now()
    async with in_transaction():
        ended = await claim_ended(now, batch)
        if not ended:
            return 0
        active = await lifecycle.active_sequences(e.sequence_id for e in ended)
        inactive = [e.id for e in ended if e.sequence_id not in active]
        if inactive:
            await Enrollment.filter(id__in=inactive).update(resumes_at=None, paused_reason=SEQUENCE_INACTIVE)
        groups: defaultdict[tuple[int, ChangeCause], list[Enrollment]] = defaultdict(list)
        for enrollment in ended:
            if enrollment.sequence_id in active:
                groups[enrollment.organization_id, cause_of(enrollment)].append(enrollment)
        moves: list[Move] = []
        for (organization_id, cause), enrollments in groups.items():
            actor = system_actor(organization_id, clock)
            moves += await lifecycle.resume(enrollments, actor=actor, cause=cause, reason=PAUSE_ENDED)
        await rules.stages_entered(moves)
    return len(ended)


def cause_of(enrollment: Enrollment) -> ChangeCause:
    """OUT_OF_OFFICE for a pause an auto-reply set; USER for one someone set."""
    return ChangeCause.OUT_OF_OFFICE if enrollment.paused_reason == OUT_OF_OFFICE else ChangeCause.USER
