"""The arq worker, assembled: the jobs (tasks.jobs) on the queue (tasks.queue),
with the engine (tasks.engine) started on startup and stopped on shutdown, and
its metrics endpoint (app.observability.endpoint) when WORKER_METRICS_PORT is set."""

from __future__ import annotations

from typing import Any

from arq import create_pool
from arq.jobs import Job
from arq.worker import Worker, func

from app.clock import Clock, SystemClock
from app.config import Settings
from app.observability import metrics
from app.observability.backlog import BacklogGauges
from app.observability.endpoint import WorkerEndpoint
from app.redis import RedisLocation
from app.sequences import templates
from tasks import jobs
from tasks.engine import Engine
from tasks.queue import QUEUE

METRICS = "metrics"

SEND_JOBS = 3
"""Send jobs a worker runs at once: while one gates or records its chunk, the
others keep the SMTP connections busy. More would multiply what a killed worker
leaves UNCERTAIN for no sure gain in throughput."""
QUEUE_READ_LIMIT = 1000
"""Queued jobs a worker reads at each poll, starting those it can. A killed worker's
jobs stay at the head of the queue, "in progress", for arq's in-progress timeout (130 s
here); with arq's default of 100, a restarted worker that found 100 of them there would
read nothing else and sit idle with jobs queued behind."""
HEALTH_CHECK_SECONDS = 10


def create_worker(
    settings: Settings,
    location: RedisLocation,
    *,
    own_database: bool,
    handle_signals: bool,
    clock: Clock | None = None,
) -> Worker:
    """An arq worker running the engine. ``own_database``: it connects the ORM
    itself (the `worker` command); `dev` shares the API's connection."""
    templates.configure(settings)

    async def startup(ctx: dict[str, Any]) -> None:
        engine = Engine(settings, ctx["redis"], clock or SystemClock(), own_database=own_database)
        ctx[jobs.ENGINE] = engine
        await engine.start()
        if settings.worker_metrics_port is not None:
            ctx[METRICS] = endpoint = WorkerEndpoint(settings, BacklogGauges(engine.clock))
            await endpoint.start(settings.worker_metrics_port)

    async def shutdown(ctx: dict[str, Any]) -> None:
        if METRICS in ctx:
            await ctx[METRICS].close()
        if jobs.ENGINE in ctx:  # else the startup failed before it made one
            await jobs.engine_of(ctx).stop()
        metrics.process_stopped(settings.prometheus_multiproc_dir)

    return Worker(
        # Send jobs keep no result, so a message's job id is free again once it ran.
        functions=[func(jobs.ping, keep_result=60), jobs.send_messages],
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
