"""The arq jobs. Each takes ids only and re-reads state, so running one twice is
harmless (a message leaves QUEUED by compare-and-set); what a job needs of the
worker it reads from the engine, through ``engine_of``."""

from __future__ import annotations

from typing import Any

from app.messaging import sending
from tasks.engine import Engine

ENGINE = "engine"
"""The key of the engine in arq's ctx, set by the worker's on_startup."""


def engine_of(ctx: dict[str, Any]) -> Engine:
    engine = ctx[ENGINE]
    assert isinstance(engine, Engine), "the worker's on_startup puts its engine in ctx"
    return engine


async def ping(ctx: dict[str, Any]) -> str:
    """Answers "pong": `leadline worker --check` proves a worker is taking jobs."""
    return "pong"


async def send_messages(ctx: dict[str, Any], message_ids: list[int]) -> int:
    """Sends a block of messages (tasks.queue.enqueue_sends); how many it sent or settled."""
    engine = engine_of(ctx)
    states = await sending.send_batch(
        message_ids, transports=engine.transports, settings=engine.settings, clock=engine.clock
    )
    engine.relay_wake.set()
    return len(states)
