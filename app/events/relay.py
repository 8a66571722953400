"""The relay (SPEC R10.2): the worker publishes numbered events to Redis, one
channel per organization, and turns them into webhook deliveries.

``publish`` numbers the committed events that have no cursor yet (app.events.log)
and commits that first; then, in one transaction that first takes the relay row's
write lock (one relay at a time, each event's deliveries created once), it takes
the events after the relay position in cursor order, owes them to the matching
webhook endpoints, publishes them (one message per organization and pass: its
events in cursor order), and moves the position. Every event published is
already committed, so a subscriber that confirmed its subscription and then read
the log has each event from one or the other (numbering and publishing in one
transaction let a subscriber that joined between the publish and the commit miss
events: in the log read they were not yet visible, and their publish had gone).
Publishing happens before the position's commit, so a failure after it publishes
again (subscribers drop a cursor they have seen) and never loses an event.

Any process that changes something calls ``nudge`` afterwards: the worker's
relay wakes at once instead of at its next interval.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from redis.asyncio import Redis
from tortoise import connections
from tortoise.transactions import in_transaction

from app.clock import Clock
from app.events import log
from app.events.models import Event, EventRelay
from app.redis import channel as redis_channel
from app.webhooks import deliveries

logger = logging.getLogger("leadline.relay")

WAKE_CHANNEL = "relay:wake"
BATCH = 1000


CHANNEL_PREFIX = "events:"


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


def unwire(data: bytes | str) -> list[Event]:
    """The events of one published message (an organization's events of one relay
    pass, in cursor order; a single event object is read as a list of one)."""
    rows = json.loads(data)
    return [
        Event(**{name: row[name] for name in FIELDS}, at=datetime.fromisoformat(row["at"]), payload=row["payload"])
        for row in (rows if isinstance(rows, list) else [rows])
    ]


_COLUMNS = '"id", "seq", "organization_id", "type"'
"""What the relay reads of each event besides its wire text (webhook deliveries need these)."""
_WIRED = {
    # Each event as published, as JSON text built by the database: its columns, so
    # subscribers need no read of their own (building it in the worker costs 5 % of its CPU).
    "postgres": "json_build_object({})::text".format(
        ", ".join(f"'{name}', \"{name}\"" for name in (*FIELDS, "at", "payload"))
    ),
    "sqlite": "json_object({}, 'payload', json(\"payload\"))".format(
        ", ".join(f"'{name}', \"{name}\"" for name in (*FIELDS, "at"))
    ),
}


async def publish(redis: Redis, clock: Clock, *, limit: int = BATCH) -> tuple[int, int]:
    """Numbers the events committed since the last pass and publishes the next ones
    after the relay position: (events, webhook deliveries created)."""
    [new] = await connections.get("default").execute_query_dict(_ANYTHING_NEW)
    if not (new["unsequenced"] or new["unpublished"]):
        return 0, 0  # no write, no lock (SQLite writers queue behind one)
    if new["unsequenced"]:
        await log.sequence(limit=limit)  # committed before anything is published
    async with in_transaction() as connection:
        postgres = connection.capabilities.dialect == "postgres"
        mark = "$1" if postgres else "?"
        # The write lock first (a Postgres row lock; SQLite's database lock).
        locked = await connection.execute_query_dict(
            f'UPDATE "event_relay" SET "published_seq" = "published_seq" WHERE "id" = {mark} RETURNING "published_seq"',
            [1],
        )
        position = int(locked[0]["published_seq"]) if locked else (await EventRelay.create(id=1)).published_seq
        marks = ("$1", "$2") if postgres else ("?", "?")
        rows = await connection.execute_query_dict(
            f'SELECT {_COLUMNS}, {_WIRED["postgres" if postgres else "sqlite"]} AS "wired" FROM "event" '
            f'WHERE "seq" > {marks[0]} ORDER BY "seq" LIMIT {marks[1]}',
            [position, limit],
        )
        if not rows:
            return 0, 0
        owed = await deliveries.owe(rows, clock.now())
        # One message per organization: its events of this pass, in cursor order.
        wired: dict[int, list[str]] = {}
        for row in rows:
            wired.setdefault(row["organization_id"], []).append(row["wired"])
        async with redis.pipeline(transaction=False) as pipe:
            for organization_id, events in wired.items():
                pipe.publish(redis_channel(redis, channel(organization_id)), f"[{','.join(events)}]")
            await pipe.execute()
        await EventRelay.filter(id=1).update(published_seq=rows[-1]["seq"])
    return len(rows), owed


_ANYTHING_NEW = (
    'SELECT (SELECT "id" FROM "event" WHERE "seq" IS NULL ORDER BY "id" LIMIT 1) IS NOT NULL AS "unsequenced", '
    'COALESCE((SELECT MAX("seq") FROM "event"), 0) > '
    'COALESCE((SELECT "published_seq" FROM "event_relay" WHERE "id" = 1), 0) AS "unpublished"'
)
"""Events to number, events to publish: one read when there is nothing to do, two index
probes whatever the statistics say: the first unsequenced id from the partial
index, the highest cursor from the unique index on seq. (An EXISTS is planned as a
scan of every event whenever the statistics think the rows it looks for are
common: 4-8 ms a pass, and the relay makes one at every wake.)"""


async def nudge(redis: Redis | None) -> None:
    """Wakes the relay (if there is a Redis to reach it through); a failure only
    delays it to its next interval."""
    if redis is None:
        return
    try:
        await redis.publish(redis_channel(redis, WAKE_CHANNEL), b"1")
    except Exception:  # Redis away: the relay's own interval still runs
        logger.warning("could not wake the relay", exc_info=True)
