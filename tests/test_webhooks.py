"""Outbound webhooks (SPEC R10.3): a real HTTP receiver on loopback, signatures
checked by the ``standardwebhooks`` package, retries on the clock, 410, SSRF."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import ids, presets
from app.accounts.models import Role
from app.clock import FrozenClock
from app.config import Settings
from app.events import log, relay
from app.events.models import Event, EventType
from app.prospects import service as prospects
from app.webhooks import deliveries, sealing, service
from app.webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from app.webhooks.sender import PER_ENDPOINT, PER_ORGANIZATION, SLOTS, Sender
from tasks.engine import webhook_loop
from tests.conftest import GraphQL, Org, QueryCounter, mutate
from tests.loopback import serving

ENDPOINT = "webhookEndpoint { id url eventTypes enabled disabledReason }"


@dataclass
class Receiver:
    url: str = ""
    answers: list[int] = field(default_factory=list)
    """Status codes to answer, in turn; 200 once they run out."""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def hook(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        self.arrived.set()
        return Response(status_code=self.answers.pop(0) if self.answers else 200)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with serving(Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])) as url:
        receiver.url = f"{url}/hook"
        yield receiver


@dataclass
class Silent:
    """An HTTP server on loopback that takes requests and never answers."""

    url: str = ""
    held: int = 0
    """Connections open now."""
    most_held: int = 0
    given_up: int = 0
    """Connections the sender closed (its attempt timed out)."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.held += 1
        self.most_held = max(self.most_held, self.held)
        await reader.read()  # until the sender gives up and closes the connection
        writer.close()
        self.held, self.given_up = self.held - 1, self.given_up + 1
        self.changed.set()

    async def given_up_on(self, count: int) -> None:
        while self.given_up < count:
            self.changed.clear()
            await self.changed.wait()


@asynccontextmanager
async def silent_endpoint() -> AsyncIterator[Silent]:
    silent = Silent()
    async with await asyncio.start_server(silent.hold, "127.0.0.1", 0) as server:
        silent.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
        yield silent


@pytest.fixture
def now_clock() -> FrozenClock:
    """Real time: receivers reject signatures more than five minutes old."""
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


def private_ok(tmp_path: Path) -> Settings:
    return Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data"), "WEBHOOK_ALLOW_PRIVATE": "1"})


@pytest.fixture(autouse=True)
async def workflow(org: Org, clock: FrozenClock) -> None:
    await presets.apply(actor=org.actor(Role.ADMIN, clock), name="lead-workflow")


async def new_prospect(org: Org, clock: FrozenClock, name: str = "Ada") -> None:
    _, errors = await prospects.create_prospects(actor=org.actor(Role.ADMIN, clock), inputs=[{"first_name": name}])
    assert not errors


async def attempt_due(sender: Sender, clock: FrozenClock) -> int:
    """One pass of the worker's webhook loop, then the attempts it started run to
    their end (``close`` waits the same way); how many it started."""
    started = await sender.start_due(clock)
    await sender.settle()
    return started


async def relay_and_send(redis: Redis, clock: FrozenClock, sender: Sender) -> int:
    """What the worker does: number, publish (owing deliveries), attempt what is due."""
    await log.sequence()
    await relay.publish(redis, clock)
    return await attempt_due(sender, clock)


async def test_a_delivery_is_signed_so_standard_webhooks_verifies_it(
    gql: GraphQL, org: Org, redis: Redis, receiver: Receiver, now_clock: FrozenClock, tmp_path: Path
) -> None:
    made = await service.create_endpoint(
        actor=org.actor(Role.ADMIN, now_clock), settings=private_ok(tmp_path), url=receiver.url, event_types=None
    )
    assert made.secret.startswith("whsec_")
    sender = Sender(private_ok(tmp_path))
    await new_prospect(org, now_clock)
    assert await relay_and_send(redis, now_clock, sender) == 1
    await sender.close()

    [(headers, body)] = receiver.received
    event = await Event.get(organization_id=org.id, type=EventType.PROSPECT_CREATED)
    assert Webhook(made.secret).verify(body, headers) == event.payload
    assert headers["webhook-id"] == ids.encode("Event", event.id)
    assert headers["content-type"] == "application/json"
    with pytest.raises(WebhookVerificationError):
        Webhook(made.secret).verify(body.replace(b"Ada", b"Eve") + b" ", headers)

    body_ = await gql(
        org.tokens[Role.ADMIN],
        "{ webhookEndpoints { url deliveries { totalCount edges { node { state attempts lastStatusCode "
        "deliveredAt nextAttemptAt event { type payload } } } } } }",
    )
    [endpoint] = body_["data"]["webhookEndpoints"]
    [edge] = endpoint["deliveries"]["edges"]
    assert edge["node"] | {"deliveredAt": None} == {
        "state": "SUCCEEDED",
        "attempts": 1,
        "lastStatusCode": 200,
        "deliveredAt": None,
        "nextAttemptAt": None,
        "event": {"type": "PROSPECT_CREATED", "payload": json.loads(body)},
    }
    assert edge["node"]["deliveredAt"] is not None


