"""The engine's hot statements keep their plans when the statistics are stale:
Postgres only. Each case is a table whose statistics were taken before it
changed (as in a campaign's first minute, before autovacuum analyzes it), a
statement whose plan could read every row of it from such statistics, and the
plan it must have."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import pytest
from tortoise import connections
from tortoise.transactions import in_transaction

from app import bulk
from app.clock import FrozenClock
from app.events import log, relay
from app.events.models import EventType
from app.messaging.models import Message, MessageState
from app.prospects.events import prospect_event
from app.sequences import scheduler
from app.sequences.models import StepType
from app.sequences.service import StepSpec
from tests.conftest import make_org
from tests.test_scheduler import setup

pytestmark = pytest.mark.postgres


@contextmanager
def statements_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, list[Any]]]]:
    """The statements run meanwhile, with their parameters, as asyncpg sends them
    (inside transactions too, which run on connections of their own)."""
    statements: list[tuple[str, list[Any]]] = []
    with monkeypatch.context() as patch:
        for name in ("execute", "fetch"):
            run = getattr(asyncpg.Connection, name)

            async def record(self: asyncpg.Connection, sql: str, *args: Any, _run: Any = run, **kwargs: Any) -> Any:
                statements.append((sql, list(args)))
                return await _run(self, sql, *args, **kwargs)

            patch.setattr(asyncpg.Connection, name, record)
        yield statements


async def plan_of(sql: str, params: list[Any] | None = None, *, seqscan: bool = True) -> str:
    async with in_transaction() as connection:
        if not seqscan:  # small tables: ask which indexes the planner would take
            await connection.execute_script("SET LOCAL enable_seqscan = off")
        rows = await connection.execute_query_dict(f"EXPLAIN {sql}", params or [])
    return "\n".join(row["QUERY PLAN"] for row in rows)


async def test_the_relay_finds_nothing_new_by_index_after_stale_statistics(database: str, clock: FrozenClock) -> None:
    org = await make_org("Acme", clock)
    await log.record(
        prospect_event(EventType.PROSPECT_CREATED, org.id, n, clock.now(), source="test") for n in range(3000)
    )
    db = connections.get("default")
    await db.execute_script("ANALYZE event")  # every event unsequenced, as far as the statistics know
    numbering = await plan_of(log.NUMBER_POSTGRES, [1000])
    assert "Seq Scan" not in numbering and "event_unsequenced" in numbering, numbering
    assert "Index Scan using event_pkey" in numbering, numbering  # each numbered event found by id
    assert await log.sequence(limit=5000) == 3000

    plan = await plan_of(relay._ANYTHING_NEW)
    assert "Seq Scan" not in plan and "event_unsequenced" in plan, plan  # was: a scan of every event


async def test_the_claim_goes_by_primary_key_while_a_campaign_fills_the_queue(
    database: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await make_org("Acme", clock)
    db = connections.get("default")
    await db.execute_script("ANALYZE message")  # analyzed while empty
    people = [{"first_name": f"P{i}", "email": f"p{i}@client.example"} for i in range(600)]
    await setup(org, clock, people=people, steps=[StepSpec(StepType.EMAIL, 0, "Hi", "s")])
    while (await scheduler.run_pass(clock)).claimed:
        pass
    queued = await Message.filter(state=MessageState.QUEUED).order_by("id").values_list("id", flat=True)
    assert len(queued) == 600

    with statements_run(monkeypatch) as statements:
        claimed = await bulk.compare_and_set(
            Message,
            queued[:50],  # type: ignore[arg-type]
            expect={"state": MessageState.QUEUED},
            at_most={"next_attempt_at": clock.now()},
            values={"state": MessageState.SENDING},
        )
    assert len(claimed) == 50
    [(sql, params)] = statements

    plan = await plan_of(sql, params, seqscan=False)
    assert "message_pkey" in plan, plan  # was: the index on (state, next_attempt_at), every QUEUED row


async def test_the_scheduler_moves_enrollments_on_by_primary_key_while_many_are_due(
    database: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await make_org("Acme", clock)
    await connections.get("default").execute_script("ANALYZE enrollment")  # analyzed while none was due
    people = [{"first_name": f"P{i}", "email": f"p{i}@client.example"} for i in range(600)]
    await setup(org, clock, people=people, steps=[StepSpec(StepType.EMAIL, 0, "Hi", "s")])

    with statements_run(monkeypatch) as statements:
        assert (await scheduler.run_pass(clock, batch=500)).claimed == 500
    [(sql, params)] = [(sql, params) for sql, params in statements if sql.startswith('UPDATE "enrollment"')]

    plan = await plan_of(sql, params, seqscan=False)
    # was: the due index, every due enrollment read and filtered by the batch's ids
    assert "enrollment_pkey" in plan and "enrollment_due_at_partial" not in plan, plan
