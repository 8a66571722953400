"""Attempts due webhook deliveries (worker side): each a signed POST of the
event's payload to the address its endpoint's URL resolves to, now.

Attempts run concurrently, up to SLOTS at once, PER_ORGANIZATION of one
organization and PER_ENDPOINT to one endpoint, and each is cut off after
WEBHOOK_TIMEOUT_SECONDS (resolving the host, connecting, sending, and the
answer's status line and headers; the body is never read). An organization
whose endpoints hang therefore holds PER_ORGANIZATION slots, each for the
timeout at most, however long its backlog, while the other slots go on
delivering; a timed-out attempt is a failed one, retried on the usual schedule.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from datetime import datetime

import httpx

from app import db, ids
from app.clock import Clock
from app.config import Settings
from app.errors import InvalidInput
from app.webhooks import deliveries, sealing, signing, targets
from app.webhooks.deliveries import Outcome
from app.webhooks.models import WebhookDelivery, WebhookEndpoint

SLOTS = 40
"""Attempts a worker runs at once."""
PER_ORGANIZATION = SLOTS // 4
"""Attempts of one organization at once (10), a quarter of the slots: it takes
four organizations whose endpoints all hang before others' deliveries wait, and
then as the slots free up (each attempt ends within the timeout) each
organization's first due delivery goes before any organization's next one
(``deliveries.claim``), so no organization's backlog keeps the slots."""
PER_ENDPOINT = PER_ORGANIZATION // 2
"""Attempts to one endpoint at once (5): an endpoint that hangs leaves its
organization's other endpoints half of its slots, and one answering in 50 ms
still gets 100 deliveries a second."""
USER_AGENT = "Leadline-Webhooks/1"
logger = logging.getLogger("leadline.webhooks")


class Sender:
    """Starts attempts in the background as slots free up; ``wake`` is set each
    time an attempt ends (the worker's loop then starts more)."""

    def __init__(
        self, settings: Settings, *, wake: asyncio.Event | None = None, rng: random.Random | None = None
    ) -> None:
        self.allow_private = settings.webhook_allow_private
        self.timeout = settings.webhook_timeout_seconds
        self.secret_key = settings.secret_key
        self.wake = wake
        self.rng = rng or random.Random()
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), follow_redirects=False, trust_env=False)
        self.running = deliveries.InFlight()
        self.tasks: set[asyncio.Task[None]] = set()

    async def start_due(self, clock: Clock) -> int:
        """Claims as many due deliveries as there are free slots and starts
        attempting them; how many it started."""
        free = SLOTS - len(self.tasks)
        if free <= 0:
            return 0
        claimed = await deliveries.claim(
            clock.now(),
            limit=free,
            per_endpoint=PER_ENDPOINT,
            per_organization=PER_ORGANIZATION,
            running=self.running,
        )
        for delivery in claimed:
            self.running.start(delivery)
            task = asyncio.create_task(self._attempt_and_record(delivery, clock))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return len(claimed)

    async def settle(self) -> None:
        """Waits for the attempts in flight to end and be recorded."""
        while self.tasks:
            await asyncio.gather(*self.tasks)

    async def close(self) -> None:
        await self.settle()
        await self.client.aclose()

    async def _attempt_and_record(self, delivery: WebhookDelivery, clock: Clock) -> None:
        try:
            outcome = await self.attempt(delivery, clock.now())
            await deliveries.record(delivery, outcome, clock.now(), self.rng)
        except Exception as error:  # the claim's lease lapses and the delivery is attempted again
            db.log_failure(logger, f"webhook delivery {delivery.id}: attempt not recorded", error)
        finally:
            self.running.end(delivery)
            if self.wake is not None:
                self.wake.set()

    async def attempt(self, delivery: WebhookDelivery, now: datetime) -> Outcome:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._post(delivery, now)
        except TimeoutError:
            return Outcome(None, f"The endpoint did not answer within {self.timeout:g} s.")

    async def _post(self, delivery: WebhookDelivery, now: datetime) -> Outcome:
        endpoint: WebhookEndpoint = delivery.endpoint
        try:
            address = await targets.resolve(endpoint.url, allow_private=self.allow_private)
        except InvalidInput as refused:
            return Outcome(None, refused.message)
        try:
            secrets = sealing.signing_secrets(endpoint, now, secret_key=self.secret_key)
        except sealing.UnreadableSecret as unreadable:
            return Outcome(None, str(unreadable))
        body = json.dumps(delivery.event.payload, separators=(",", ":")).encode()
        headers = signing.headers(secrets, ids.encode("Event", delivery.event_id), int(now.timestamp()), body)
        scheme, host, port = targets.parse(endpoint.url)
        default_port = port == (443 if scheme == "https" else 80)
        headers |= {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "host": host if default_port else f"{host}:{port}",
        }
        extensions = {"sni_hostname": host} if scheme == "https" else {}
        try:
            # Streamed so the answer's body, which nothing reads, is never downloaded.
            async with self.client.stream(
                "POST", address, content=body, headers=headers, extensions=extensions
            ) as response:
                code = response.status_code
        except httpx.TimeoutException:
            raise TimeoutError from None
        except httpx.HTTPError as error:
            return Outcome(None, f"{type(error).__name__}: could not deliver")
        return Outcome(code, None if 200 <= code < 300 else f"The endpoint answered HTTP {code}.")