async def test_a_page_of_deliveries_costs_the_same_queries_for_1_or_5(
    gql: GraphQL,
    org: Org,
    redis: Redis,
    receiver: Receiver,
    now_clock: FrozenClock,
    tmp_path: Path,
    sql_queries: QueryCounter,
) -> None:
    await service.create_endpoint(
        actor=org.actor(Role.ADMIN, now_clock), settings=private_ok(tmp_path), url=receiver.url, event_types=None
    )
    sender = Sender(private_ok(tmp_path))
    query = "{ webhookEndpoints { deliveries { edges { node { state endpoint { url } event { type } } } } } }"
    costs = []
    for count in (1, 4):
        for n in range(count):
            await new_prospect(org, now_clock, f"P{n}")
        await relay_and_send(redis, now_clock, sender)
        await gql(org.tokens[Role.ADMIN], "{ viewer { id } }")  # the token's lastUsedAt is written once
        sql_queries.count = 0
        body = await gql(org.tokens[Role.ADMIN], query)
        costs.append(sql_queries.count)
        [endpoint] = body["data"]["webhookEndpoints"]
        assert len(endpoint["deliveries"]["edges"]) == {1: 1, 4: 5}[count]
    await sender.close()
    assert costs[0] == costs[1], costs


async def test_a_receiver_answering_500_twice_gets_the_event_on_the_third_attempt(
    org: Org, redis: Redis, receiver: Receiver, now_clock: FrozenClock, tmp_path: Path
) -> None:
    await service.create_endpoint(
        actor=org.actor(Role.ADMIN, now_clock), settings=private_ok(tmp_path), url=receiver.url, event_types=None
    )
    receiver.answers = [500, 500]
    sender = Sender(private_ok(tmp_path), rng=random.Random(7))
    await new_prospect(org, now_clock)
    assert await relay_and_send(redis, now_clock, sender) == 1
    delivery = await WebhookDelivery.get()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == (DeliveryState.PENDING, 1, 500)
    assert delivery.next_attempt_at is not None
    assert timedelta(seconds=4) <= delivery.next_attempt_at - now_clock.now() <= timedelta(seconds=6)
    assert await attempt_due(sender, now_clock) == 0  # not due yet
    now_clock.advance(6)
    assert await attempt_due(sender, now_clock) == 1
    delivery = await WebhookDelivery.get()
    assert delivery.next_attempt_at is not None
    assert timedelta(minutes=4) <= delivery.next_attempt_at - now_clock.now() <= timedelta(minutes=6)
    now_clock.advance(6 * 60)
    assert await attempt_due(sender, now_clock) == 1
    await sender.close()
    delivery = await WebhookDelivery.get()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == (DeliveryState.SUCCEEDED, 3, 200)
    assert len(receiver.received) == 3
    assert len({headers["webhook-id"] for headers, _ in receiver.received}) == 1  # one message, retried


async def test_retries_run_for_about_a_day_then_the_delivery_is_dead(
    org: Org, redis: Redis, receiver: Receiver, clock: FrozenClock, tmp_path: Path
) -> None:
    await service.create_endpoint(
        actor=org.actor(Role.ADMIN, clock), settings=private_ok(tmp_path), url=receiver.url, event_types=None
    )
    receiver.answers = [503] * 100
    sender = Sender(private_ok(tmp_path), rng=random.Random(1))
    await new_prospect(org, clock)
    start = clock.now()
    await relay_and_send(redis, clock, sender)
    while (delivery := await WebhookDelivery.get()).state == DeliveryState.PENDING:
        assert delivery.next_attempt_at is not None
        clock.advance((delivery.next_attempt_at - clock.now()).total_seconds())
        assert await attempt_due(sender, clock) == 1
    await sender.close()
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == (DeliveryState.DEAD, 8, None)
    assert timedelta(hours=22) < clock.now() - start < timedelta(hours=34)
    assert len(receiver.received) == 8


