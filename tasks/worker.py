"""The arq worker. Jobs take ids only and re-read state, so running one twice is harmless.

The scheduler pass (SPEC R5.1) joins this worker with the sequence engine.
"""

from __future__ import annotations

from typing import Any

from arq import create_pool
from arq.jobs import Job
from arq.worker import Worker

from app import db
from app.config import Settings
from app.redis import RedisLocation

QUEUE = "leadline:queue"
HEALTH_CHECK_SECONDS = 10


async def ping(ctx: dict[str, Any]) -> str:
    """Answers "pong": `leadline worker --check` proves a worker is taking jobs."""
    return "pong"


def create_worker(settings: Settings, location: RedisLocation, *, own_database: bool, handle_signals: bool) -> Worker:
    """An arq worker. ``own_database``: it connects the ORM itself (the `worker`
    command); `dev` shares the API's connection instead."""

    async def startup(ctx: dict[str, Any]) -> None:
        if own_database:
            await db.init(settings)

    async def shutdown(ctx: dict[str, Any]) -> None:
        if own_database:
            await db.close()

    return Worker(
        functions=[ping],
        queue_name=QUEUE,
        redis_settings=location.arq_settings(),
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=handle_signals,
        health_check_interval=HEALTH_CHECK_SECONDS,
        max_jobs=50,
        job_timeout=300,
        keep_result=60,
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
