"""Webhook deliveries: owed when the relay publishes an event, then attempted by
the worker on the schedule the database holds (SPEC R10.3).

A delivery is PENDING until an attempt succeeds (SUCCEEDED) or the retries run
out or the endpoint answers 410 (DEAD). The worker claims due deliveries by
moving their next attempt a lease ahead (compare-and-set), so two workers never
attempt one at once and a killed worker's claim lapses by itself. Deliveries to
one endpoint have no order among themselves (a retry alone reorders them).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.transactions import in_transaction

from app import bulk
from app.webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint

RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
"""After the first attempt fails: the Standard Webhooks schedule, about 28 hours
over 8 attempts in all; each delay gets ±20 % jitter."""
JITTER = 0.2
LEASE = timedelta(minutes=2)
"""How long a claimed delivery is held: longer than one attempt can take
(WEBHOOK_TIMEOUT_SECONDS is at most 60)."""


async def owe(events: Sequence[Mapping[str, Any]], now: datetime) -> int:
    """Creates a PENDING delivery of each event (a row: id, organization_id, type) to
    each enabled endpoint of its organization that wants its type; how many."""
    organizations = {event["organization_id"] for event in events}
    endpoints = await WebhookEndpoint.filter(organization_id__in=organizations, enabled=True)
    if not endpoints:
        return 0
    rows = [
        {
            "organization_id": event["organization_id"],
            "endpoint_id": endpoint.id,
            "event_id": event["id"],
            "state": DeliveryState.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for event in events
        for endpoint in endpoints
        if endpoint.organization_id == event["organization_id"]
        and (not endpoint.event_types or event["type"] in endpoint.event_types)
    ]
    await bulk.insert_rows(WebhookDelivery, rows)
    return len(rows)


async def claim(now: datetime, *, limit: int, per_endpoint: int, running: Mapping[int, int]) -> list[WebhookDelivery]:
    """Due PENDING deliveries of enabled endpoints, held for LEASE, with their
    endpoint and event: at most ``limit``, and at most ``per_endpoint`` to one
    endpoint counting the ``running`` ones (endpoint id: attempts in flight), the
    longest due first. Each endpoint's earliest deliveries are ranked before the
    limit applies, so one endpoint's backlog never hides another's due delivery.

    The price is a scan of the due rows: a backlog builds behind an endpoint that
    fails (until its retries move it on), and that endpoint is then usually at
    its limit here, so its rows are only skipped, not ranked (100,000 due rows
    of one endpoint: a claim that skips them takes 9 ms on PostgreSQL and 15 ms
    on SQLite, one that ranks them 35 and 140 ms)."""
    db = connections.get("default")
    postgres = db.capabilities.dialect == "postgres"
    params: list[object] = []

    def bind(value: object) -> str:
        params.append(value)
        return f"${len(params)}" if postgres else "?"

    due_at = WebhookDelivery._meta.fields_map["next_attempt_at"].to_db_value(now, WebhookDelivery)
    conditions = f'd."state" = {bind(DeliveryState.PENDING.value)} AND d."next_attempt_at" <= {bind(due_at)}'
    full = [endpoint_id for endpoint_id, count in running.items() if count >= per_endpoint]
    if full:
        conditions += f' AND d."endpoint_id" NOT IN ({", ".join(bind(endpoint_id) for endpoint_id in full)})'
    rows = await db.execute_query_dict(
        'SELECT "id", "endpoint_id" FROM ('
        'SELECT d."id", d."endpoint_id", d."next_attempt_at", '
        'ROW_NUMBER() OVER (PARTITION BY d."endpoint_id" ORDER BY d."next_attempt_at", d."id") AS "place" '
        'FROM "webhook_delivery" d JOIN "webhook_endpoint" e ON e."id" = d."endpoint_id" '
        f'WHERE {conditions} AND e."enabled") AS due '
        f'WHERE "place" <= {bind(per_endpoint)} ORDER BY "next_attempt_at", "id" LIMIT {bind(limit + sum(running.values()))}',
        params,
    )
    taken = dict(running)
    chosen: list[int] = []
    for row in rows:
        endpoint_id = row["endpoint_id"]
        if taken.get(endpoint_id, 0) < per_endpoint and len(chosen) < limit:
            taken[endpoint_id] = taken.get(endpoint_id, 0) + 1
            chosen.append(row["id"])
    claimed = await bulk.compare_and_set(
        WebhookDelivery,
        chosen,
        expect={"state": DeliveryState.PENDING},
        at_most={"next_attempt_at": now},
        values={"next_attempt_at": now + LEASE},
    )
    if not claimed:
        return []
    return await WebhookDelivery.filter(id__in=claimed).select_related("endpoint", "event").order_by("id")


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def retry_at(attempts: int, now: datetime, rng: random.Random) -> datetime | None:
    """When to try again after ``attempts`` failed attempts; None when they are spent."""
    if attempts > len(RETRY_DELAYS):
        return None
    delay = RETRY_DELAYS[attempts - 1]
    return now + delay * (1 + rng.uniform(-JITTER, JITTER))


async def record(delivery: WebhookDelivery, outcome: Outcome, now: datetime, rng: random.Random) -> None:
    """An attempt's result: SUCCEEDED, retried later, or DEAD (410 also disables the endpoint)."""
    attempts = delivery.attempts + 1
    changes: dict[str, object] = {
        "attempts": attempts,
        "last_status_code": outcome.status_code,
        "last_error": outcome.error[:300] if outcome.error else None,
    }
    if outcome.succeeded:
        changes |= {"state": DeliveryState.SUCCEEDED, "delivered_at": now, "next_attempt_at": None}
    else:
        next_at = None if outcome.gone else retry_at(attempts, now, rng)
        changes |= {"state": DeliveryState.PENDING if next_at else DeliveryState.DEAD, "next_attempt_at": next_at}
    async with in_transaction():
        await WebhookDelivery.filter(id=delivery.id).update(**changes)
        if outcome.gone:
            await WebhookEndpoint.filter(id=delivery.endpoint_id).update(
                enabled=False, disabled_reason=f"The endpoint answered 410 Gone on {now.isoformat()}."
            )
