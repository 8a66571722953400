"""TASK_DUE (R10): the worker announces each open task once its due time has
passed, exactly once (a compare-and-set on ``due_announced_at``), with the
event in the same transaction."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from app import bulk
from app.clock import Clock
from app.events import log
from app.events.models import EventType
from app.prospects.events import task_event
from app.prospects.models import Task

BATCH = 500


async def announce_due(clock: Clock, *, batch: int = BATCH) -> int:
    """Appends TASK_DUE for up to ``batch`` open tasks now due; how many."""
    now = clock.now()
    query = Task.filter(due_announced_at=None, completed_at=None, due_at__lte=now).order_by("due_at", "id")
    due = [task.id for task in await query.limit(batch).only("id")]
    async with in_transaction():
        taken = await bulk.compare_and_set(
            Task, due, expect={"due_announced_at": None}, values={"due_announced_at": now}
        )
        tasks = await Task.filter(id__in=taken).order_by("due_at", "id")
        await log.record(task_event(EventType.TASK_DUE, task, now) for task in tasks)
    return len(taken)
