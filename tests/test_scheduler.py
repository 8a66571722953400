"""The scheduler pass: steps become messages and tasks on time, once, within windows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from arq import ArqRedis
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis
from tortoise.transactions import in_transaction

from app.accounts.models import Role
from app.clock import FrozenClock
from app.messaging.models import Message, MessageState
from app.prospects import service as prospects
from app.prospects.models import Task
from app.sequences import enrollments, scheduler, store
from app.sequences import service as sequences
from app.sequences.models import Enrollment, StageChange, StepType
from app.sequences.service import StepSpec
from app.sequences.windows import parse_window
from tasks import queue as send_queue
from tests.conftest import Org, remove_jobs, send_job_ids

STEPS = [
    StepSpec(StepType.EMAIL, 0, body="Hello {{ first_name }}", subject="Hi {{ first_name }}, about {{ company }}"),
    StepSpec(StepType.SMS, 86400, "Ping {{ first_name }}"),
    StepSpec(StepType.CALL, 3600, "Call {{ full_name }}"),
]


async def setup(
    org: Org,
    clock: FrozenClock,
    *,
    steps: list[StepSpec] = STEPS,
    window: object = None,
    people: list[dict[str, object]] | None = None,
) -> list[Enrollment]:
    from app import presets

    admin = org.actor(Role.ADMIN, clock)
    await presets.apply(actor=admin, name="lead-workflow")
    sequence = await sequences.create_sequence(
        actor=admin,
        name="Outreach",
        stop_on_reply=None,
        unresponsive_after_seconds=None,
        send_window=window,
        steps=steps,
        active=True,  # type: ignore[arg-type]
    )
    people = people or [
        {
            "first_name": "Ada",
            "last_name": "King",
            "company": "Engines",
            "email": "ada@client.example",
            "phone": "+12025550143",
            "owner_id": org.users[Role.AGENT].id,
        }
    ]
    created, errors = await prospects.create_prospects(actor=admin, inputs=people)
    assert not errors
    enrolled, errors = await enrollments.enroll(
        actor=admin,
        sequence_id=sequence.id,
        prospect_ids=[p.id for p in created],
        activate=None,
    )
    assert not errors
    return enrolled


async def test_a_three_step_sequence_runs_to_unresponsive(org: Org, clock: FrozenClock) -> None:
    [enrollment] = await setup(org, clock)
    start = clock.now()

    first = await scheduler.run_pass(clock)
    again = await scheduler.run_pass(clock)

    [email] = await Message.filter(enrollment_id=enrollment.id)
    assert first.queued == [email.id] and again.queued == []
    assert (email.channel, email.state, email.to_address) == ("EMAIL", "QUEUED", "ada@client.example")
    assert (email.subject, email.body) == ("Hi Ada, about Engines", "Hello Ada")
    await enrollment.refresh_from_db()
    assert enrollment.stage == "APPROACHING" and enrollment.due_at == start + timedelta(days=1)

    clock.advance(86400)
    await scheduler.run_pass(clock)
    sms = await Message.get(enrollment_id=enrollment.id, channel="SMS")
    assert (sms.body, sms.to_address) == ("Ping Ada", "+12025550143")

    clock.advance(3600)
    await scheduler.run_pass(clock)
    task = await Task.get(enrollment_id=enrollment.id)
    await enrollment.refresh_from_db()
    assert (task.kind, task.note, task.assignee_id) == ("CALL", "Call Ada King", org.users[Role.AGENT].id)
    assert enrollment.due_at is None and enrollment.current_step_id is None  # waiting for the call

    clock.advance(600)
    await prospects.complete_task(actor=org.actor(Role.AGENT, clock), task_id=task.id, note=None)
    await enrollment.refresh_from_db()
    assert enrollment.due_at == start + timedelta(days=7)  # a week after the last email step

    clock.advance(7 * 86400)
    await scheduler.run_pass(clock)
    await enrollment.refresh_from_db()
    assert enrollment.stage == "UNRESPONSIVE" and enrollment.finished_at == clock.now()
    stages = await StageChange.filter(enrollment_id=enrollment.id).order_by("id").values_list("to_stage", "reason")
    assert [tuple(s) for s in stages] == [
        ("STARTED", "enrolled"),
        ("APPROACHING", "step_ran"),
        ("UNRESPONSIVE", "timeout"),
    ]


async def test_a_step_due_outside_its_window_waits_for_the_opening(org: Org, clock: FrozenClock) -> None:
    clock._now = datetime(2026, 3, 7, 15, tzinfo=UTC)  # Saturday
    window = parse_window(["MON", "TUE", "WED", "THU", "FRI"], "09:00", "17:00", "America/New_York", ["w"])
    [enrollment] = await setup(org, clock, window=window)
    result = await scheduler.run_pass(clock)
    await enrollment.refresh_from_db()
    assert result.queued == [] and enrollment.due_at == datetime(2026, 3, 9, 13, tzinfo=UTC)  # Monday 09:00 EDT
    clock._now = datetime(2026, 3, 9, 13, tzinfo=UTC)
    assert len((await scheduler.run_pass(clock)).queued) == 1


@pytest.mark.parametrize(
    ("person", "stage", "reason"),
    [
        ({"first_name": "No", "email": "no@client.example", "phone": "+12025550143"}, "FAILED", "no_address"),
        ({"first_name": "Blocked", "email": "b@client.example"}, "OPTED_OUT", "channel_blocked"),
    ],
)
async def test_a_step_that_cannot_be_sent_finishes_the_enrollment(
    org: Org, clock: FrozenClock, person: dict[str, object], stage: str, reason: str
) -> None:
    [enrollment] = await setup(org, clock, people=[person])
    from app.prospects.models import Prospect

    if reason == "no_address":  # removed after enrolling, which refuses a prospect without it (NO_ADDRESS)
        await Prospect.filter(id=enrollment.prospect_id).update(email=None)
    if reason == "channel_blocked":
        await Enrollment.filter(id=enrollment.id).update(stage="STARTED")
        await Prospect.filter(id=enrollment.prospect_id).update(opted_out_channels=["EMAIL"])
    await scheduler.run_pass(clock)
    await enrollment.refresh_from_db()
    change = await StageChange.filter(enrollment_id=enrollment.id).order_by("-id").first()
    assert enrollment.stage == stage and change is not None and change.reason == reason
    assert not await Message.filter(enrollment_id=enrollment.id).exists()


async def test_a_missing_custom_field_used_as_a_number_fails_the_step_not_the_pass(
    org: Org, clock: FrozenClock
) -> None:
    """The step's message is kept FAILED with the template's problem, and the
    enrollment's stage change names it and the variable; nothing is queued."""
    steps = [StepSpec(StepType.SMS, 0, "About {{ custom.budget * 2 }}")]
    [enrollment] = await setup(org, clock, steps=steps)
    assert (await scheduler.run_pass(clock)).queued == []
    await enrollment.refresh_from_db()
    [message] = await Message.filter(enrollment_id=enrollment.id)
    change = await StageChange.filter(enrollment_id=enrollment.id).order_by("-id").first()
    assert enrollment.stage == "FAILED" and change is not None and change.reason == "template_undefined:custom.budget"
    assert (message.state, message.body, message.next_attempt_at) == ("FAILED", "About {{ custom.budget * 2 }}", None)
    assert message.error == (
        "A value the template reads is missing: the prospect has no custom field 'budget' (line 1, reading custom.budget)."
    )