async def test_410_kills_the_delivery_and_disables_the_endpoint(
    gql: GraphQL, org: Org, redis: Redis, receiver: Receiver, now_clock: FrozenClock, tmp_path: Path
) -> None:
    await service.create_endpoint(
        actor=org.actor(Role.ADMIN, now_clock), settings=private_ok(tmp_path), url=receiver.url, event_types=None
    )
    receiver.answers = [410]
    sender = Sender(private_ok(tmp_path))
    await new_prospect(org, now_clock)
    await relay_and_send(redis, now_clock, sender)
    delivery = await WebhookDelivery.get()
    assert (delivery.state, delivery.last_status_code) == (DeliveryState.DEAD, 410)
    body = await gql(org.tokens[Role.ADMIN], "{ webhookEndpoints { enabled disabledReason } }")
    [endpoint] = body["data"]["webhookEndpoints"]
    assert endpoint["enabled"] is False and "410" in endpoint["disabledReason"]
    await new_prospect(org, now_clock, "Bob")
    assert await relay_and_send(redis, now_clock, sender) == 0
    await sender.close()
    assert await WebhookDelivery.all().count() == 1  # nothing more is owed to a disabled endpoint
    assert len(receiver.received) == 1


async def test_private_and_loopback_addresses_are_refused_at_registration_and_at_send(
    gql: GraphQL, org: Org, redis: Redis, receiver: Receiver, now_clock: FrozenClock, tmp_path: Path
) -> None:
    for url in ("http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://10.1.2.3/hook", "http://[::1]/hook"):
        payload = await mutate(gql, org.tokens[Role.ADMIN], "createWebhookEndpoint", ENDPOINT, url=url)
        assert [e["code"] for e in payload["errors"]] == ["INVALID_INPUT"], (url, payload)
        assert payload["webhookEndpoint"] is None
    for url in ("ftp://hooks.example/x", "https://user:pw@hooks.example/x", "not a url"):
        payload = await mutate(gql, org.tokens[Role.ADMIN], "createWebhookEndpoint", ENDPOINT, url=url)
        assert [e["code"] for e in payload["errors"]] == ["INVALID_INPUT"], (url, payload)
    assert await WebhookEndpoint.all().count() == 0

    # Registered while allowed; the address is checked again when sending.
    await service.create_endpoint(
        actor=org.actor(Role.ADMIN, now_clock), settings=private_ok(tmp_path), url=receiver.url, event_types=None
    )
    sender = Sender(Settings.from_env({"LEADLINE_DATA_DIR": str(tmp_path / "data")}))
    await new_prospect(org, now_clock)
    await relay_and_send(redis, now_clock, sender)
    await sender.close()
    assert receiver.received == []
    delivery = await WebhookDelivery.get()
    assert delivery.state == DeliveryState.PENDING and delivery.attempts == 1
    assert delivery.last_error is not None and "private or loopback" in delivery.last_error


async def test_endpoints_crud_filters_and_a_rotation_that_signs_with_both_secrets_for_a_day(
    gql: GraphQL, org: Org, redis: Redis, receiver: Receiver, now_clock: FrozenClock, tmp_path: Path
) -> None:
    admin = org.tokens[Role.ADMIN]
    made = await service.create_endpoint(
        actor=org.actor(Role.ADMIN, now_clock),
        settings=private_ok(tmp_path),
        url=receiver.url,
        event_types=[EventType.STATUS_CHANGED],
    )
    gid = ids.encode("WebhookEndpoint", made.endpoint.id)
    sender = Sender(private_ok(tmp_path))
    await new_prospect(org, now_clock)
    assert await relay_and_send(redis, now_clock, sender) == 0  # PROSPECT_CREATED is not wanted

    updated = await mutate(gql, admin, "updateWebhookEndpoint", ENDPOINT, id=gid, eventTypes=None)
    assert updated["errors"] == [] and updated["webhookEndpoint"]["eventTypes"] == []  # every type now
    new_secret = (
        await service.rotate_secret(
            actor=org.actor(Role.ADMIN, now_clock), settings=private_ok(tmp_path), endpoint_id=made.endpoint.id
        )
    ).secret
    assert new_secret.startswith("whsec_") and new_secret != made.secret
    await new_prospect(org, now_clock, "Bob")
    assert await relay_and_send(redis, now_clock, sender) == 1
    headers, body = receiver.received[-1]
    assert len(headers["webhook-signature"].split()) == 2
    Webhook(new_secret).verify(body, headers)  # receivers that moved on
    Webhook(made.secret).verify(body, headers)  # and those that did not yet

    now_clock.advance(24 * 3600 + 1)
    await new_prospect(org, now_clock, "Cy")
    assert await relay_and_send(redis, now_clock, sender) == 1
    headers, body = receiver.received[-1]
    stamp = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
    assert headers["webhook-signature"] == Webhook(new_secret).sign(headers["webhook-id"], stamp, body.decode())

    rotated = await mutate(gql, admin, "rotateWebhookSecret", "secret webhookEndpoint { id }", id=gid)
    assert rotated["secret"].startswith("whsec_") and rotated["webhookEndpoint"]["id"] == gid
    stored = await WebhookEndpoint.get(id=made.endpoint.id)
    assert stored.previous_secret_expires_at is not None
    within_a_day = stored.previous_secret_expires_at - timedelta(seconds=1)
    assert sealing.signing_secrets(stored, within_a_day, secret_key=private_ok(tmp_path).secret_key) == [
        rotated["secret"],
        new_secret,
    ]
    disabled = await mutate(gql, admin, "updateWebhookEndpoint", ENDPOINT, id=gid, enabled=False)
    assert disabled["webhookEndpoint"]["enabled"] is False
    deleted = await mutate(gql, admin, "deleteWebhookEndpoint", "deletedId", id=gid)
    assert deleted["deletedId"] == gid
    assert await WebhookDelivery.all().count() == 0
    body_ = await gql(admin, "{ webhookEndpoints { id } }")
    assert body_["data"]["webhookEndpoints"] == []
    agent = await gql(org.tokens[Role.AGENT], "{ webhookEndpoints { id } }")
    assert agent["data"]["webhookEndpoints"] == []
    await sender.close()


