"""The engine: the worker's long-running loops and what they share.

The schedule lives in the database (SPEC R5.1): every SCHEDULER_INTERVAL the
scheduler loop claims due enrollments, expires send leases and enqueues every
QUEUED message that is due, which is how a job lost with Redis is found again.
The relay loop numbers and publishes committed events and owes them to webhooks;
the webhook loop attempts the deliveries due; the nudge listener wakes the
scheduler and the relay when another process committed a change.

``Engine.loops`` lists every loop and how they wake one another; ``start`` runs
them, ``stop`` ends them before it closes what they use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from arq import ArqRedis
from redis.asyncio import Redis

from app import db
from app.clock import Clock, SystemClock
from app.config import Settings
from app.events import relay
from app.messaging import sending
from app.messaging.transports import Transports
from app.observability import metrics
from app.prospects import reminders
from app.redis import channel as redis_channel
from app.sequences import pauses, scheduler
from app.webhooks.sender import Sender
from tasks.queue import enqueue_sends

NUDGED_PASS_GAP = 0.05
"""Seconds at least between two passes of a loop, however often it is woken."""
logger = logging.getLogger("leadline.worker")


async def scheduler_pass(redis: ArqRedis, clock: Clock) -> int:
    """One full pass: ended pauses resumed, due steps queued (a resumed enrollment's
    overdue step among them), leases expired, due messages enqueued, due tasks
    announced (the relay loop numbers and publishes the events)."""
    expired = await scheduler.expire_leases(clock)
    if expired:
        logger.warning("%d message(s) left SENDING by a stopped worker are now UNCERTAIN", expired)
    while await pauses.resume_ended(clock) == pauses.BATCH:
        pass
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


async def relay_pass(redis: Redis, clock: Clock) -> tuple[int, int]:
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


async def scheduler_loop(
    redis: ArqRedis, clock: Clock, interval: float, *, wake: asyncio.Event, relay_wake: asyncio.Event
) -> None:
    """A pass every ``interval``, and soon after ``wake`` is set (at most one pass
    per NUDGED_PASS_GAP however often); after each, the relay is woken."""
    while True:
        wake.clear()
        try:
            with metrics.timing_scheduler_pass():
                await scheduler_pass(redis, clock)
            relay_wake.set()
        except Exception as error:  # a failed pass is logged and retried next interval; the database keeps the work
            db.log_failure(logger, "scheduler pass failed", error)
        await asyncio.sleep(min(interval, NUDGED_PASS_GAP))
        await _until(wake, interval - NUDGED_PASS_GAP)


async def relay_loop(
    redis: Redis, clock: Clock, interval: float, *, wake: asyncio.Event, webhook_wake: asyncio.Event
) -> None:
    """Runs the relay when ``wake`` is set and at least every ``interval``; the
    webhook loop is woken when the relay owes new deliveries."""
    while True:
        wake.clear()
        try:
            _, owed = await relay_pass(redis, clock)
            if owed:
                webhook_wake.set()
        except Exception as error:  # logged and retried; the log keeps every event
            db.log_failure(logger, "relay pass failed", error)
        await _until(wake, interval)


async def nudge_listener(redis: Redis, *wakes: asyncio.Event) -> None:
    """Sets ``wakes`` on every nudge: a change committed elsewhere (an API write) may
    have events to relay and enrollments due now (an activated sequence, a resumed
    enrollment, a completed task), which then go at once, not at the next interval."""
    while True:
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(redis_channel(redis, relay.WAKE_CHANNEL))
                while True:
                    if await pubsub.get_message(ignore_subscribe_messages=True, timeout=None):
                        for wake in wakes:
                            wake.set()
        except asyncio.CancelledError:
            raise
        except Exception:  # Redis away: the relay's interval goes on; listen again soon
            logger.warning("relay wake-ups lost; resubscribing", exc_info=True)
            await asyncio.sleep(1)


async def webhook_loop(webhooks: Sender, clock: Clock, interval: float, *, wake: asyncio.Event) -> None:
    """Starts due webhook deliveries in the sender's free slots: at once when
    ``wake`` is set (the relay owes new ones, or an attempt ended; attempts that end
    together are refilled by one pass), and every ``interval``. It never waits for
    the attempts themselves, so a slow endpoint holds back only its own slots."""
    while True:
        wake.clear()
        try:
            await webhooks.start_due(clock)
        except Exception as error:
            db.log_failure(logger, "webhook pass failed", error)
        await asyncio.sleep(min(interval, NUDGED_PASS_GAP))
        await _until(wake, interval - NUDGED_PASS_GAP)


@dataclass
class Engine:
    """The worker's loops and what they share: settings, the clock, arq's Redis
    pool, the message transports (used by send jobs), the webhook sender and the
    events by which one loop, a nudge or a job wakes another. ``own_database``: it
    connects the ORM itself (the `worker` command); `dev` shares the API's."""

    settings: Settings
    redis: ArqRedis
    clock: Clock = field(default_factory=SystemClock)
    own_database: bool = False
    scheduler_wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    relay_wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    webhook_wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    transports: Transports = field(init=False)
    webhooks: Sender = field(init=False)
    running: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)
    """The loops' tasks by name, in the order they started."""

    def __post_init__(self) -> None:
        self.transports = sending.transports_for(self.settings)
        self.webhooks = Sender(self.settings, wake=self.webhook_wake)

    def loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        """Every loop of the engine, by name, wired to the events that wake it."""
        interval = self.settings.scheduler_interval
        return {
            "scheduler": scheduler_loop(
                self.redis, self.clock, interval, wake=self.scheduler_wake, relay_wake=self.relay_wake
            ),
            "relay": relay_loop(self.redis, self.clock, interval, wake=self.relay_wake, webhook_wake=self.webhook_wake),
            "nudges": nudge_listener(self.redis, self.relay_wake, self.scheduler_wake),
            "webhooks": webhook_loop(self.webhooks, self.clock, interval, wake=self.webhook_wake),
        }

    async def start(self) -> None:
        """Connects the database (if it is the engine's own), then starts every loop."""
        if self.own_database:
            await db.init(self.settings)
        for name, loop in self.loops().items():
            self.running[name] = asyncio.create_task(loop, name=f"engine:{name}")

    async def stop(self) -> None:
        """Ends the loops first, so that no pass starts once anything is closed; then
        the transports close, the webhook attempts in flight end and are recorded, and
        last the database closes (if it is the engine's own). Safe after a start that
        failed part way."""
        for task in self.running.values():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.transports.close()
        await self.webhooks.close()
        if self.own_database:
            await db.close()
