"""The worker's engine in-process: the loops it runs, that a nudge reaches them, and
the order in which it stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from arq import ArqRedis
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from app.clock import FrozenClock
from app.config import Settings
from app.events import relay
from app.events.models import Event, EventType
from app.redis import channel as redis_channel
from tasks.engine import Engine
from tests.conftest import Org

LOOPS = ["scheduler", "relay", "nudges", "webhooks"]


@pytest.fixture
async def engine(db: None, redis: Redis, clock: FrozenClock, tmp_path: Path) -> AsyncIterator[Engine]:
    """An engine whose loops pass once at start, then only when woken (their interval is an hour)."""
    settings = Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data"), "SCHEDULER_INTERVAL": "3600"})
    engine = Engine(settings, ArqRedis(connection_pool=redis.connection_pool), clock)
    try:
        yield engine
    finally:
        await engine.stop()


async def _relayed(pubsub: PubSub) -> list[int]:
    """The ids of the events in the next message the relay publishes (within seconds,
    where the loops' own interval is an hour)."""
    async with asyncio.timeout(10):
        while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)) is None:
            pass
    return [event.id for event in relay.unwire(message["data"])]


async def _event(org: Org, clock: FrozenClock) -> int:
    row = await Event.create(organization_id=org.id, type=EventType.PROSPECT_CREATED, at=clock.now(), payload={})
    return row.id


async def test_the_engine_runs_each_of_its_loops_from_start_to_stop(engine: Engine) -> None:
    await engine.start()
    await asyncio.sleep(0.1)  # a loop that ends on its own (one that failed to start) is done by now

    assert list(engine.running) == LOOPS
    assert [name for name, task in engine.running.items() if task.done()] == []

    await engine.stop()

    assert [name for name, task in engine.running.items() if not task.cancelled()] == []


async def test_a_nudge_wakes_the_relay_at_once(engine: Engine, org: Org, redis: Redis, clock: FrozenClock) -> None:
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(redis_channel(redis, relay.channel(org.id)))
        first = await _event(org, clock)
        await engine.start()
        assert await _relayed(pubsub) == [first]  # the relay's pass at start
        await asyncio.sleep(1)  # the scheduler's pass at start wakes the relay once more

        second = await _event(org, clock)
        assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5) is None  # the relay waits
        await relay.nudge(redis)

        assert await _relayed(pubsub) == [second]


async def test_stop_ends_every_loop_before_it_closes_what_they_use(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pass may start on a closed transport or sender: the loops end first."""
    loops_running_at: dict[str, list[str]] = {}

    def noting(what: str, close: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def closing() -> None:
            loops_running_at[what] = [name for name, task in engine.running.items() if not task.done()]
            await close()

        return closing

    await engine.start()
    monkeypatch.setattr(engine.transports, "close", noting("transports", engine.transports.close))
    monkeypatch.setattr(engine.webhooks, "close", noting("webhooks", engine.webhooks.close))
    await engine.stop()

    assert loops_running_at == {"transports": [], "webhooks": []}
