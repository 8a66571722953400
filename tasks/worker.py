"""The arq worker: the scheduler loop and the send job.

Jobs take ids only and re-read state, so running one twice is harmless (a
message leaves QUEUED by compare-and-set). The schedule lives in the database
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
from app.messaging import sending
from app.redis import RedisLocation
from app.sequences import scheduler

QUEUE = "leadline:queue"
HEALTH_CHECK_SECONDS = 10
logger = logging.getLogger("leadline.worker")


async def ping(ctx: dict[str, Any]) -> str:
    """Answers "pong": `leadline worker --check` proves a worker is taking jobs."""
    return "pong"


async def send_message(ctx: dict[str, Any], message_id: int) -> str | None:
    state = await sending.send(message_id, transports=ctx["transports"], settings=ctx["settings"], clock=ctx["clock"])
    return state.value if state else None


async def enqueue_sends(redis: ArqRedis, message_ids: list[int]) -> None:
    for message_id in message_ids:
        # One job id per message while it waits: a second enqueue of the same id is a no-op.
        await redis.enqueue_job("send_message", message_id, _job_id=f"send:{message_id}", _queue_name=QUEUE)


async def scheduler_pass(redis: ArqRedis, clock: Clock) -> int:
    """One full pass: due steps queued, leases expired, due messages enqueued."""
    expired = await scheduler.expire_leases(clock)
    if expired:
        logger.warning("%d message(s) left SENDING by a stopped worker are now UNCERTAIN", expired)
    claimed = 0
    while True:
        result = await scheduler.run_pass(clock)
        claimed += result.claimed
        await enqueue_sends(redis, result.queued)
        if result.claimed < scheduler.BATCH:
            break
    await enqueue_sends(redis, await scheduler.queued_messages(clock))
    return claimed


async def _scheduler_loop(ctx: dict[str, Any]) -> None:
    interval: float = ctx["settings"].scheduler_interval
    while True:
        try:
            await scheduler_pass(ctx["redis"], ctx["clock"])
        except Exception:  # a failed pass is logged and retried next interval; the database keeps the work
            logger.exception("scheduler pass failed")
        await asyncio.sleep(interval)


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

    async def startup(ctx: dict[str, Any]) -> None:
        if own_database:
            await db.init(settings)
        ctx["settings"] = settings
        ctx["clock"] = clock or SystemClock()
        ctx["transports"] = sending.transports_for(settings)
        ctx["scheduler"] = asyncio.create_task(_scheduler_loop(ctx))

    async def shutdown(ctx: dict[str, Any]) -> None:
        task = ctx.get("scheduler")
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if "transports" in ctx:
            await ctx["transports"].close()
        if own_database:
            await db.close()

    return Worker(
        # Send jobs keep no result, so a message's job id is free again once it ran.
        functions=[func(ping, keep_result=60), send_message],
        queue_name=QUEUE,
        redis_settings=location.arq_settings(),
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=handle_signals,
        health_check_interval=HEALTH_CHECK_SECONDS,
        max_jobs=100,
        # On SIGTERM, sends in flight finish (and are recorded) before the worker stops.
        job_completion_wait=30,
        poll_delay=0.05,
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
