"""Attempts due webhook deliveries (worker side): each a signed POST of the
event's payload to the address its endpoint's URL resolves to, now."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import datetime

import httpx

from app import ids
from app.clock import Clock
from app.errors import InvalidInput
from app.webhooks import deliveries, signing, targets
from app.webhooks.deliveries import Outcome
from app.webhooks.models import WebhookDelivery, WebhookEndpoint

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
CONCURRENCY = 10
USER_AGENT = "Leadline-Webhooks/1"


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, and the previous one for 24 hours after a rotation."""
    previous = endpoint.previous_secret
    expires = endpoint.previous_secret_expires_at
    return [endpoint.secret] + ([previous] if previous and expires and expires > now else [])


class Sender:
    def __init__(self, *, allow_private: bool, rng: random.Random | None = None) -> None:
        self.allow_private = allow_private
        self.rng = rng or random.Random()
        self.client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False)

    async def close(self) -> None:
        await self.client.aclose()

    async def deliver_due(self, clock: Clock) -> int:
        """Claims and attempts the due deliveries (a batch); how many."""
        claimed = await deliveries.claim(clock.now())
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(delivery: WebhookDelivery) -> None:
            async with limit:
                outcome = await self.attempt(delivery, clock.now())
            await deliveries.record(delivery, outcome, clock.now(), self.rng)

        await asyncio.gather(*(one(delivery) for delivery in claimed))
        return len(claimed)

    async def attempt(self, delivery: WebhookDelivery, now: datetime) -> Outcome:
        endpoint: WebhookEndpoint = delivery.endpoint
        try:
            address = await targets.resolve(endpoint.url, allow_private=self.allow_private)
        except InvalidInput as refused:
            return Outcome(None, refused.message)
        body = json.dumps(delivery.event.payload, separators=(",", ":")).encode()
        headers = signing.headers(
            signing_secrets(endpoint, now), ids.encode("Event", delivery.event_id), int(now.timestamp()), body
        )
        scheme, host, port = targets.parse(endpoint.url)
        default_port = port == (443 if scheme == "https" else 80)
        headers |= {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "host": host if default_port else f"{host}:{port}",
        }
        extensions = {"sni_hostname": host} if scheme == "https" else {}
        try:
            response = await self.client.post(address, content=body, headers=headers, extensions=extensions)
        except httpx.HTTPError as error:
            return Outcome(None, f"{type(error).__name__}: could not deliver")
        code = response.status_code
        return Outcome(code, None if 200 <= code < 300 else f"The endpoint answered HTTP {code}.")