async def test_an_endpoint_that_never_answers_holds_back_no_other_organizations_deliveries(
    org: Org, other_org: Org, redis: Redis, receiver: Receiver, now_clock: FrozenClock, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {"LEADLINE_DATA_DIR": str(tmp_path / "data"), "WEBHOOK_ALLOW_PRIVATE": "1", "WEBHOOK_TIMEOUT_SECONDS": "2"}
    )
    await presets.apply(actor=other_org.actor(Role.ADMIN, now_clock), name="lead-workflow")
    sender = Sender(settings)
    async with silent_endpoint() as silent:
        await service.create_endpoint(
            actor=org.actor(Role.ADMIN, now_clock), settings=settings, url=silent.url, event_types=None
        )
        await service.create_endpoint(
            actor=other_org.actor(Role.ADMIN, now_clock), settings=settings, url=receiver.url, event_types=None
        )
        for n in range(30):  # more than the sender's slots, all due before the other organization's
            await new_prospect(org, now_clock, f"P{n}")
        await new_prospect(other_org, now_clock)
        await log.sequence()
        await relay.publish(redis, now_clock)
        started = time.monotonic()
        assert await sender.start_due(now_clock) == PER_ENDPOINT + 1
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            await receiver.arrived.wait()

        # While the silent endpoint still holds its slots, the other organization's next event goes at once.
        receiver.arrived.clear()
        await new_prospect(other_org, now_clock, "Bob")
        await log.sequence()
        await relay.publish(redis, now_clock)
        assert await sender.start_due(now_clock) == 1
        async with asyncio.timeout(settings.webhook_timeout_seconds - (time.monotonic() - started)):
            await receiver.arrived.wait()

        await sender.settle()  # the silent endpoint's attempts are cut off at the timeout
        assert 2 <= time.monotonic() - started < 4
    await sender.close()

    assert len(receiver.received) == 2
    silent = await WebhookDelivery.filter(organization_id=org.id).order_by("id")
    attempted = [delivery for delivery in silent if delivery.attempts]
    assert len(silent) == 30 and len(attempted) == PER_ENDPOINT
    for delivery in attempted:  # a failed attempt, retried on the schedule
        assert (delivery.state, delivery.last_status_code, delivery.last_error) == (
            DeliveryState.PENDING,
            None,
            "The endpoint did not answer within 2 s.",
        )
        assert delivery.next_attempt_at is not None
        assert timedelta(seconds=4) <= delivery.next_attempt_at - now_clock.now() <= timedelta(seconds=6)
    assert {delivery.next_attempt_at for delivery in silent if not delivery.attempts} == {now_clock.now()}


