"""The arq worker: the scheduler, relay and webhook loops, and the send job.

Jobs take ids only and re-read state, so running one twice is harmless (a
message leaves QUEUED by compare-and-set); a send job takes a block of
message ids, sent as one batch. The schedule lives in the database
(SPEC R5.1): every SCHEDULER_INTERVAL the loop claims due enrollments, expires
send leases, and enqueues every QUEUED message that is due, which is how a job
lost with Redis is found again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from arq import ArqRedis, create_pool
from arq.jobs import Job
from arq.worker import Worker, func

from app import db
from app.clock import Clock, SystemClock
from app.config import Settings
from app.events import relay
from app.messaging import sending
from app.prospects import reminders
from app.redis import RedisLocation
from app.sequences import scheduler, templates
from app.webhooks.sender import Sender

QUEUE = "leadline:queue"
SEND_BLOCK = 100
"""Messages per send job at most (sent a sending.CHUNK at a time, so a killed worker
leaves at most a chunk per job UNCERTAIN): a job costs the worker ~4 ms of arq's
Redis work and a read of the organizations, so fewer, larger jobs leave more CPU
for the messages (10,000 steps: 11.7-13.2 s of worker CPU with blocks of 50,
10.5 with 100)."""
SEND_JOBS = 3
"""Send jobs a worker runs at once: while one gates or records its chunk, the
others keep the SMTP connections busy (2 left them idle a quarter of the time).
6 doubles what a killed worker leaves UNCERTAIN (300 messages) for no sure gain
(PostgreSQL, paired runs: mean 828 steps/s against 746 over six pairs one day,
1,349 against 1,340 over four another)."""
RECOVERY_EPOCH_SECONDS = 10
"""How long a send job's id stands for its messages. A job that a killed worker left
"in progress" before it claimed any of them (arq reruns it only after its timeout)
holds them this long at most (it was a minute): then the recovery gives them a new
job. Messages that wait this long behind a backlog get a second job, which finds them
claimed or sent."""
QUEUE_READ_LIMIT = 1000
"""Queued jobs a worker reads at each poll, starting those it can. A killed worker's
jobs stay at the head of the queue, "in progress", for arq's in-progress timeout (130 s
here); with arq's default of 100, a restarted worker that found 100 of them there read
nothing else and sat idle with hundreds of jobs queued behind (the crash test on a
shared Redis: 53 and 59 s without a send)."""
HEALTH_CHECK_SECONDS = 10
NUDGED_PASS_GAP = 0.05
"""Seconds at least between two scheduler passes, however often nudges come."""
logger = logging.getLogger("leadline.worker")


async def ping(ctx: dict[str, Any]) -> str:
    """Answers "pong": `leadline worker --check` proves a worker is taking jobs."""
    return "pong"


async def send_messages(ctx: dict[str, Any], message_ids: list[int]) -> int:
    """Sends a block of messages; how many it sent or settled."""
    states = await sending.send_batch(
        message_ids, transports=ctx["transports"], settings=ctx["settings"], clock=ctx["clock"]
    )
    ctx["relay_wake"].set()
    return len(states)


async def enqueue_sends(redis: ArqRedis, message_ids: list[int], clock: Clock) -> None:
    """One job per block of SEND_BLOCK consecutive message ids, with a job id made of
    the block, its first id and the RECOVERY_EPOCH: enqueuing the same messages again
    while their job waits or runs (the recovery of ``queued_messages`` finds messages
    still waiting for their jobs) is a no-op, and a block's ids queued by a later pass
    get a job of their own (with the block alone in the id they were taken for a
    duplicate and waited for the recovery). Two jobs for one message are harmless: a
    message leaves QUEUED once, by compare-and-set."""
    epoch = int(clock.now().timestamp() // RECOVERY_EPOCH_SECONDS)
    blocks: dict[int, list[int]] = {}
    for message_id in sorted(message_ids):
        blocks.setdefault(message_id // SEND_BLOCK, []).append(message_id)
    for block, block_ids in blocks.items():
        job_id = f"send:{block}:{block_ids[0]}:{epoch}"
        await redis.enqueue_job("send_messages", block_ids, _job_id=job_id, _queue_name=QUEUE)


async def scheduler_pass(redis: ArqRedis, clock: Clock) -> int:
    """One full pass: due steps queued, leases expired, due messages enqueued, due
    tasks announced (the relay loop numbers and publishes the events)."""
    expired = await scheduler.expire_leases(clock)
    if expired:
        logger.warning("%d message(s) left SENDING by a stopped worker are now UNCERTAIN", expired)
    claimed = 0
    while True:
        result = await scheduler.run_pass(clock)
        claimed += result.claimed
        await enqueue_sends(redis, result.queued, clock)
        if result.claimed < scheduler.BATCH:
            break
    await enqueue_sends(redis, await scheduler.queued_messages(clock), clock)
    while await reminders.announce_due(clock) == reminders.BATCH:
        pass
    return claimed


async def relay_pass(redis: ArqRedis, clock: Clock) -> tuple[int, int]:
    """Committed events numbered, published and owed to webhooks: (events, deliveries)."""
    published = owed = 0
    while True:
        events, deliveries = await relay.publish(redis, clock)
        published, owed = published + events, owed + deliveries
        if events < relay.BATCH:
            return published, owed


async def _until(wake: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):  # not wait_for, which can swallow a cancellation on 3.11
            await wake.wait()


async def _relay_loop(ctx: dict[str, Any]) -> None:
    """Runs the relay when woken (a nudge from any process, or this worker's own
    work) and at least every SCHEDULER_INTERVAL."""
    wake: asyncio.Event = ctx["relay_wake"]
    while True:
        wake.clear()
        try:
            _, owed = await relay_pass(ctx["redis"], ctx["clock"])
            if owed:
                ctx["webhook_wake"].set()
        except Exception as error:  # logged and retried; the log keeps every event
            db.log_failure(logger, "relay pass failed", error)
        await _until(wake, ctx["settings"].scheduler_interval)


async def _wake_on_nudges(redis: ArqRedis, *wakes: asyncio.Event) -> None:
    """Sets ``wakes`` on every nudge: a change committed elsewhere (an API write) may
    have events to relay and enrollments due now (an activated sequence, a resumed
    enrollment, a completed task), which then go at once, not at the next interval."""
    while True:
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(relay.WAKE_CHANNEL)
                while True:
                    if await pubsub.get_message(ignore_subscribe_messages=True, timeout=None):
                        for wake in wakes:
                            wake.set()
        except asyncio.CancelledError:
            raise
        except Exception:  # Redis away: the relay's interval goes on; listen again soon
            logger.warning("relay wake-ups lost; resubscribing", exc_info=True)
            await asyncio.sleep(1)


async def _webhook_loop(ctx: dict[str, Any]) -> None:
    """Starts due webhook deliveries in the sender's free slots: at once when the
    relay owes new ones or an attempt ends (attempts that end together are
    refilled by one pass), and every SCHEDULER_INTERVAL. It never waits for the
    attempts themselves, so a slow endpoint holds back only its own slots."""
    wake: asyncio.Event = ctx["webhook_wake"]
    interval: float = ctx["settings"].scheduler_interval
    while True:
        wake.clear()
        try:
            await ctx["webhooks"].start_due(ctx["clock"])
        except Exception as error:
            db.log_failure(logger, "webhook pass failed", error)
        await asyncio.sleep(min(interval, NUDGED_PASS_GAP))
        await _until(wake, interval - NUDGED_PASS_GAP)


async def _scheduler_loop(ctx: dict[str, Any]) -> None:
    """A pass every SCHEDULER_INTERVAL, and soon after a nudge (at most one pass
    per NUDGED_PASS_GAP however many nudges come)."""
    interval: float = ctx["settings"].scheduler_interval
    wake: asyncio.Event = ctx["scheduler_wake"]
    while True:
        wake.clear()
        try:
            await scheduler_pass(ctx["redis"], ctx["clock"])
            ctx["relay_wake"].set()
        except Exception as error:  # a failed pass is logged and retried next interval; the database keeps the work
            db.log_failure(logger, "scheduler pass failed", error)
        await asyncio.sleep(min(interval, NUDGED_PASS_GAP))
        await _until(wake, interval - NUDGED_PASS_GAP)


def create_worker(
    settings: Settings,
    location: RedisLocation,
    *,
    own_database: bool,
    handle_signals: bool,
    clock: Clock | None = None,
) -> Worker:
    """An arq worker with the scheduler loop. ``own_database``: it connects the
    ORM itself (the `worker` command); `dev` shares the API's connection."""
    templates.configure(settings)

    async def startup(ctx: dict[str, Any]) -> None:
        if own_database:
            await db.init(settings)
        ctx["settings"] = settings
        ctx["clock"] = clock or SystemClock()
        ctx["transports"] = sending.transports_for(settings)
        ctx["relay_wake"], ctx["webhook_wake"], ctx["scheduler_wake"] = (
            asyncio.Event(),
            asyncio.Event(),
            asyncio.Event(),
        )
        ctx["webhooks"] = Sender(settings, wake=ctx["webhook_wake"])
        ctx["loops"] = [
            asyncio.create_task(_scheduler_loop(ctx)),
            asyncio.create_task(_relay_loop(ctx)),
            asyncio.create_task(_wake_on_nudges(ctx["redis"], ctx["relay_wake"], ctx["scheduler_wake"])),
            asyncio.create_task(_webhook_loop(ctx)),
        ]

    async def shutdown(ctx: dict[str, Any]) -> None:
        for task in ctx.get("loops", []):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if "transports" in ctx:
            await ctx["transports"].close()
        if "webhooks" in ctx:
            await ctx["webhooks"].close()
        if own_database:
            await db.close()

    return Worker(
        # Send jobs keep no result, so a message's job id is free again once it ran.
        functions=[func(ping, keep_result=60), send_messages],
        queue_name=QUEUE,
        redis_settings=location.arq_settings(),
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=handle_signals,
        health_check_interval=HEALTH_CHECK_SECONDS,
        # Send jobs at once: each holds up to sending.CHUNK messages SENDING, which a
        # killed worker leaves UNCERTAIN; while one records its chunk, others send.
        max_jobs=SEND_JOBS,
        # On SIGTERM, sends in flight finish (and are recorded) before the worker stops.
        job_completion_wait=30,
        poll_delay=0.01,  # a finished job's slot is refilled within 10 ms, not 50
        queue_read_limit=QUEUE_READ_LIMIT,
        job_timeout=120,
        keep_result=0,
    )


async def check(location: RedisLocation, wait_seconds: float = 10.0) -> bool:
    """True when a running worker answers a ping job within ``wait_seconds``."""
    pool = await create_pool(location.arq_settings(), default_queue_name=QUEUE)
    try:
        job: Job | None = await pool.enqueue_job("ping", _queue_name=QUEUE)
        if job is None:
            return False
        try:
            return bool(await job.result(timeout=wait_seconds, poll_delay=0.1) == "pong")
        except TimeoutError:
            return False
    finally:
        await pool.aclose()
