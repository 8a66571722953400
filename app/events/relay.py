"""The relay (SPEC R10.2): the worker publishes numbered events to Redis, one
channel per organization, and turns them into webhook deliveries.

``publish`` takes the events after the relay position in cursor order, owes
them to the matching webhook endpoints, publishes them, and moves the position,
all in one transaction that first takes the relay row's write lock: one relay
at a time, each event's deliveries created once. Publishing happens before the
commit, so a failure after it publishes again (subscribers drop a cursor they
have seen) and never loses an event.

Any process that changes something calls ``nudge`` afterwards: the worker's
relay wakes at once instead of at its next interval.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from app.clock import Clock
from app.events.models import Event, EventRelay
from app.webhooks import deliveries

logger = logging.getLogger("leadline.relay")

WAKE_CHANNEL = "leadline:relay:wake"
BATCH = 1000


CHANNEL_PREFIX = "leadline:events:"


def channel(organization_id: int) -> str:
    return f"{CHANNEL_PREFIX}{organization_id}"


def organization_of(channel_name: str) -> int:
    return int(channel_name.removeprefix(CHANNEL_PREFIX))


FIELDS = (
    "id",
    "seq",
    "organization_id",
    "type",
    "prospect_id",
    "status_change_id",
    "stage_change_id",
    "message_id",
    "task_id",
)


def wire(event: Event) -> str:
    """An event as published: its columns, so subscribers need no database read."""
    row: dict[str, Any] = {name: getattr(event, name) for name in FIELDS}
    return json.dumps(row | {"at": event.at.isoformat(), "payload": event.payload}, separators=(",", ":"))


def unwire(data: bytes | str) -> Event:
    row = json.loads(data)
    return Event(**{name: row[name] for name in FIELDS}, at=datetime.fromisoformat(row["at"]), payload=row["payload"])


async def publish(redis: Redis, clock: Clock, *, limit: int = BATCH) -> tuple[int, int]:
    """Publishes the next events after the relay position: (events, webhook deliveries created)."""
    relay = await EventRelay.get_or_none(id=1)
    if relay is not None and not await Event.filter(seq__gt=relay.published_seq).exists():
        return 0, 0  # nothing new: no write, no lock (SQLite writers queue behind one)
    async with in_transaction():
        # The write lock first (a Postgres row lock; SQLite's database lock).
        if not await EventRelay.filter(id=1).update(published_seq=F("published_seq")):
            await EventRelay.create(id=1, published_seq=0)
        position = (await EventRelay.get(id=1)).published_seq
        events = await Event.filter(seq__gt=position).order_by("seq").limit(limit)
        if not events:
            return 0, 0
        owed = await deliveries.owe(events, clock.now())
        async with redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.publish(channel(event.organization_id), wire(event))
            await pipe.execute()
        await EventRelay.filter(id=1).update(published_seq=events[-1].seq)
    return len(events), owed


async def nudge(redis: Redis | None) -> None:
    """Wakes the relay (if there is a Redis to reach it through); a failure only
    delays it to its next interval."""
    if redis is None:
        return
    try:
        await redis.publish(WAKE_CHANNEL, b"1")
    except Exception:  # Redis away: the relay's own interval still runs
        logger.warning("could not wake the relay", exc_info=True)
