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
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
HEAD = 500
"""Due rows a claim reads in due order before ranking the rest (see ``claim``)."""
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


@dataclass
class InFlight:
    """A worker's attempts running, counted by endpoint and by organization."""

    endpoints: Counter[int] = field(default_factory=Counter)
    organizations: Counter[int] = field(default_factory=Counter)

    def start(self, delivery: WebhookDelivery) -> None:
        self.endpoints[delivery.endpoint_id] += 1
        self.organizations[delivery.organization_id] += 1

    def end(self, delivery: WebhookDelivery) -> None:
        for counts, key in ((self.endpoints, delivery.endpoint_id), (self.organizations, delivery.organization_id)):
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]


async def claim(
    now: datetime, *, limit: int, per_endpoint: int, per_organization: int, running: InFlight
) -> list[WebhookDelivery]:
    """Due PENDING deliveries of enabled endpoints, held for LEASE, with their
    endpoint and event: at most ``limit``, and at most ``per_endpoint`` to one
    endpoint and ``per_organization`` of one organization counting the
    ``running`` ones. The order is fair: each organization's deliveries are
    placed 1, 2, 3… after those it has running, one endpoint's after another's
    (each endpoint's first, then each one's second…), and the places go in
    turn, the longest due first among equals. So an organization's backlog
    never holds back another organization's first delivery, nor one endpoint's
    another endpoint's.

    Ranking every due row would sort the backlogs. Instead the HEAD rows due
    longest are read first, in the due index's order; an endpoint with
    ``per_endpoint`` rows among them has its first ones there, so only the other
    endpoints' later rows are ranked with the head, and a backlog is scanned
    past, not sorted. Endpoints and organizations at their limit are skipped.
    (Over 100,000 due rows of one endpoint a claim takes 15-32 ms; ranking them
    all takes 40-135 ms.)"""
    db = connections.get("default")
    postgres = db.capabilities.dialect == "postgres"
    params: list[object] = []

    def bind(value: object) -> str:
        params.append(value)
        return f"${len(params)}" if postgres else "?"

    def due(more: str) -> str:
        at = WebhookDelivery._meta.fields_map["next_attempt_at"].to_db_value(now, WebhookDelivery)
        where = f'd."state" = {bind(DeliveryState.PENDING.value)} AND d."next_attempt_at" <= {bind(at)} AND e."enabled"'
        for column, counts, most in (
            ("endpoint_id", running.endpoints, per_endpoint),
            ("organization_id", running.organizations, per_organization),
        ):
            if full := [key for key, count in counts.items() if count >= most]:
                where += f' AND d."{column}" NOT IN ({", ".join(bind(key) for key in full)})'
        return (
            'SELECT d."id", d."endpoint_id", d."organization_id", d."next_attempt_at" FROM "webhook_delivery" d '
            f'JOIN "webhook_endpoint" e ON e."id" = d."endpoint_id" WHERE {where}{more}'
        )

    def after_running(column: str, counts: Counter[int]) -> str:
        """What ``column``'s value has running: the offset of its places."""
        cases = " ".join(f"WHEN {bind(key)} THEN {bind(count)}" for key, count in counts.items())
        return f'CASE "{column}" {cases} ELSE 0 END' if cases else "0"

    # The parts in the order they are written, as SQLite binds its placeholders.
    head = due("") + f' ORDER BY d."next_attempt_at", d."id" LIMIT {bind(HEAD)}'
    last = f'SELECT "next_attempt_at", "id" FROM head ORDER BY "next_attempt_at", "id" LIMIT 1 OFFSET {bind(HEAD - 1)}'
    known = f'SELECT "endpoint_id" FROM head GROUP BY "endpoint_id" HAVING COUNT(*) >= {bind(per_endpoint)}'
    rest = due(  # nothing when "last" is empty: the head holds every due row
        ' AND d."next_attempt_at" >= (SELECT "next_attempt_at" FROM last)'
        ' AND (d."next_attempt_at", d."id") > (SELECT "next_attempt_at", "id" FROM last)'
        ' AND d."endpoint_id" NOT IN (SELECT "endpoint_id" FROM known)'
    )
    by_endpoint = (
        'SELECT "id", "organization_id", "next_attempt_at", '
        'ROW_NUMBER() OVER (PARTITION BY "endpoint_id" ORDER BY "next_attempt_at", "id") '
        f'+ {after_running("endpoint_id", running.endpoints)} AS "endpoint_place" FROM candidates'
    )
    by_organization = (
        'SELECT "id", "next_attempt_at", '
        'ROW_NUMBER() OVER (PARTITION BY "organization_id" ORDER BY "endpoint_place", "next_attempt_at", "id") '
        f'+ {after_running("organization_id", running.organizations)} AS "place" '
        f'FROM by_endpoint WHERE "endpoint_place" <= {bind(per_endpoint)}'
    )
    chosen = (
        f'SELECT "id" FROM by_organization WHERE "place" <= {bind(per_organization)} '
        f'ORDER BY "place", "next_attempt_at", "id" LIMIT {bind(limit)}'
    )
    rows = await db.execute_query_dict(
        f"WITH head AS ({head}), last AS ({last}), known AS ({known}), "
        f"candidates AS (SELECT * FROM head UNION ALL {rest}), "
        f"by_endpoint AS ({by_endpoint}), by_organization AS ({by_organization}) {chosen}",
        params,
    )
    claimed = await bulk.compare_and_set(
        WebhookDelivery,
        [row["id"] for row in rows],
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
