"""The worker's gauges that come from the database, read when the worker's metrics
are scraped: due enrollments and the oldest's lateness, the relay's lag, webhook
deliveries pending and dead.

Each is one or two reads through an index (the scheduler's due index, the event
log's unsequenced index and unique cursor, the deliveries' (state, next attempt)
index) and counts at most COUNT_CAP rows, so a scrape costs a few milliseconds
however large the backlog; past the cap a count reads COUNT_CAP ("at least").
A scrape reads them at most once per FRESH_SECONDS (scrapes in between get the
last values) and waits READ_SECONDS at most, so neither a scrape storm nor a
slow database holds the worker's event loop: the reads are awaited like any
query, and a scrape that times out shows the previous values with
``leadline_backlog_read_failed`` 1.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from app.clock import Clock
from app.events.models import Event, EventRelay
from app.sequences.store import due_query
from app.webhooks.models import DeliveryState, WebhookDelivery

COUNT_CAP = 10_000
FRESH_SECONDS = 5.0
READ_SECONDS = 2.0
logger = logging.getLogger("leadline.metrics")


@dataclass
class Backlog:
    due_enrollments: int = 0
    oldest_due_seconds: float = 0.0
    relay_lag_seconds: float = 0.0
    webhooks_pending: int = 0
    webhooks_dead: int = 0


def _age(now: datetime, then: datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then is not None else 0.0


async def read(clock: Clock) -> Backlog:
    """The backlog now (five indexed reads, each of COUNT_CAP rows at most)."""
    now = clock.now()
    due_ids = await due_query(now, COUNT_CAP).values_list("id", flat=True)
    oldest_due = await due_query(now, 1).values_list("due_at", flat=True)
    pending = await WebhookDelivery.filter(state=DeliveryState.PENDING).limit(COUNT_CAP).values_list("id", flat=True)
    dead = await WebhookDelivery.filter(state=DeliveryState.DEAD).limit(COUNT_CAP).values_list("id", flat=True)
    return Backlog(
        due_enrollments=len(due_ids),
        oldest_due_seconds=_age(now, cast(datetime, oldest_due[0]) if oldest_due else None),
        relay_lag_seconds=_age(now, await oldest_unpublished()),
        webhooks_pending=len(pending),
        webhooks_dead=len(dead),
    )


async def oldest_unpublished() -> datetime | None:
    """When the oldest event not yet published happened: the first unnumbered one,
    else the first numbered past the relay's position."""
    unnumbered = await Event.filter(seq__isnull=True).order_by("id").limit(1).values_list("at", flat=True)
    if unnumbered:
        return cast(datetime, unnumbered[0])
    position = await EventRelay.filter(id=1).values_list("published_seq", flat=True)
    after = position[0] if position else 0
    first = await Event.filter(seq__gt=after).order_by("seq").limit(1).values_list("at", flat=True)
    return cast(datetime, first[0]) if first else None


class BacklogGauges(Collector):
    """The last backlog read, as gauges; ``refresh`` reads it again when it is stale."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.backlog = Backlog()
        self.read_at = float("-inf")
        self.failed = False
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:  # scrapes at once share one read
            if time.monotonic() - self.read_at < FRESH_SECONDS:
                return
            try:
                async with asyncio.timeout(READ_SECONDS):
                    self.backlog = await read(self.clock)
                self.failed = False
            except Exception as error:  # the scrape still answers, with the last values
                self.failed = True
                logger.warning("could not read the backlog for metrics (%s)", type(error).__name__)
            self.read_at = time.monotonic()

    def collect(self) -> Iterable[Metric]:
        b = self.backlog
        yield GaugeMetricFamily(
            "leadline_enrollments_due",
            f"Running enrollments whose step is due and not yet claimed (at most {COUNT_CAP}).",
            value=b.due_enrollments,
        )
        yield GaugeMetricFamily(
            "leadline_enrollments_oldest_due_seconds",
            "How long the longest-waiting due enrollment has been due (0: none).",
            value=b.oldest_due_seconds,
        )
        yield GaugeMetricFamily(
            "leadline_relay_lag_seconds",
            "Age of the oldest committed event not yet published to subscribers and webhooks (0: none).",
            value=b.relay_lag_seconds,
        )
        yield GaugeMetricFamily(
            "leadline_webhook_deliveries_pending",
            f"Webhook deliveries not yet succeeded nor given up (at most {COUNT_CAP}).",
            value=b.webhooks_pending,
        )
        yield GaugeMetricFamily(
            "leadline_webhook_deliveries_dead",
            f"Webhook deliveries given up after their last attempt (at most {COUNT_CAP}).",
            value=b.webhooks_dead,
        )
        yield GaugeMetricFamily(
            "leadline_backlog_read_failed",
            "1 when the last read of the gauges above failed or timed out (they show the one before).",
            value=1.0 if self.failed else 0.0,
        )