async def test_leases_expire_to_uncertain_and_queued_messages_are_found_again(org: Org, clock: FrozenClock) -> None:
    [enrollment] = await setup(org, clock)
    [message_id] = (await scheduler.run_pass(clock)).queued
    assert await scheduler.queued_messages(clock) == []  # its job was enqueued a moment ago
    clock.advance(scheduler.RECOVER_AFTER.total_seconds())
    assert await scheduler.queued_messages(clock) == [message_id]  # still QUEUED: its job was lost
    await Message.filter(id=message_id).update(
        state=MessageState.SENDING, lease_until=clock.now() + timedelta(minutes=5)
    )
    clock.advance(301)
    assert await scheduler.expire_leases(clock) == 1
    message = await Message.get(id=message_id)
    assert message.state == "UNCERTAIN" and await scheduler.queued_messages(clock) == []
    assert enrollment.id == message.enrollment_id


@pytest.mark.postgres
async def test_two_concurrent_passes_claim_each_enrollment_once(org: Org, clock: FrozenClock) -> None:
    people = [{"first_name": f"P{i}", "email": f"p{i}@client.example"} for i in range(500)]
    await setup(org, clock, people=people, steps=[StepSpec(StepType.EMAIL, 0, "Hi", "s")])

    async def drain() -> list[int]:
        queued: list[int] = []
        while True:
            result = await scheduler.run_pass(clock, batch=50)
            queued += result.queued
            if result.claimed == 0:
                return queued

    first, second = await asyncio.gather(drain(), drain())
    assert len(first) + len(second) == 500 == len(set(first) | set(second))
    assert first and second  # both workers took a share
    assert await Message.all().count() == 500


