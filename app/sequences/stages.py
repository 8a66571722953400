"""The one writer of stage changes (SPEC R4.2): an enrollment's StageChange, its
STAGE_CHANGED event and, when the change finishes the enrollment, the cancelling
of its messages still queued (R6.4: they never go out).

The API's verbs, enrolling, the scheduler's pass and the inbound paths all
record through ``record``, for one enrollment or a batch of any size, in the
caller's transaction. It decides nothing (``app.sequences.state`` does) and
runs no automation: a caller fires the ENROLLMENT_STAGE_CHANGED rules after,
with the moves it recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app import bulk
from app.accounts.actor import Actor
from app.events import log
from app.messaging.models import Message, MessageState
from app.prospects.models import ChangeCause
from app.sequences.events import stage_changed_row
from app.sequences.models import StageChange
from app.sequences.state import FINISHED, Stage


@dataclass(slots=True)
class Move:
    """One enrollment's stage change: who made it, and from which stage to which."""

    actor: Actor
    enrollment_id: int
    prospect_id: int
    sequence_id: int
    before: Stage | None
    """None: the enrollment is new."""
    to: Stage


async def record(moves: Sequence[Move], *, cause: ChangeCause, reason: str, now: datetime) -> None:
    """Writes ``moves`` (their enrollments' rows are the caller's, saved already):
    one INSERT of stage changes and one of their events whatever their number, and
    one UPDATE cancelling the queued messages of those that finished."""
    if not moves:
        return
    rows = [
        {
            "organization_id": move.actor.organization_id,
            "enrollment_id": move.enrollment_id,
            "from_stage": move.before,
            "to_stage": move.to,
            "cause": cause.value,
            "reason": reason,
            "actor_id": move.actor.user_id,
            "at": now,
        }
        for move in moves
    ]
    change_ids = await bulk.insert_returning(StageChange, rows)
    await log.record(
        stage_changed_row(row | {"id": change_id}, move.prospect_id, move.sequence_id)
        for row, change_id, move in zip(rows, change_ids, moves, strict=True)
    )
    if finished := [move.enrollment_id for move in moves if move.to in FINISHED]:
        await Message.filter(enrollment_id__in=finished, state=MessageState.QUEUED).update(
            state=MessageState.CANCELLED, error="the enrollment finished before it was sent"
        )