async def test_an_organization_whose_endpoints_all_hang_holds_back_no_other_organizations_deliveries(
    org: Org, other_org: Org, redis: Redis, receiver: Receiver, now_clock: FrozenClock, tmp_path: Path
) -> None:
    """Four endpoints of one organization never answer and its backlog grows
    faster than their attempts time out; the worker's webhook loop keeps the
    other organization's deliveries going at once all along."""
    settings = Settings.from_env(
        {"LEADLINE_DATA_DIR": str(tmp_path / "data"), "WEBHOOK_ALLOW_PRIVATE": "1", "WEBHOOK_TIMEOUT_SECONDS": "1"}
    )
    await presets.apply(actor=other_org.actor(Role.ADMIN, now_clock), name="lead-workflow")
    wake = asyncio.Event()
    sender = Sender(settings, wake=wake)
    async with silent_endpoint() as silent:
        for n in range(4):
            await service.create_endpoint(
                actor=org.actor(Role.ADMIN, now_clock), settings=settings, url=f"{silent.url}/{n}", event_types=None
            )
        await service.create_endpoint(
            actor=other_org.actor(Role.ADMIN, now_clock), settings=settings, url=receiver.url, event_types=None
        )
        loop = asyncio.create_task(webhook_loop(sender, now_clock, settings.scheduler_interval, wake=wake))
        try:
            for turn in range(3):
                for n in range(15):  # 60 deliveries owed to the silent endpoints a turn, 10 attempted a timeout
                    await new_prospect(org, now_clock, f"A{turn}-{n}")
                await new_prospect(other_org, now_clock, f"B{turn}")
                receiver.arrived.clear()
                await log.sequence()
                await relay.publish(redis, now_clock)
                wake.set()  # as the relay loop does when it owes deliveries
                async with asyncio.timeout(settings.webhook_timeout_seconds):  # before any attempt times out
                    await receiver.arrived.wait()
                await silent.given_up_on(PER_ORGANIZATION * (turn + 1))  # the silent ones took their slots again
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
            await sender.close()

    assert len(receiver.received) == 3
    assert silent.most_held == PER_ORGANIZATION
    backlog = await WebhookDelivery.filter(organization_id=org.id, attempts=0).count()
    assert backlog >= 3 * 60 - 4 * PER_ORGANIZATION


async def test_a_claim_places_each_organizations_first_deliveries_before_any_organizations_next(
    org: Org, other_org: Org, redis: Redis, clock: FrozenClock, tmp_path: Path
) -> None:
    settings = private_ok(tmp_path)
    await presets.apply(actor=other_org.actor(Role.ADMIN, clock), name="lead-workflow")
    for n in range(4):
        await service.create_endpoint(
            actor=org.actor(Role.ADMIN, clock), settings=settings, url=f"http://127.0.0.1:9/{n}", event_types=None
        )
    await service.create_endpoint(
        actor=other_org.actor(Role.ADMIN, clock), settings=settings, url="http://127.0.0.1:9/b", event_types=None
    )
    for n in range(30):  # 120 deliveries, all due before the other organization's
        await new_prospect(org, clock, f"P{n}")
    await new_prospect(other_org, clock)
    await log.sequence()
    await relay.publish(redis, clock)
    running = deliveries.InFlight()

    async def claim(limit: int) -> list[WebhookDelivery]:
        claimed = await deliveries.claim(
            clock.now(),
            limit=limit,
            per_endpoint=PER_ENDPOINT,
            per_organization=PER_ORGANIZATION,
            running=running,
        )
        for delivery in claimed:
            running.start(delivery)
        return claimed

    first = await claim(SLOTS)
    assert Counter(delivery.organization_id for delivery in first) == {org.id: PER_ORGANIZATION, other_org.id: 1}
    by_endpoint = Counter(delivery.endpoint_id for delivery in first if delivery.organization_id == org.id)
    assert sorted(by_endpoint.values()) == [2, 2, 3, 3]  # each endpoint's first, then each one's second...

    # One attempt of each ends; the other organization's next delivery goes
    # first though the first organization's are due longer: it has 9 running.
    for organization_id in (org.id, other_org.id):
        running.end(next(delivery for delivery in first if delivery.organization_id == organization_id))
    await new_prospect(other_org, clock, "Bob")
    await log.sequence()
    await relay.publish(redis, clock)
    [second] = await claim(1)
    assert second.organization_id == other_org.id
    [third] = await claim(1)
    assert third.organization_id == org.id
    assert await claim(SLOTS) == []  # the first organization is at its limit, the other has nothing due


def test_the_retry_schedule_spans_about_a_day() -> None:
    total = sum(deliveries.RETRY_DELAYS, timedelta())
    assert timedelta(hours=24) < total < timedelta(hours=30)
    rng = random.Random(3)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for attempts, delay in enumerate(deliveries.RETRY_DELAYS, start=1):
        at = deliveries.retry_at(attempts, now, rng)
        assert at is not None and delay * 0.8 <= at - now <= delay * 1.2
    assert deliveries.retry_at(len(deliveries.RETRY_DELAYS) + 1, now, rng) is None