async def test_the_due_query_reads_the_partial_due_index(database: str, clock: FrozenClock) -> None:
    """A pass's cost follows the due enrollments, not all of them: its query is
    answered from the partial index on due_at (finished enrollments are not in it)."""
    sql = store.due_query(clock.now(), scheduler.BATCH).sql(params_inline=True)
    async with in_transaction() as connection:
        if connection.capabilities.dialect == "postgres":
            await connection.execute_script("SET LOCAL enable_seqscan = off")  # tiny tables: ask what it can use
            plan = " ".join(row["QUERY PLAN"] for row in await connection.execute_query_dict(f"EXPLAIN {sql}"))
            [index] = await connection.execute_query_dict(
                "SELECT indexdef AS definition FROM pg_indexes WHERE indexname = 'enrollment_due_at_partial'"
            )
        else:
            plan = " ".join(row["detail"] for row in await connection.execute_query_dict(f"EXPLAIN QUERY PLAN {sql}"))
            [index] = await connection.execute_query_dict(
                "SELECT sql AS definition FROM sqlite_master WHERE name = 'enrollment_due_at_partial'"
            )
    assert "enrollment_due_at_partial" in plan
    assert "WHERE" in index["definition"] and "IS NOT NULL" in index["definition"]


async def test_a_blocks_messages_queued_by_two_passes_get_a_job_each(redis: Redis, clock: FrozenClock) -> None:
    """Message ids go to send jobs in blocks; a block whose first messages came from
    one pass and the rest from the next is enqueued twice, and the second part must
    not be taken for the first's job (it waited for the recovery, a second or more).
    Enqueuing messages that have their job already (the recovery) adds none."""
    queue = ArqRedis(connection_pool=redis.connection_pool)
    block = 10**9  # ids no other test makes: a shared Redis may hold other tests' jobs
    start = send_queue.SEND_BLOCK * block
    first, second = [start, start + 1], list(range(start + 2, start + send_queue.SEND_BLOCK))
    try:
        await send_queue.enqueue_sends(queue, first, clock)
        await send_queue.enqueue_sends(queue, second, clock)
        await send_queue.enqueue_sends(queue, first + second, clock)  # the recovery finds them all waiting
        await send_queue.enqueue_sends(queue, second, clock)
        queued = await queue.queued_jobs(queue_name=send_queue.QUEUE)
        jobs = [job for job in queued if job.function == "send_messages" and job.args[0][0] >= start]
        assert sorted(job.args[0] for job in jobs) == [first, second]
    finally:
        await remove_jobs(queue, await send_job_ids(queue, f"{block}:*"))


async def test_messages_held_by_a_killed_workers_job_get_a_new_job_within_the_recovery_epoch(
    redis: Redis, clock: FrozenClock
) -> None:
    """A job that a killed worker left in progress keeps its id (arq reruns it only after
    its timeout): enqueuing its messages again is a no-op until RECOVERY_EPOCH_SECONDS
    have passed, then they get a job of their own."""
    queue = ArqRedis(connection_pool=redis.connection_pool)
    block = 10**9 + 1  # ids no other test makes: a shared Redis may hold other tests' jobs
    messages = list(range(send_queue.SEND_BLOCK * block, send_queue.SEND_BLOCK * block + 3))
    clock.advance(-clock.now().timestamp() % 60)  # a minute's start: an epoch of a minute would not end below
    try:
        await send_queue.enqueue_sends(queue, messages, clock)
        [held] = await send_job_ids(queue, f"{block}:*")
        await queue.psetex(in_progress_key_prefix + held, 130_000, b"1")  # taken by a worker, then killed
        clock.advance(send_queue.RECOVERY_EPOCH_SECONDS - 1)
        await send_queue.enqueue_sends(queue, messages, clock)
        assert await send_job_ids(queue, f"{block}:*") == [held]
        clock.advance(1)
        await send_queue.enqueue_sends(queue, messages, clock)
        assert [args for job_id, args in await _send_jobs_with_args(queue, block) if job_id != held] == [messages]
    finally:
        await remove_jobs(queue, await send_job_ids(queue, f"{block}:*"))


async def _send_jobs_with_args(queue: ArqRedis, block: int) -> list[tuple[str, list[int]]]:
    ids_ = set(await send_job_ids(queue, f"{block}:*"))
    return [
        (job.job_id, job.args[0]) for job in await queue.queued_jobs(queue_name=send_queue.QUEUE) if job.job_id in ids_
    ]
